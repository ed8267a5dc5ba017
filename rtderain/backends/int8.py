"""int8 post-training quantisation of an OpenVINO graph with NNCF, held to a quality bound.

Calibration data are rendered rainy frames at the engine's own input size. Three frames
of the shipped sample (``calibration/bunny_*.jpg``: *Big Buck Bunny*, CC BY 3.0, see
``samples/README.md``) are de-rained by the float graph and serve as clean scenes; fresh
rain is rendered over them by rtderain's renderer (``rtderain.synth.render``; presets
storm, heavy, light and diagonal in turn; fixed seed). ``calib_frames`` of them give NNCF
its activation statistics; ``val_frames`` others, with other rain, check the result:

* **drop**: the int8 graph's mean Y-PSNR against the clean scenes may fall at most
  ``max_drop_db`` below the float graph's (0.15 dB: issue 16's bound);
* **parity**: the int8 output's Y-PSNR against the float output is at least
  ``min_parity_db`` (38 dB).

Plain quantisation first (``preset`` mixed: symmetric weights, asymmetric activations,
fast bias correction); if that misses, NNCF's accuracy control
(``quantize_with_accuracy_control``) keeps the most sensitive layers in floating point
until the drop holds; if that misses too, :class:`Int8Rejected` carries the measured
numbers. With ``require_faster`` (precision ``auto``'s trial: post-training only, no
accuracy-control search) an int8 graph that is not at least ``speedup_min`` times as fast
as the float one on the same frames (best of 5 runs each) is rejected too.

Everything that decides the result is in :class:`Int8Settings`, part of the engine's
cache key. ``nncf`` and ``openvino`` are imported only here, inside functions.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rtderain.backends.base import BackendUnavailable, BuildRejected
from rtderain.models.export import LUMA_IO

log = logging.getLogger(__name__)

CALIBRATION_DIR = Path(__file__).with_name("calibration")
RECIPE = "bunny3-render4-v1"  # bump when the calibration data or the procedure change
PRESETS = ("storm", "heavy", "light", "diagonal")


@dataclass(frozen=True)
class Int8Settings:
    """How int8 graphs are calibrated and checked (all part of the cache key).

    Tuning: more ``calib_frames`` give steadier statistics and a slower build (each is one
    inference of the float graph at the engine's size); ``max_drop_db`` is the quality bound
    (Y-PSNR against the clean scenes); ``speedup_min`` is how much faster int8 must run for
    precision ``auto`` to keep it.
    """

    recipe: str = RECIPE
    calib_frames: int = 8
    val_frames: int = 4
    seed: int = 2026
    max_drop_db: float = 0.15
    min_parity_db: float = 38.0
    speedup_min: float = 1.1


class Int8Rejected(BuildRejected):
    """The int8 graph misses its quality bound (or, for ``auto``, is not faster)."""


def _import_nncf() -> Any:
    try:
        import nncf
    except ImportError as exc:
        raise BackendUnavailable(
            "openvino int8: nncf is not installed (pip install 'rtderain[int8]')"
        ) from exc
    return nncf


def _luma(rgb: np.ndarray) -> np.ndarray:
    """Full-range BT.601 luma (uint8, OpenCV's rounding) of (..., H, W, 3) uint8 RGB."""
    flat = cv2.cvtColor(rgb.reshape(-1, rgb.shape[-2], 3), cv2.COLOR_RGB2YCrCb)[..., 0]
    return flat.reshape(rgb.shape[:-1])


def _full_levels(out: np.ndarray, io: str) -> np.ndarray:
    """A graph's output as full-range luma levels (float64): the Y of RGB frames, or a
    luma graph's planes (limited range stretched to 0-255)."""
    if io not in LUMA_IO:
        return _luma(out).astype(np.float64)
    black, span = LUMA_IO[io]
    return (out.astype(np.float64) - black) * (255.0 / span)


def y_psnr(a: np.ndarray, b: np.ndarray, io: str = "u8") -> float:
    """Y-PSNR (BT.601 luma, 8-bit peak) of ``a`` (RGB, or a luma graph's Y planes for a
    luma ``io``) against ``b``, (..., H, W, 3) uint8 RGB of the same frames."""
    mse = float(np.mean((_full_levels(a, io) - _luma(b).astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _parity_db(a: np.ndarray, b: np.ndarray, io: str) -> float:
    """Y-PSNR between two outputs of the same graph interface."""
    mse = float(np.mean((_full_levels(a, io) - _full_levels(b, io)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def scenes(height: int, width: int) -> list[np.ndarray]:
    """The shipped calibration frames, resized to (H, W): (H, W, 3) uint8 RGB each."""
    paths = sorted(CALIBRATION_DIR.glob("*.jpg"))
    if not paths:
        raise BackendUnavailable(f"openvino int8: no calibration frames in {CALIBRATION_DIR}")
    out = []
    for path in paths:
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise BackendUnavailable(f"openvino int8: cannot read calibration frame {path}")
        out.append(cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (width, height),
                              interpolation=cv2.INTER_CUBIC))
    return out


def rendered_pairs(
    clean: Sequence[np.ndarray], count: int, seed: int
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``count`` (rainy, clean) frames: rain rendered over ``clean`` in turn, uint8 RGB."""
    from rtderain.synth import render

    rng = np.random.default_rng(seed)
    rainy, backs = [], []
    for i in range(count):
        back = clean[i % len(clean)]
        style = render.draw_style(render.get_ranges(PRESETS[i % len(PRESETS)], rng), rng)
        img = render.render_frame(back.astype(np.float32) / 255.0, style, rng)
        rainy.append(np.clip(img * 255.0 + 0.5, 0, 255).astype(np.uint8))
        backs.append(back)
    return rainy, backs


def _batches(frames: Sequence[np.ndarray], batch: int, io: str) -> list[np.ndarray]:
    """Frames stacked into graph inputs of ``batch`` frames (the last padded by repetition)."""
    out = []
    for start in range(0, len(frames), batch):
        chunk = list(frames[start : start + batch])
        chunk += [chunk[-1]] * (batch - len(chunk))
        out.append(to_graph_input(np.stack(chunk), io))
    return out


def to_graph_input(frames: np.ndarray, io: str) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB -> the graph's input: as is for ``u8``, (N, 3, H, W) float32
    in [-1, 1] for ``float``, the BT.601 Y planes (N, H, W) uint8 in the io's range for a
    luma io (what a decoder gives for frames encoded from this RGB)."""
    if io == "u8":
        return np.ascontiguousarray(frames)
    if io in LUMA_IO:
        black, span = LUMA_IO[io]
        y = _luma(frames).astype(np.float32)
        return np.clip(np.rint(black + y * (span / 255.0)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(frames.transpose(0, 3, 1, 2), dtype=np.float32) / 127.5 - 1.0


def from_graph_output(out: np.ndarray, io: str) -> np.ndarray:
    """The graph's output -> (N, H, W, 3) uint8 RGB (the inverse of :func:`to_graph_input`);
    a luma graph's Y planes stay as they are (:func:`y_psnr` reads them)."""
    if io == "u8" or io in LUMA_IO:
        return out
    return np.clip(np.rint((out.transpose(0, 2, 3, 1) + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _as_rgb(out: np.ndarray, frames: np.ndarray, io: str) -> list[np.ndarray]:
    """A graph's outputs for ``frames`` as RGB frames: a luma graph's de-rained Y planes
    become the frames minus the grey rain they lost (what the RGB path gives)."""
    if io not in LUMA_IO:
        return list(out)
    rain = _full_levels(to_graph_input(frames, io), io) - _full_levels(out, io)
    rgb = frames.astype(np.float64) - rain[..., None]
    return list(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))


def _runner(compiled: Any, io: str = "u8") -> Callable[[np.ndarray], np.ndarray]:
    request = compiled.create_infer_request()

    def run(x: np.ndarray) -> np.ndarray:
        request.infer([x])
        return from_graph_output(np.array(request.get_output_tensor(0).data, copy=True), io)

    return run


def _outputs(compiled: Any, batches: Sequence[np.ndarray], count: int, io: str) -> np.ndarray:
    run = _runner(compiled, io)
    return np.concatenate([run(b) for b in batches])[:count]


def _seconds_per_batch(compiled: Any, x: np.ndarray, io: str, repeats: int = 5) -> float:
    run = _runner(compiled, io)
    run(x)  # warm-up
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        run(x)
        best = min(best, time.perf_counter() - start)
    return best


@dataclass
class Int8Report:
    """What the build measured (kept in the engine's log line and the docs)."""

    float_db: float
    int8_db: float
    parity_db: float
    method: str
    float_ms: float = 0.0
    int8_ms: float = 0.0

    @property
    def drop_db(self) -> float:
        return self.float_db - self.int8_db

    def line(self) -> str:
        speed = (f", {self.int8_ms:.1f} against {self.float_ms:.1f} ms per batch"
                 if self.float_ms else "")
        return (f"int8 ({self.method}): Y-PSNR {self.int8_db:.2f} against float "
                f"{self.float_db:.2f} dB (drop {self.drop_db:.3f}), parity "
                f"{self.parity_db:.1f} dB{speed}")


def quantize(
    converted: Any,
    compile_fn: Callable[[Any], Any],
    batch: int,
    height: int,
    width: int,
    settings: Int8Settings,
    *,
    io: str = "u8",
    require_faster: bool = False,
) -> tuple[Any, Int8Report]:
    """The compiled int8 model of ``converted`` (an ``openvino.Model`` with a static input:
    (batch, H, W, 3) uint8 for ``io`` ``u8``, (batch, 3, H, W) float32 [-1, 1] for
    ``float``; compiled by ``compile_fn``, the one that was measured) and what was
    measured; :class:`Int8Rejected` if it misses.

    ``compile_fn(model)`` compiles a model with the backend's settings (the float
    precision of the non-quantised layers included).
    """
    nncf = _import_nncf()
    s = settings
    float_compiled = compile_fn(converted)
    sources = scenes(height, width)
    clean = _as_rgb(_outputs(float_compiled, _batches(sources, batch, io), len(sources), io),
                    np.stack(sources), io)
    calib, _ = rendered_pairs(clean, s.calib_frames, s.seed)
    val_rainy, val_clean = rendered_pairs(clean, s.val_frames, s.seed + 1)
    calib_batches, val_batches = _batches(calib, batch, io), _batches(val_rainy, batch, io)
    reference = _outputs(float_compiled, val_batches, len(val_rainy), io)
    float_db = float(np.mean([y_psnr(o, c, io) for o, c in zip(reference, val_clean,
                                                                strict=True)]))

    def measure(model: Any, method: str) -> tuple[Any, Int8Report]:
        compiled = compile_fn(model)
        out = _outputs(compiled, val_batches, len(val_rainy), io)
        int8_db = float(np.mean([y_psnr(o, c, io) for o, c in zip(out, val_clean, strict=True)]))
        return compiled, Int8Report(float_db, int8_db, _parity_db(out, reference, io), method)

    def validate(compiled: Any, data: Any) -> float:
        outs = [_runner(compiled, io)(x) for x in data]
        got = np.concatenate(outs)[: len(val_clean)]
        return float(np.mean([y_psnr(o, c, io) for o, c in zip(got, val_clean, strict=True)]))

    calibration = nncf.Dataset(calib_batches)
    with warnings.catch_warnings(), _quiet_nncf():
        warnings.simplefilter("ignore")
        compiled, report = measure(
            nncf.quantize(converted, calibration, subset_size=len(calib_batches),
                          preset=nncf.QuantizationPreset.MIXED),
            "post-training",
        )
        missed = report.drop_db > s.max_drop_db or report.parity_db < s.min_parity_db
        if missed and not require_faster:  # auto's trial stays short: no second search
            log.info("%s: over the bound, trying NNCF accuracy control", report.line())
            compiled, report = measure(
                nncf.quantize_with_accuracy_control(
                    converted, calibration, nncf.Dataset(val_batches), validate,
                    max_drop=s.max_drop_db, subset_size=len(calib_batches),
                    preset=nncf.QuantizationPreset.MIXED,
                ),
                "accuracy control",
            )
    if report.drop_db > s.max_drop_db or report.parity_db < s.min_parity_db:
        raise Int8Rejected(
            f"openvino int8: {report.line()}; the bound is a drop of at most "
            f"{s.max_drop_db} dB and parity of at least {s.min_parity_db} dB"
        )
    if require_faster:
        report.float_ms = 1000 * _seconds_per_batch(float_compiled, calib_batches[0], io)
        report.int8_ms = 1000 * _seconds_per_batch(compiled, calib_batches[0], io)
        if report.int8_ms * s.speedup_min > report.float_ms:
            raise Int8Rejected(
                f"openvino int8: not faster here ({report.line()}; needs "
                f"{s.speedup_min}x)"
            )
    log.info("%s", report.line())
    return compiled, report


@contextlib.contextmanager
def _quiet_nncf() -> Iterator[None]:
    """NNCF's INFO chatter off, and its progress bars (rich, on ``sys.stdout``, which may
    be the video stream of ``-o -``) captured, while quantising: our log says the result."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
