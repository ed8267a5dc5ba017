"""How close is each temporal pseudo ground truth to the true background? (docs/training.md)

Renders one clip per clean image and rain preset with ``rtderain synth``'s renderer (the
true backgrounds are known), quantises the rainy frames to 8 bits as they are stored, and
prints the mean Y-PSNR against frame 0's background of: a rainy frame, the temporal
median, the temporal minimum and ``adaptive`` (``rtderain.train.data.adaptive_pseudo``),
and the range over clips of the gap that ``adaptive`` decides by (Y levels). Rows marked
``still`` render the same clips with a fixed camera (``rtderain synth --still``).

    python tools/pseudo_gt_quality.py [--images 10] [--clean ../shared/data/clean]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rtderain.evaluation.metrics import psnr
from rtderain.synth.render import draw_style, get_ranges, render_clip
from rtderain.train.data import adaptive_pseudo, median_minimum_gap, temporal_quantile
from rtderain.util import data_root

FRAMES = {"light": 8, "long": 8, "heavy": 8, "storm": 12}  # as in the shipped training set
ROWS = [(p, False) for p in FRAMES] + [("light", True), ("long", True)]  # storm is still


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=10)
    ap.add_argument("--clean", default=None,
                    help="clean material (default: $RTDERAIN_DATA/clean)")
    args = ap.parse_args()
    if args.clean is None:
        args.clean = str(data_root(None) / "clean")
    root = Path(args.clean)
    half = args.images // 2
    sources = sorted((root / "bsd100").glob("*.jpg"))[:half]
    sources += sorted((root / "urban100").glob("*.jpg"))[: args.images - half]
    if not sources:
        raise SystemExit(f"no clean images under {root}/bsd100 or {root}/urban100")
    print(f"{'preset':12} {'frames':>6} {'rainy':>7} {'median':>7} {'minimum':>8} {'adaptive':>8}"
          f"  gap")
    for preset, still in ROWS:
        frames = FRAMES[preset]
        rows, gaps = [], []
        for i, path in enumerate(sources):
            img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).astype(np.float32) / 255
            scale = 640 / max(img.shape[:2])
            if scale < 1:
                img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
            rng = np.random.default_rng(100 + i)
            style = draw_style(get_ranges(preset, rng, still=still), rng)
            rainy, backs = render_clip(img, frames, style, rng)
            clip = np.stack([_u8(f) for f in rainy])
            gt = _u8(backs[0])
            med, low = temporal_quantile(clip, 0.5), clip.min(axis=0)
            gaps.append(median_minimum_gap(med, low))
            cands = (clip[0], med, low, adaptive_pseudo(clip))
            rows.append([psnr(np.clip(c + 0.5, 0, 255).astype(np.uint8), gt) for c in cands])
        m = np.mean(rows, axis=0)
        name = f"{preset} still" if still else preset
        print(f"{name:12} {frames:6d} {m[0]:7.2f} {m[1]:7.2f} {m[2]:8.2f} {m[3]:8.2f}"
              f"  {min(gaps):.1f}-{max(gaps):.1f}")


if __name__ == "__main__":
    main()
