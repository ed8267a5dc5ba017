"""``rtderain eval``: PSNR / SSIM / VIF / FSIM of de-rained frames against clean frames.

Two ways in:

- ``rtderain eval PRED GT``: PRED and GT are video files, frame folders or single images;
  frame i of PRED is compared with frame i of GT.
- ``rtderain eval --method NAME --dataset FOLDER``: run a method (``rtderain.methods``) on
  the dataset's rainy frames and score its output. FOLDER holds ``rain/`` and ``gt/`` (or
  ``clean/``) frame folders, or sub-folders that each do (one sequence each).

Metric conventions (Y by default, crop, skipped frames) are in ``rtderain.metrics`` and
``docs/evaluation.md``; every report states the ones used.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np

from rtderain import metrics as M
from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

GT_NAMES = ("gt", "clean")


@dataclass(frozen=True)
class Options:
    """How frames are scored: ``channel`` ``y``/``rgb``, border ``crop``, frames skipped."""

    channel: str = "y"
    crop: int = 0
    skip_first: int = 0
    skip_last: int = 0
    metrics: tuple[str, ...] = M.METRICS

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


# ----------------------------------------------------------------------------- frame sources


def _to_uint8(frame: np.ndarray) -> np.ndarray:
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return np.round(frame / 257.0).astype(np.uint8)
    raise RTDerainError(f"unsupported sample type {frame.dtype}")


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Frames of a video file, a folder of images (sorted by name) or one image, as uint8 RGB."""
    from rtderain.media.images import is_image, list_images, read_image

    path = Path(path)
    if not path.exists():
        raise RTDerainError(f"not found: {path}")
    if path.is_dir():
        for p in list_images(path):
            yield _to_uint8(read_image(p))
    elif is_image(path):
        yield _to_uint8(read_image(path))
    else:
        from rtderain.media.reader import VideoReader

        reader = VideoReader(path, copy=())
        try:
            for frame in reader.frames():
                yield _to_uint8(frame.rgb)
        finally:
            reader.close()


def score_frames(
    pred: Iterable[np.ndarray],
    gt: Iterable[np.ndarray],
    options: Options,
    *,
    pred_name: str = "prediction",
    gt_name: str = "ground truth",
) -> list[dict[str, float]]:
    """Per-frame metrics of two equally long frame streams (skipped frames left out).

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
        n += 1
    if n == 0:
        raise RTDerainError(f"no frames in {pred_name}")
    if not out:
        raise RTDerainError(
            f"--skip-first {options.skip_first} and --skip-last {options.skip_last} leave none "
            f"of the {n} frames"
        )
    return out


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class Sequence:
    """One benchmark sequence: rainy frames and clean frames, matched by sorted file name."""

    name: str
    rain: Path
    gt: Path


def find_sequences(folder: str | Path) -> list[Sequence]:
    """``folder/rain`` + ``folder/gt`` (or ``clean``): one sequence; else each sub-folder that
    has them. No sequence found is an error naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RTDerainError(f"dataset folder not found: {folder}")

    def one(d: Path) -> Sequence | None:
        gts = [d / n for n in GT_NAMES if (d / n).is_dir()]
        return Sequence(d.name, d / "rain", gts[0]) if (d / "rain").is_dir() and gts else None

    seq = one(folder)
    if seq is not None:
        return [seq]
    seqs = [s for d in sorted(folder.iterdir()) if d.is_dir() for s in [one(d)] if s]
    if not seqs:
        raise RTDerainError(f"{folder}: no rain/ and gt/ (or clean/) frame folders in it or below")
    return seqs


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
    result.per_frame = score_frames(
        outputs, gt, options, pred_name=f"{method.name} output", gt_name=str(seq.gt)
    )
    if sample_index is not None:
        i = len(rainy) // 2 if sample_index < 0 else min(sample_index, len(rainy) - 1)
        result.sample = (rainy[i], outputs[i], gt[i])
    return result


# ----------------------------------------------------------------------------- CLI


def _parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in M.METRICS]
    if bad or not names:
        raise RTDerainError(
            f"unknown metric {bad[0] if bad else text!r}; use {','.join(M.METRICS)}"
        )
    return names


