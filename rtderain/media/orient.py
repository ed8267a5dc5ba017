"""Streak orientation: turn the frame so that the rain falls vertically for the network.

The shipped weights learned rain within 10-15 degrees of vertical and remove diagonal
streaks poorly (``docs/training.md``). The network predicts the rain layer, so the same
weights can remove rain at an angle: turn the frame by the streaks' angle (onto a larger
canvas, borders reflected, so no pixel is lost), predict the rain layer there, turn *the
rain layer* back and subtract it from the untouched frame. The background is never
resampled; only the thin rain layer is, once each way.

The angle comes from the frame itself (:func:`estimate_streaks`): the white top-hat of the
luma (thin bright structure: rain, and some texture), cut into overlapping tiles; each
tile's directional energy from its spectrum (a line filter's response, for every angle
from -45 to 45 degrees in 2.5-degree steps, against the response across it), averaged
over the tiles. Rain covers the frame with parallel streaks, so most tiles agree on its
angle; an edge of the scene moves a few tiles only, and tiles without thin structure vote
for no angle. The frame is turned only where the angle is clear: at least ``MIN_ANGLE``
from vertical (nearer, turning the thin rain layer costs more than it gains), at most
``MAX_ANGLE``, with ``MIN_AGREEMENT`` of the tiles within 5 degrees of it. The thresholds
were set on a validation set of the second rain model, not on a reported benchmark
(``docs/orientation.md``).

Angles are in degrees, positive for streaks leaning like ``/`` (top to the right): the
counter-clockwise turn (:func:`cv2.getRotationMatrix2D`) that makes them vertical.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from rtderain.errors import ConfigError
from rtderain.util import padded_size

if TYPE_CHECKING:  # torch loads with the engines, not with the settings
    import torch

    from rtderain.backends.base import Engine

STEP = 2.5  # degrees between the angles tried
ANGLES = np.arange(-45.0, 45.0 + 1e-6, STEP)
MIN_ANGLE = 15.0
MAX_ANGLE = 40.0
MIN_AGREEMENT = 0.5
MIN_SCORE = 0.05
TILE = 128  # analysis tile (px, at most ANALYSIS px on the long side)
ANALYSIS = 512
LINE = 15  # line filter length (px at the analysis scale)
TOPHAT = 7  # structuring element of the white top-hat (full resolution)
EMPTY = 1.0  # RMS top-hat (8-bit levels) below which a tile holds no thin structure


@dataclass(frozen=True)
class Streaks:
    """What :func:`estimate_streaks` saw: the dominant streak ``angle`` (degrees, see the
    module docstring), its ``score`` (directional contrast in [-1, 1], mean over tiles) and
    the ``agreement`` (share of tiles whose own angle is within 5 degrees)."""

    angle: float
    score: float
    agreement: float

    @property
    def turn(self) -> float | None:
        """The angle to turn the frame by, or None where it should not be turned."""
        clear = self.score >= MIN_SCORE and self.agreement >= MIN_AGREEMENT
        if clear and MIN_ANGLE <= abs(self.angle) <= MAX_ANGLE:
            return self.angle
        return None


def parse_orient(value: str | float | None) -> str | float:
    """``auto`` (estimate per call), ``off``, or a fixed angle in degrees (|angle| <=
    ``MAX_ANGLE``)."""
    if value is None:
        return "auto"
    if isinstance(value, str) and value.strip().lower() in ("auto", "off"):
        return value.strip().lower()
    try:
        angle = float(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"orient must be auto, off or an angle in degrees, not {value!r}") from None
    if not math.isfinite(angle) or abs(angle) > MAX_ANGLE:
        raise ConfigError(f"orient angle must be within +-{MAX_ANGLE:g} degrees, got {value!r}")
    return angle


@functools.lru_cache(maxsize=2)
def _filters(n: int, length: int) -> np.ndarray:
    """(2 x len(ANGLES), n * (n // 2 + 1)) squared transfer functions of a ``length``-px
    line at each angle and at the angle across it, on the rfft2 grid of an n x n tile
    (the lowest frequencies, which carry shading, not streaks, are left out)."""
    fy = np.fft.fftfreq(n)[:, None]
    fx = np.fft.rfftfreq(n)[None, :]
    theta = np.radians(np.concatenate([ANGLES, ANGLES + 90.0]))[:, None, None]
    along = fx[None] * np.sin(theta) - fy[None] * np.cos(theta)  # f . (sin t, -cos t)
    w = np.sinc(length * along) ** 2 * (np.hypot(fx, fy) > 0.02)[None]
    return w.reshape(len(theta), -1).astype(np.float32)


def _tophat_luma(frame: np.ndarray) -> np.ndarray:
    """White top-hat of the BT.601 luma (of an RGB frame, or a Y plane itself), uint8."""
    if frame.dtype == np.uint16:
        frame = (frame >> 8).astype(np.uint8)
    y = frame if frame.ndim == 2 else cv2.cvtColor(np.ascontiguousarray(frame),
                                                   cv2.COLOR_RGB2GRAY)
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (TOPHAT, TOPHAT))
    return cv2.morphologyEx(y, cv2.MORPH_TOPHAT, kernel)


@functools.lru_cache(maxsize=1)
def _window(n: int) -> np.ndarray:
    return np.outer(np.hanning(n), np.hanning(n)).astype(np.float32)


def estimate_streaks(frame: np.ndarray) -> Streaks:
    """The dominant streak angle of one ``(H, W, 3)`` RGB uint8/uint16 frame, or of one
    (H, W) uint8 Y plane."""
    t = _tophat_luma(frame)
    h, w = t.shape
    scale = min(1.0, ANALYSIS / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        t = cv2.resize(t, size, interpolation=cv2.INTER_AREA)
        h, w = t.shape
    t = t.astype(np.float32)
    if h < TILE or w < TILE:  # a small frame: one tile, zero-padded
        t = np.pad(t, ((0, max(0, TILE - h)), (0, max(0, TILE - w))))
    step = TILE // 2
    ys = range(0, max(1, t.shape[0] - TILE + 1), step)
    xs = range(0, max(1, t.shape[1] - TILE + 1), step)
    tiles = [t[y:y + TILE, x:x + TILE] for y in ys for x in xs]
    stack = np.stack(tiles)
    stack -= stack.mean(axis=(1, 2), keepdims=True)
    # a tile with (almost) no thin structure has no angle: it votes for none
    active = np.sqrt((stack ** 2).mean(axis=(1, 2))) >= EMPTY
    if not active.any():
        return Streaks(0.0, 0.0, 0.0)
    spectrum = np.fft.rfft2(stack[active] * _window(TILE))
    power = spectrum.real ** 2 + spectrum.imag ** 2
    energy = power.reshape(len(power), -1).astype(np.float32) @ _filters(TILE, LINE).T
    k = len(ANGLES)
    along, across = energy[:, :k], energy[:, k:]
    contrast = (along - across) / (along + across + 1e-6)
    mean = contrast.mean(axis=0)
    i = int(mean.argmax())
    angle = float(ANGLES[i])
    if 0 < i < k - 1:  # parabolic refinement between the neighbouring angles
        a, b, c = mean[i - 1], mean[i], mean[i + 1]
        denom = a - 2 * b + c
        if denom < 0:
            angle += float(STEP * 0.5 * (a - c) / denom)
    pointing = np.abs(ANGLES[contrast.argmax(axis=1)] - ANGLES[i]) <= 5.0
    agreement = float(pointing.sum() / len(tiles))
    return Streaks(angle, float(mean[i]), agreement)


def canvas_size(height: int, width: int, multiple: int,
                angle: float = MAX_ANGLE) -> tuple[int, int]:
    """The (H, W) canvas that holds a ``height`` x ``width`` frame turned by up to
    ``angle`` degrees, rounded up to ``multiple``."""
    a = math.radians(abs(angle))
    c, s = math.cos(a), math.sin(a)
    return padded_size(math.ceil(width * s + height * c), math.ceil(width * c + height * s),
                       multiple)


def _turn(height: int, width: int, angle: float, canvas: tuple[int, int]) -> np.ndarray:
    """2x3 affine map of frame coordinates onto the canvas (turned about the centres)."""
    m = cv2.getRotationMatrix2D((width / 2.0, height / 2.0), angle, 1.0)
    m[0, 2] += canvas[1] / 2.0 - width / 2.0
    m[1, 2] += canvas[0] / 2.0 - height / 2.0
    return m


class OrientedEngine:
    """``plain`` for frames whose rain is near vertical; for the others the frame turned
    onto a canvas, ``canvas_engine(H, W)`` there, and the rain layer turned back.

    ``orient``: ``auto`` (estimate on the first frame of a call: a batch is frames of one
    video) or a fixed angle. ``every``: frames between two estimates (1: every call, for
    unrelated images; a live source re-estimates every ``every`` frames, the estimate
    costs about 12 ms at 720p). ``canvas_engine`` is called once, on the first turned
    frame (the canvas holds any angle up to ``MAX_ANGLE``, so one engine serves them all);
    None: ``plain`` takes any size and serves the canvas too.
    """

    def __init__(self, plain: Engine, canvas_engine: Callable[[int, int], Engine] | None,
                 orient: str | float = "auto", every: int = 1):
        self.plain, self.orient = plain, orient
        self._canvas_engine = canvas_engine or (lambda *_: plain)
        self.every, self._since = max(1, every), 0
        self.name, self.device, self.multiple = plain.name, plain.device, plain.multiple
        self.selection = getattr(plain, "selection", "")
        from rtderain.backends.base import takes_planes

        self.luma_planes = takes_planes(plain)  # infer_planes
        self.description = f"{plain.description}, streaks turned vertical ({orient})"
        self._canvas: dict[tuple[int, int], Engine] = {}
        self.last: Streaks | None = None  # the latest estimate (for logs and tests)

    def turn_for(self, frame: np.ndarray, frames: int = 1) -> float | None:
        """The angle a call of ``frames`` frames, the first being ``frame``, turns them by
        (None: not turned)."""
        if self.orient != "auto":
            return float(self.orient) or None
        if self.last is None or self._since >= self.every:
            self.last, self._since = estimate_streaks(frame), 0
        self._since += frames
        return self.last.turn

    def _inner(self, h: int, w: int) -> tuple[Engine, tuple[int, int]]:
        canvas = canvas_size(h, w, self.multiple)
        if canvas not in self._canvas:
            self._canvas[canvas] = self._canvas_engine(*canvas)
        return self._canvas[canvas], canvas

    def _rain_back(self, frames: np.ndarray, angle: float,
                   run: Callable[[Engine, np.ndarray], np.ndarray]) -> np.ndarray:
        """``frames`` (N, H, W, C) (or (N, H, W) planes) minus their turned-back rain
        layers, float32."""
        n, h, w = frames.shape[:3]
        engine, canvas = self._inner(h, w)
        m = _turn(h, w, angle, canvas)
        turned = np.stack([cv2.warpAffine(f, m, (canvas[1], canvas[0]), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REFLECT_101) for f in frames])
        out = run(engine, turned)
        back = cv2.invertAffineTransform(m)
        result = np.empty(frames.shape, np.float32)
        for i in range(n):
            rain = turned[i].astype(np.float32) - out[i].astype(np.float32)
            result[i] = frames[i] - cv2.warpAffine(rain, back, (w, h), flags=cv2.INTER_LINEAR)
        return result

    def _turned_frames(self, frames: np.ndarray, angle: float,
                       run: Callable[[Engine, np.ndarray], np.ndarray] | None = None,
                       ) -> np.ndarray:
        """uint8 ``frames`` (or Y planes, with ``run`` for them) turned, de-rained, back."""
        out = self._rain_back(frames, angle, run or _frames)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> same (the plain engine's uint8 path, or the turned one)."""
        angle = self.turn_for(frames[0], len(frames))
        if angle is None:
            return _frames(self.plain, frames)
        return self._turned_frames(frames, angle)

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """(N, H, W) uint8 Y planes of a luma network -> same (turned where the rain
        leans: the plane is the frame, the grey rain layer is turned back onto it)."""
        angle = self.turn_for(planes[0], len(planes))
        if angle is None:
            return self.plain.infer_planes(planes, full_range)  # type: ignore[attr-defined]

        def run(engine: Engine, turned: np.ndarray) -> np.ndarray:
            return engine.infer_planes(np.ascontiguousarray(turned), full_range)  # type: ignore[attr-defined]

        return self._turned_frames(planes, angle, run)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 [-1, 1] -> same (turned on the CPU where it turns)."""
        import torch

        first = ((x[0].permute(1, 2, 0).float() + 1.0) * 127.5).clamp(0, 255)
        angle = self.turn_for(first.to(torch.uint8).cpu().numpy(), len(x))
        if angle is None:
            return self.plain.infer(x)
        hwc = x.permute(0, 2, 3, 1).float().cpu().numpy()

        def run(engine: Engine, turned: np.ndarray) -> np.ndarray:
            t = torch.from_numpy(np.ascontiguousarray(turned)).permute(0, 3, 1, 2).to(x.device)
            with torch.inference_mode():
                return engine.infer(t).permute(0, 2, 3, 1).float().cpu().numpy()

        out = np.clip(self._rain_back(hwc, angle, run), -1.0, 1.0)
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous().to(x.device)


def _frames(engine: Engine, frames: np.ndarray) -> np.ndarray:
    """Run ``engine`` on uint8 frames whose size is a multiple of its ``multiple``."""
    from rtderain.backends.base import FrameEngine
    from rtderain.media.batching import derain_frames

    if isinstance(engine, FrameEngine):
        return engine.infer_frames(np.ascontiguousarray(frames))
    return derain_frames(engine, frames)


class _Done:
    """A finished batch, in the shape of :class:`rtderain.backends.transfer.Pending`."""

    def __init__(self, frames: np.ndarray) -> None:
        self._frames = frames

    def result(self) -> np.ndarray:
        return self._frames


class QueuedOrientedEngine(OrientedEngine):
    """:class:`OrientedEngine` around an engine that queues batches (``submit_frames``,
    the CUDA wrapper): frames that are not turned keep its overlapped upload, compute and
    download; turned ones run at once."""

    def submit_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> Any:
        """Queue ``(H, W, 3)`` uint8 frames of one size (any size); ``.result()`` gives
        them de-rained."""
        from rtderain.media.tensors import pad_frames

        angle = self.turn_for(frames[0], len(frames))
        if angle is None:
            return self.plain.submit_frames(frames)  # type: ignore[attr-defined]
        batch, (h, w) = pad_frames(frames, self.multiple)
        return _Done(np.ascontiguousarray(self._turned_frames(batch, angle)[:, :h, :w]))


def oriented(plain: Engine, canvas_engine: Callable[[int, int], Engine] | None,
             orient: str | float, every: int = 1) -> Engine:
    """``plain`` itself for ``orient="off"``, else an :class:`OrientedEngine` around it
    (:class:`QueuedOrientedEngine` where ``plain`` queues batches). It always has
    ``infer_frames``: for a plain engine without it, the uint8 frames go through the float
    path. ``canvas_engine`` None: ``plain`` takes any size."""
    if orient == "off":
        return plain
    cls = QueuedOrientedEngine if hasattr(plain, "submit_frames") else OrientedEngine
    return cls(plain, canvas_engine, orient, every)
