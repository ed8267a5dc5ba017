"""The streaming temporal stage: per-frame de-rained frames in, temporally fused frames out.

Usable by the file pipeline (``window``: centred window, ``radius`` frames of look-ahead)
and live (``causal``: past frames only, every push returns its own frame). Memory is
bounded: at most ``2 * radius + 1`` (window) or ``radius + 1`` (causal) frames are held,
whatever the clip length. Every frame pushed comes out exactly once, in push order, with
its payload (the pipeline carries the frame's pts there).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from rtderain.errors import RTDerainError
from rtderain.temporal.align import Aligner, PairAlignment, flow_factor, luma, small_grey
from rtderain.temporal.fuse import Neighbour, fuse
from rtderain.temporal.settings import TemporalSettings
from rtderain.temporal.still import fuse_still

log = logging.getLogger(__name__)

Output = list[tuple[np.ndarray, Any]]


@dataclass
class _Frame:
    index: int
    rainy: np.ndarray
    derained: np.ndarray
    payload: Any
    small: np.ndarray  # flow-grid luma of the de-rained frame, uint8
    rainy_luma: np.ndarray  # (H, W), frame dtype


class TemporalStage:
    """Fuses each de-rained frame with its aligned neighbours (see ``docs/temporal.md``).

    Frames are ``(H, W, 3)`` RGB, uint8 or uint16 (full scale 65535), or ``(H, W)`` luma
    planes (a luma network's Y plane, whose rain is grey: the YUV-native path fuses Y alone
    and keeps the chroma planes as decoded); ``rainy`` and ``derained`` of one push share
    shape and dtype. A change of size or dtype, or a scene
    cut (alignment to the previous frame fails almost everywhere), resets the window: the
    pending frames are finished with what came before, and nothing from before the reset
    is used after it. Returned arrays are new, or the pushed ``derained`` itself where
    nothing was fused; do not modify them in place while the stage holds the frame.

    Example::

        stage = TemporalStage("window", radius=2)
        for rainy, derained, pts in frames:
            for frame, pts_out in stage.push(rainy, derained, pts):
                write(frame, pts_out)
        for frame, pts_out in stage.flush():
            write(frame, pts_out)
    """

    def __init__(
        self,
        mode: str | None = None,
        radius: int | None = None,
        settings: TemporalSettings | None = None,
        **overrides: Any,
    ) -> None:
        """``mode``, ``radius`` and keyword ``overrides`` replace fields of ``settings``
        (default :class:`TemporalSettings`: window mode, radius 2)."""
        if mode is not None:
            overrides["mode"] = mode
        if radius is not None:
            overrides["radius"] = radius
        self.settings = replace(settings or TemporalSettings(), **overrides).resolved()
        self._frames: deque[_Frame] = deque()
        self._pairs: dict[tuple[int, int], PairAlignment] = {}
        self._aligner: Aligner | None = None
        self._key: tuple | None = None  # (shape, dtype) of the current segment
        self._next = 0  # index of the next frame to push
        self._centre = 0  # window mode: index of the next frame to emit
        self.resets = 0  # scene cuts and format changes seen
        self.max_buffered = 0

    @property
    def buffered(self) -> int:
        """Frames held right now."""
        return len(self._frames)

    @property
    def bound(self) -> int:
        """The most frames this stage ever holds."""
        r = self.settings.radius
        return {"off": 0, "window": 2 * r + 1, "causal": r + 1}[self.settings.mode]

    def push(self, rainy: np.ndarray, derained: np.ndarray, payload: Any = None) -> Output:
        """Add one frame; return the frames that are now final, in order, with payloads."""
        _check(rainy, derained)
        if self.settings.mode == "off":
            return [(derained, payload)]
        out: Output = []
        key = (derained.shape, derained.dtype)
        if key != self._key:
            if self._key is not None:
                log.info("temporal: frame format %s -> %s, window reset", self._key, key)
                out += self._reset()
                self.resets += 1
            self._start_segment(key)
        aligner = self._aligner
        assert aligner is not None
        small = small_grey(luma(derained), aligner.factor)
        frame = _Frame(self._next, rainy, derained, payload, small, luma(rainy))
        if self._frames and self._is_cut(frame):
            log.info("temporal: scene cut before frame %d, window reset", frame.index)
            out += self._reset()
            self.resets += 1
            self._start_segment(key)
            frame.index = self._next
        self._add(frame)
        if self.settings.mode == "causal":
            out.append(self._emit(frame.index))
            self._evict(frame.index + 1 - self.settings.radius)
        elif frame.index - self._centre >= self.settings.radius:
            out.append(self._emit(self._centre))
            self._centre += 1
            self._evict(self._centre - self.settings.radius)
        return out

    def flush(self) -> Output:
        """End of stream: the frames still held, fused with what is available, in order."""
        return self._reset() if self.settings.mode != "off" else []

    # -- internals ---------------------------------------------------------------------

    @property
    def _flow_radius(self) -> int:
        return min(self.settings.radius, self.settings.flow_radius)

    def _start_segment(self, key: tuple) -> None:
        shape = key[0]
        s = self.settings
        factor = flow_factor(shape[0], shape[1], s.flow_scale)
        self._aligner = Aligner(
            shape[0], shape[1], factor, s.fb_tol, s.photo_tol, s.photo_grad, s.flow_preset
        )
        self._key = key
        self._next = self._centre = 0

    def _reset(self) -> Output:
        out: Output = []
        if self.settings.mode == "window":
            while self._frames and self._centre < self._next:
                out.append(self._emit(self._centre))
                self._centre += 1
        self._frames.clear()
        self._pairs.clear()
        self._key = None
        return out

    def _is_cut(self, frame: _Frame) -> bool:
        prev = self._frames[-1]
        aligner = self._aligner
        assert aligner is not None
        if self._flow_radius == 0:  # no flow rule to reuse the pair: one direction only
            return aligner.misaligned(frame.small, prev.small) > self.settings.cut_fraction
        pair = aligner.align_pair(frame.small, prev.small)
        if pair.bad_fraction() > self.settings.cut_fraction:
            return True
        self._pairs[(frame.index, prev.index)] = pair
        return False

    def _add(self, frame: _Frame) -> None:
        aligner = self._aligner
        assert aligner is not None
        for other in self._frames:
            if frame.index - other.index <= self._flow_radius:
                key = (frame.index, other.index)
                if key not in self._pairs:
                    self._pairs[key] = aligner.align_pair(frame.small, other.small)
        self._frames.append(frame)
        self._next = frame.index + 1
        self.max_buffered = max(self.max_buffered, len(self._frames))

    def _alignment(self, centre: int, other: int) -> tuple[np.ndarray, np.ndarray]:
        """Flow centre -> other and its trust mask (small grid)."""
        if (centre, other) in self._pairs:
            pair = self._pairs[(centre, other)]
            return pair.flow_ab, pair.ok_ab
        pair = self._pairs[(other, centre)]
        return pair.flow_ba, pair.ok_ba

    def _emit(self, index: int) -> tuple[np.ndarray, Any]:
        s = self.settings
        aligner = self._aligner
        assert aligner is not None
        centre = next(f for f in self._frames if f.index == index)
        others = [
            f
            for f in self._frames
            if f.index != index
            and abs(f.index - index) <= s.radius
            and (s.mode == "window" or f.index < index)
        ]
        k = _level(centre.derained)
        still = None
        if others and s.still_shift > 0:
            still = fuse_still(
                centre.derained,
                centre.rainy,
                _groups(others, index),
                tol=s.still_tol * k,
                blob=s.still_blob,
                guard=s.still_guard,
                max_shift=s.still_shift,
                centre_luma=centre.rainy_luma if _centre_check(s.still_centre, others, index)
                else None,
                agree=bool(s.still_agree),
            )
            if still is centre.derained:  # a still camera, but no static background
                still = None
        near = [f for f in others if abs(f.index - index) <= self._flow_radius]
        aligned = []
        motion = None
        for other in near:
            flow, ok = self._alignment(index, other.index)
            if ok.any():
                moved = aligner.motion(flow, s.motion_ref)
                motion = moved if motion is None else np.maximum(motion, moved)
                aligned.append(
                    Neighbour(
                        other.derained,
                        other.rainy_luma,
                        aligner.coords(flow),
                        aligner.upsample_mask(ok),
                        1 if other.index > index else -1,
                    )
                )
        fused = fuse(
            centre.derained,
            centre.rainy,
            aligned,
            rain_lo=s.rain_lo * k,
            rain_hi=s.rain_hi * k,
            grad_weight=s.grad_weight,
            min_neighbours=s.min_neighbours,
            streak_width=s.streak_width,
            motion=None if motion is None else aligner.upsample_mask(motion),
            both_sides=s.both_sides and s.mode == "window",
            fill_spread=s.fill_spread * k,
        )
        if still is not None:  # static background from the still rule, the rest by flow
            if fused is centre.derained:  # the flow rule changed nothing: the still result
                return still, centre.payload
            cv2.copyTo(still, _changed(still, centre.derained), fused)
        return fused, centre.payload

    def _evict(self, first_kept: int) -> None:
        while self._frames and self._frames[0].index < first_kept:
            gone = self._frames.popleft().index
            for key in [k for k in self._pairs if gone in k]:
                del self._pairs[key]


def _centre_check(when: str | None, others: list[_Frame], index: int) -> bool:
    """Whether the still rule checks the centre against the past (``still_centre``):
    always, never, or at the ends of a window (one side longer by more than a frame)."""
    if when != "ends":
        return when == "always"
    past = sum(f.index < index for f in others)
    return abs(past - (len(others) - past)) > 1


def _groups(others: list[_Frame], index: int) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Two disjoint neighbour groups for the still rule: past and future (window), or
    alternate frames when one side is empty (causal, clip ends); ``(rainy, rainy_luma)``."""
    past = [f for f in others if f.index < index]
    future = [f for f in others if f.index > index]
    if not past or not future:
        ordered = sorted(others, key=lambda f: abs(f.index - index))
        past, future = ordered[0::2], ordered[1::2]
    return [[(f.rainy, f.rainy_luma) for f in group] for group in (past, future)]