@click.command("eval")
@click.argument("pred", required=False, type=click.Path())
@click.argument("gt", required=False, type=click.Path())
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="NAME",
    help="Run this method on --dataset (repeatable). See --list-methods.",
)
@click.option("--dataset", type=click.Path(), help="Folder with rain/ and gt/ (or clean/).")
@click.option("--weights", type=click.Path(), help="Checkpoint for a network --method.")
@click.option(
    "--images",
    is_flag=True,
    help="The dataset frames are unrelated images, each its own clip (e.g. Rain100H).",
)
@click.option("--rgb", is_flag=True, help="RGB PSNR/SSIM and FSIMc instead of luminance Y.")
@click.option("--crop", default=0, show_default=True, help="Border pixels ignored per side.")
@click.option("--skip-first", default=0, show_default=True, help="Ignore the first N frames.")
@click.option("--skip-last", default=0, show_default=True, help="Ignore the last N frames.")
@click.option(
    "--metrics",
    "metric_list",
    default=",".join(M.METRICS),
    show_default=True,
    help="Comma-separated subset of psnr,ssim,vif,fsim.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write CSV here.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write a PNG plot of per-frame PSNR and SSIM here.",
)
@click.option("--list-methods", is_flag=True, help="List the method names and exit.")
def eval_command(
    pred,
    gt,
    methods,
    dataset,
    weights,
    images,
    rgb,
    crop,
    skip_first,
    skip_last,
    metric_list,
    json_path,
    csv_path,
    plot_path,
    list_methods,
) -> None:
    """Score de-rained frames against clean ones: PSNR, SSIM, VIF, FSIM.

    \b
    Examples:
      rtderain eval derained.mp4 clean.mp4 --json scores.json
      rtderain eval out_frames/ ../shared/data/nturain_a1/gt --plot psnr.png
      rtderain eval --method garg-nayar --method identity --dataset ../shared/data/nturain_a1

    Default: luminance Y (MATLAB rgb2ycbcr, BT.601), PSNR peak 255, SSIM as MATLAB
    ssim_index, VIF pixel domain, FSIM as piq (details: docs/evaluation.md).
    """
    from rtderain.bench import report
    from rtderain.methods import METHODS, create_method

    if list_methods:
        for info in METHODS.values():
            click.echo(f"{info.name:16s} {info.kind:9s} {info.summary}")
        return
    options = Options(
        "rgb" if rgb else "y", crop, skip_first, skip_last, _parse_metrics(metric_list)
    )
    for name, value in (("--crop", crop), ("--skip-first", skip_first), ("--skip-last", skip_last)):
        if value < 0:
            raise RTDerainError(f"{name} must be >= 0, got {value}")
    results: list[SequenceResult] = []
    if methods or dataset:
        if pred or gt:
            raise RTDerainError("give either PRED GT or --method/--dataset, not both")
        if not (methods and dataset):
            raise RTDerainError("--method and --dataset go together")
        for name in methods:  # fail on a bad name before any work
            if name not in METHODS:
                raise RTDerainError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
        seqs = find_sequences(dataset)
        for name in methods:
            kw = {"weights": weights} if weights and METHODS[name].kind == "network" else {}
            method = create_method(name, **kw)
            for seq in seqs:
                log.info("running %s on %s", name, seq.name)
                results.append(run_method(method, seq, options, images=images))
    else:
        if not (pred and gt):
            raise RTDerainError(
                "give PRED and GT (frames to score and clean frames), "
                "or --method NAME --dataset FOLDER"
            )
        per_frame = score_frames(
            read_frames(pred), read_frames(gt), options, pred_name=str(pred), gt_name=str(gt)
        )
        results.append(SequenceResult(Path(gt).name, Path(pred).name, per_frame))
    conv = options.describe()
    click.echo(f"space: {conv['space']}; crop {crop}; skip first {skip_first}, last {skip_last}")
    click.echo(report.table(results, timing=any(r.seconds is not None for r in results)))
    if json_path:
        report.write_json(json_path, results, conv)
    if csv_path:
        report.write_csv(csv_path, results)
    if plot_path:
        report.write_plot(plot_path, results)
