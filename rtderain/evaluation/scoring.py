"""Scoring de-rained frames against clean frames: per-frame metrics, method runs, results.

:func:`score_frames` compares two frame streams frame by frame; :func:`run_method` runs a
method (:mod:`rtderain.evaluation.methods`) on a benchmark sequence
(:mod:`rtderain.evaluation.datasets`) and scores its output. Metric conventions (Y by
default, crop, skipped frames) are in :mod:`rtderain.evaluation.metrics` and
``docs/evaluation.md``; every report states the ones used.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rtderain.errors import RTDerainError
from rtderain.evaluation import metrics as M
from rtderain.evaluation.datasets import Sequence, read_frames

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Options:
    """How frames are scored: ``channel`` ``y``/``rgb``, border ``crop``, frames skipped."""

    channel: str = "y"
    crop: int = 0
    skip_first: int = 0
    skip_last: int = 0
    metrics: tuple[str, ...] = M.METRICS
    temporal: bool = True  # warping error and flicker of video sequences

    def describe(self) -> dict[str, Any]:
        y = "Y of MATLAB rgb2ycbcr (BT.601 studio swing, not rounded)"
        return {
            "channel": self.channel,
            "space": y if self.channel == "y" else "RGB (VIF on 0.299/0.587/0.114 luma; FSIMc)",
            "crop": self.crop,
            "skip_first": self.skip_first,
            "skip_last": self.skip_last,
            "metrics": list(self.metrics),
            "psnr": "peak 255, inf for identical frames",
            "ssim": "MATLAB ssim_index: 11x11 Gaussian sigma 1.5, no downsampling",
            "vif": "pixel domain (piq vif_p)",
            "fsim": "piq fsim (auto-downsampling)"
            + (" with chroma (FSIMc)" if self.channel == "rgb" else ""),
            "temporal": (
                "warp: Lai et al. 2018 warping error along the ground truth's DIS flow "
                "(medium preset), mean squared RGB in [0, 1] over non-occluded pixels; "
                "warp_rel: minus the ground truth's own; flicker: mean temporal std of Y "
                "(0-255), all pixels and the ground truth's static background (std < 2)"
                if self.temporal else "off"
            ),
        }


@dataclass
class SequenceResult:
    """Scores of one sequence: per-frame metric dicts and their means."""

    sequence: str
    method: str
    per_frame: list[dict[str, float]] = field(default_factory=list)
    seconds: float | None = None  # method wall time (inline runs only)
    cpu_seconds: float | None = None  # CPU time of this process during the method
    frames_run: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    sample: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # (input, output, gt)
    temporal: dict[str, float] = field(default_factory=dict)  # TemporalScores.result()

    def means(self) -> dict[str, float]:
        keys = [k for k in (self.per_frame[0] if self.per_frame else {}) if k != "index"]
        return {k: _mean([f[k] for f in self.per_frame]) for k in keys}

    def seconds_per_frame(self) -> float | None:
        if self.seconds is None or not self.frames_run:
            return None
        return self.seconds / self.frames_run

    def to_dict(self, per_frame: bool = True) -> dict[str, Any]:
        spf = self.seconds_per_frame()
        out: dict[str, Any] = {"method": self.method, "sequence": self.sequence}
        out["frames"] = len(self.per_frame)
        out.update(self.means())
        out.update(self.temporal)
        out["seconds_per_frame"] = spf
        out["fps"] = (1.0 / spf) if spf else None
        if self.cpu_seconds is not None and self.frames_run:
            out["cpu_seconds_per_frame"] = self.cpu_seconds / self.frames_run
        if self.params:
            out["params"] = self.params
        if per_frame:
            out["per_frame"] = self.per_frame
        return out


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


TEMPORAL_KEYS = ("warp", "warp_rel", "flicker", "flicker_static")


class TemporalScores:
    """Temporal consistency of one output sequence against its ground truth, frame by frame
    (:mod:`rtderain.evaluation.temporal`; definitions in ``docs/evaluation.md``).

    ``result()`` keys: ``warp``, the warping error (Lai et al. 2018) of the output along the
    ground truth's DIS flow, mean squared RGB difference in [0, 1] units over non-occluded
    pixels; ``warp_rel``, the same minus the ground truth's own (0: as consistent as the
    clean video); ``flicker``, the mean temporal std of Y (0-255 levels) over all pixels;
    ``flicker_static``, the same over the ground truth's static background (its own std of
    Y below 2 levels). NaN when undefined (one frame; no static pixel).
    """

    def __init__(self) -> None:
        from rtderain.evaluation.temporal import Flicker, WarpingError

        self._warp = WarpingError()
        self._pred = Flicker()
        self._gt = Flicker()

    def update(self, pred: np.ndarray, gt: np.ndarray) -> None:
        self._warp.update(pred, gt)
        self._pred.update(pred)
        self._gt.update(gt)

    def result(self) -> dict[str, float]:
        warp = self._warp.result()
        static = self._gt.static_mask()
        return {
            "warp": float(warp["warping_error"]),
            "warp_rel": float(warp["relative_warping_error"]),
            "flicker": float(self._pred.result()["flicker"]),
            "flicker_static": float(self._pred.result(static)["flicker"])
            if static.any() else math.nan,
        }


# ----------------------------------------------------------------------------- frame sources


def score_frames(
    pred: Iterable[np.ndarray],
    gt: Iterable[np.ndarray],
    options: Options,
    *,
    pred_name: str = "prediction",
    gt_name: str = "ground truth",
    temporal: TemporalScores | None = None,
) -> list[dict[str, float]]:
    """Per-frame metrics of two equally long frame streams (skipped frames left out);
    ``temporal`` (if given) is fed the scored frames in order.

    Raises :class:`RTDerainError` naming both sources on a count or size mismatch.
    """
    out: list[dict[str, float]] = []
    held: deque[tuple[int, np.ndarray, np.ndarray]] = deque()  # the last `skip_last` pairs
    it_p, it_g = iter(pred), iter(gt)
    n = 0
    while True:
        p, g = next(it_p, None), next(it_g, None)
        if p is None or g is None:
            if p is not None or g is not None:
                more = sum(1 for _ in (it_p if p is not None else it_g)) + 1
                longer, shorter = (pred_name, gt_name) if p is not None else (gt_name, pred_name)
                raise RTDerainError(
                    f"frame counts differ: {longer} has {n + more} frames, {shorter} has {n}"
                )
            break
        if p.shape != g.shape:
            raise RTDerainError(
                f"frame {n}: {pred_name} is {p.shape[1]}x{p.shape[0]} but {gt_name} is "
                f"{g.shape[1]}x{g.shape[0]}"
            )
        if n >= options.skip_first:
            held.append((n, p, g))
            if len(held) > options.skip_last:
                i, a, b = held.popleft()
                scores = M.compute(
                    a, b, channel=options.channel, crop=options.crop, metrics=options.metrics
                )
                out.append({"index": i, **scores})
                if temporal is not None:
                    temporal.update(a, b)
        n += 1
    if n == 0:
        raise RTDerainError(f"no frames in {pred_name}")
    if not out:
        raise RTDerainError(
            f"--skip-first {options.skip_first} and --skip-last {options.skip_last} leave none "
            f"of the {n} frames"
        )
    return out


def run_method(
    method: Any,
    seq: Sequence,
    options: Options,
    *,
    images: bool = False,
    sample_index: int | None = None,
    limit: int | None = None,
) -> SequenceResult:
    """Run ``method`` on ``seq``'s rainy frames and score the output against its clean frames.

    ``images``: the frames are unrelated images (e.g. Rain100H); each is its own one-frame
    clip. Otherwise all frames are one video, given to the method in order. The rainy frames
    are loaded first so the timing covers the method only. ``sample_index`` keeps that
    frame's (input, output, gt) for picture grids (-1: the middle frame); ``limit`` uses
    only the first frames.
    """
    from rtderain.media.images import list_images

    rain_files, gt_files = list_images(seq.rain), list_images(seq.gt)
    if len(rain_files) != len(gt_files):
        raise RTDerainError(
            f"{seq.rain} has {len(rain_files)} frames but {seq.gt} has {len(gt_files)}"
        )
    if limit is not None:
        rain_files, gt_files = rain_files[:limit], gt_files[:limit]
    rainy = [f for p in rain_files for f in read_frames(p)]
    if not images and len({f.shape for f in rainy}) > 1:
        raise RTDerainError(
            f"{seq.rain}: frames differ in size, so they are not one video "
            "(pass --images for a set of unrelated images)"
        )
    warmup = getattr(method, "warmup", None)
    if warmup is not None:  # e.g. engine compilation for this frame size: not timed
        warmup(rainy[0])
    t0, c0 = time.perf_counter(), time.process_time()
    if images:
        outputs = [next(iter(method([f]))) for f in rainy]
    else:
        outputs = list(method(rainy))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if len(outputs) != len(rainy):
        raise RTDerainError(f"method {method.name} returned {len(outputs)} of {len(rainy)} frames")
    gt = [f for p in gt_files for f in read_frames(p)]
    result = SequenceResult(
        seq.name, method.name, seconds=seconds, frames_run=len(rainy), params=method.params()
    )
    result.cpu_seconds = cpu
    temporal = TemporalScores() if options.temporal and not images else None
    result.per_frame = score_frames(
        outputs, gt, options, pred_name=f"{method.name} output", gt_name=str(seq.gt),
        temporal=temporal,
    )
    if temporal is not None:
        result.temporal = temporal.result()
    if sample_index is not None:
        i = len(rainy) // 2 if sample_index < 0 else min(sample_index, len(rainy) - 1)
        result.sample = (rainy[i], outputs[i], gt[i])
    return result
