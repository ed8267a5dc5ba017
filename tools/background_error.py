"""Where does a de-rainer's error sit: on the rain, or on the background? (MODEL_CARD.md)

For evenly spaced frames of a paired benchmark folder, de-rains each frame alone in eager
fp32 PyTorch (``rtderain.train.validate.derain_rgb``) and splits the luma squared error
against the clean frame by a rain mask (|rainy - clean| > ``--mask`` Y levels):

- ``rain``: error on rain pixels, as a share of the whole frame's MSE,
- ``background``: error on the rest, as a share of the whole frame's MSE,
- ``bg fine``: the part of the background error finer than a Gaussian of sigma 4 px
  (lost or invented texture, where a tone or colour shift is coarse; the rain pixels'
  error is set to 0 before the blur).

``input`` scores the rainy frames themselves. A second table splits the rain pixels'
error by how much the rain brightened them (rainy - clean, in Y levels: ``--bins``), so
faint rain left alone and bright streaks half removed tell apart.

    python tools/background_error.py [WEIGHTS|input ...] [--dataset ../shared/data/nturain_a1]
                                    [--frames 12] [--mask 4] [--bins 8 16 32]
"""

from __future__ import annotations

import argparse
from itertools import pairwise

import cv2
import numpy as np
import torch

from rtderain.evaluation.metrics import psnr, rgb_to_y
from rtderain.models.checkpoint import load_model
from rtderain.train.validate import _read, derain_rgb, evenly_spaced, paired_frames
from rtderain.util import data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights", nargs="*", default=["input", "rtderain/weights/mgid.pt",
                                                    "rtderain/weights/mgid-rt.pt"])
    ap.add_argument("--dataset", default=None,
                    help="paired dataset (default: $RTDERAIN_DATA/nturain_a1)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--mask", type=float, default=4.0)
    ap.add_argument("--bins", type=float, nargs="*", default=[8.0, 16.0, 32.0],
                    help="edges (Y levels above the clean frame) of the rain-strength split")
    args = ap.parse_args()
    if args.dataset is None:
        args.dataset = str(data_root(None) / "nturain_a1")
    edges = [args.mask, *args.bins, np.inf]
    labels = [f"{a:g}-{b:g}" if np.isfinite(b) else f">{a:g}" for a, b in pairwise(edges)]
    torch.set_num_threads(2)
    pairs = evenly_spaced(paired_frames(args.dataset), args.frames)
    frames = [(_read(rain), _read(clean)) for rain, clean in pairs]
    print(f"{len(frames)} frames of {args.dataset}, rain mask |rainy - clean| > {args.mask}")
    print(f"{'weights':32} {'Y-PSNR':>7} {'MSE':>7} {'rain':>7} {'backgr.':>7} {'bg fine':>7}"
          f" {'rain px':>7}")
    by_strength = {}
    for name in args.weights:
        model = None if name == "input" else load_model(weights=name)
        rows, split = [], []
        for rainy, clean in frames:
            out = rainy if model is None else derain_rgb(model, rainy)
            yr, yc, yo = (rgb_to_y(x).astype(np.float64) for x in (rainy, clean, out))
            rain = np.abs(yr - yc) > args.mask
            err = yo - yc
            bg = np.where(rain, 0.0, err)
            fine = bg - cv2.GaussianBlur(bg, (0, 0), 4)
            sq, n = err**2, err.size
            rows.append((psnr(out, clean), sq.mean(), sq[rain].sum() / n, sq[~rain].sum() / n,
                         np.sum(fine[~rain] ** 2) / n, rain.mean()))
            strength = yr - yc
            split.append([(sq[(strength > a) & (strength <= b)].sum() / n,
                           np.mean((strength > a) & (strength <= b)))
                          for a, b in pairwise(edges)])
        m = np.mean(rows, axis=0)
        print(f"{name:32} {m[0]:7.2f} {m[1]:7.2f} {m[2]:7.2f} {m[3]:7.2f} {m[4]:7.2f}"
              f" {m[5]:7.1%}")
        by_strength[name] = np.mean(split, axis=0)
    print("\nrain pixels' error by how much the rain brightened them (Y levels), as a share "
          "of the frame's MSE")
    first = next(iter(by_strength.values()))
    print(f"{'weights':32} " + " ".join(f"{lab:>7}" for lab in labels))
    print(f"{'(pixels)':32} " + " ".join(f"{px:7.1%}" for _, px in first))
    for name, parts in by_strength.items():
        print(f"{name:32} " + " ".join(f"{e:7.2f}" for e, _ in parts))


if __name__ == "__main__":
    main()
