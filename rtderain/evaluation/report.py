"""Quality reports: terminal/markdown table, JSON, CSV, per-frame plot and picture grid.

Shared by ``rtderain eval`` and ``rtderain bench quality``. Inputs are lists of
:class:`rtderain.evaluation.scoring.SequenceResult`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rtderain import util
from rtderain.errors import RTDerainError

if TYPE_CHECKING:
    from rtderain.evaluation.scoring import SequenceResult

COLUMNS = (
    ("psnr", "PSNR", "{:.2f}"),
    ("ssim", "SSIM", "{:.4f}"),
    ("vif", "VIF", "{:.4f}"),
    ("fsim", "FSIM", "{:.4f}"),
    ("warp", "warp err", "{:.5f}"),
    ("flicker", "flicker", "{:.2f}"),
    ("flicker_static", "flicker static", "{:.2f}"),
)


def _fmt(value: float | None, pattern: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "inf"
    return pattern.format(value)


def table(
    results: Sequence[SequenceResult], *, timing: bool = True, group: str = "sequence"
) -> str:
    """A markdown table, one row per (method, sequence); ``group`` names the sequence column."""
    present = {k for r in results for k in (*r.means(), *r.temporal)}
    metrics = [c for c in COLUMNS if c[0] in present]
    head = ["method", group, "frames", *[c[1] for c in metrics]]
    cpu = timing and any(r.cpu_seconds is not None for r in results)
    if timing:
        head += ["s/frame", "fps"] + (["CPU s/frame"] if cpu else [])
    rows = [head, ["---"] * len(head)]
    for r in results:
        means = {**r.means(), **r.temporal}
        row = [r.method, r.sequence, str(len(r.per_frame))]
        row += [_fmt(means.get(k), p) for k, _, p in metrics]
        if timing:
            spf = r.seconds_per_frame()
            fps = 1 / spf if spf else None
            row += [_fmt(spf, "{:.3f}"), ">1000" if fps and fps > 1000 else _fmt(fps, "{:.2f}")]
            if cpu:
                c = (
                    r.cpu_seconds / r.frames_run
                    if r.cpu_seconds is not None and r.frames_run
                    else None
                )
                row += [_fmt(c, "{:.3f}")]
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for row in rows:
        cells = [
            c.ljust(w) if row[1] != "---" else "-" * w for c, w in zip(row, widths, strict=True)
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _out_path(path: str | Path) -> Path:
    """``path`` if a report can be written there: its folder exists and is writable and it
    is not a folder itself (callers check before any scoring)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise RTDerainError(f"output folder does not exist: {path.parent} (for {path})")
    if not os.access(path.parent, os.W_OK):
        raise RTDerainError(f"output folder is not writable: {path.parent} (for {path})")
    if path.is_dir():
        raise RTDerainError(f"output {path} is a folder; give a file name")
    return path


def check_outputs(*paths: str | Path | None) -> None:
    """Refuse, before any work, a report path that cannot be written (see ``_out_path``)."""
    for path in paths:
        if path:
            _out_path(path)


def write_json(
    path: str | Path,
    results: Sequence[SequenceResult],
    convention: dict,
    extra: dict[str, Any] | None = None,
) -> None:
    """Per-sequence means (keys psnr, ssim, vif, fsim), per-frame values and the convention.

    Identical frames give PSNR ``Infinity`` (Python's JSON extension)."""
    doc: dict[str, Any] = {"convention": convention, **(extra or {})}
    doc["results"] = [r.to_dict(per_frame=True) for r in results]
    util.atomic_write_text(_out_path(path), json.dumps(doc, indent=1) + "\n")


def write_csv(path: str | Path, results: Sequence[SequenceResult]) -> None:
    """One row per frame plus one ``mean`` row per (method, sequence)."""
    keys = [k for k, _, _ in COLUMNS if results and k in results[0].means()]
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(["method", "sequence", "frame", *keys])
    for r in results:
        for f in r.per_frame:
            w.writerow([r.method, r.sequence, f["index"], *[f[k] for k in keys]])
        means = r.means()
        w.writerow([r.method, r.sequence, "mean", *[means[k] for k in keys]])
    util.atomic_write_text(_out_path(path), buf.getvalue())


def write_plot(path: str | Path, results: Sequence[SequenceResult]) -> None:
    """PNG: per-frame PSNR (top) and SSIM (bottom), one line per (method, sequence)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = _out_path(path)
    keys = [k for k in ("psnr", "ssim") if results and k in results[0].means()]
    if not keys:
        raise RTDerainError("--plot needs psnr or ssim among the metrics")
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 3.2 * len(keys)), squeeze=False)
    several = len({r.sequence for r in results}) > 1
    for ax, key in zip(axes[:, 0], keys, strict=True):
        for r in results:
            x = [f["index"] for f in r.per_frame]
            y = [min(f[key], 100.0) for f in r.per_frame]  # inf PSNR drawn at 100 dB
            ax.plot(x, y, label=f"{r.method} / {r.sequence}" if several else r.method, lw=1.2)
        ax.set_ylabel(key.upper() + (" (dB)" if key == "psnr" else ""))
        ax.grid(alpha=0.3)
    axes[-1, 0].set_xlabel("frame")
    axes[0, 0].legend(fontsize=8, ncol=2)
    fig.tight_layout()
    try:
        util.atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


def picture_grid(
    path: str | Path, results: Sequence[SequenceResult], *, tile_width: int = 320
) -> None:
    """PNG grid for one frame: input | each method | ground truth, each tile labelled."""
    import cv2

    from rtderain.media.images import write_image

    samples = [r for r in results if r.sample is not None]
    if not samples:
        raise RTDerainError("no sample frames kept for the picture grid")
    rainy, _, gt = samples[0].sample
    tiles = [("input", rainy)] + [(r.method, r.sample[1]) for r in samples] + [("ground truth", gt)]
    h, w = rainy.shape[:2]
    th = max(1, round(h * tile_width / w))
    out = []
    for label, img in tiles:
        tile = cv2.resize(np.ascontiguousarray(img), (tile_width, th), interpolation=cv2.INTER_AREA)
        bar = np.full((22, tile_width, 3), 255, np.uint8)
        cv2.putText(bar, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        out.append(np.vstack([bar, tile]))
    cols = min(4, len(out))
    while len(out) % cols:
        out.append(np.full_like(out[0], 255))
    rows = [np.hstack(out[i : i + cols]) for i in range(0, len(out), cols)]
    write_image(_out_path(path), np.vstack(rows))