def _changed(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(H, W)`` uint8 mask, non-zero where two frames differ in any channel (OpenCV per
    plane: a numpy reduction over the channel axis costs ~10x more)."""
    if a.ndim == 2:
        return cv2.compare(cv2.absdiff(a, b), 0, cv2.CMP_NE)
    r, g, b_ = cv2.split(cv2.absdiff(a, b))
    return cv2.compare(cv2.max(cv2.max(r, g), b_), 0, cv2.CMP_NE)


def _level(frame: np.ndarray) -> float:
    """Factor from 8-bit levels to the frame's scale."""
    return 65535.0 / 255.0 if frame.dtype == np.uint16 else 1.0


def _check(rainy: np.ndarray, derained: np.ndarray) -> None:
    for name, arr in (("rainy", rainy), ("derained", derained)):
        if not isinstance(arr, np.ndarray) or not (
            arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)
        ):
            shape = getattr(arr, "shape", type(arr).__name__)
            raise RTDerainError(
                f"temporal stage: {name} frame must be (H, W, 3) RGB or an (H, W) luma "
                f"plane, got {shape}"
            )
        if arr.dtype not in (np.uint8, np.uint16):
            raise RTDerainError(
                f"temporal stage: {name} frame must be uint8 or uint16, got {arr.dtype}"
            )
    if rainy.shape != derained.shape or rainy.dtype != derained.dtype:
        raise RTDerainError(
            f"temporal stage: rainy {rainy.shape} {rainy.dtype} and derained "
            f"{derained.shape} {derained.dtype} differ"
        )
