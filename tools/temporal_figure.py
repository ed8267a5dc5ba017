"""Figure: per-frame vs temporal de-raining of a real rainy clip, with flicker maps.

Top row: a frame of the clip (input | per-frame network | network + temporal stage).
Bottom row: the per-pixel temporal standard deviation of Y over the whole clip for each
(black 0, white >= ``--std-max`` levels): rain and residue that change from frame to frame
show as bright speckle, a stable background stays dark. The mean of each map (the flicker
metric of ``docs/evaluation.md``) is printed and written in the corner.

    python tools/temporal_figure.py $RTDERAIN_DATA/nturain_real/ra1_Rain \
        -o docs/img/temporal_ra1.jpg
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rtderain.evaluation.datasets import read_frames
from rtderain.evaluation.temporal import Flicker
from rtderain.media.images import write_image


def _label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("clip", type=Path, help="a video file or a folder of frames")
    ap.add_argument("-o", "--out", type=Path, required=True, help="output image (.jpg, .png)")
    ap.add_argument("--model", default="mgid")
    ap.add_argument("--temporal", default="window", choices=["window", "causal"])
    ap.add_argument("--frames", type=int, default=60, help="frames used, from the start")
    ap.add_argument("--frame", type=int, default=None, help="frame shown (default: middle)")
    ap.add_argument("--std-max", type=float, default=12.0)
    ap.add_argument("--width", type=int, default=480, help="width of each panel")
    args = ap.parse_args()

    from rtderain.api import Derainer

    rainy = list(read_frames(args.clip))[: args.frames]
    runs = {
        "input": rainy,
        args.model: list(Derainer(args.model).frames(rainy)),
        f"{args.model} + {args.temporal}": list(
            Derainer(args.model, temporal=args.temporal).frames(rainy)
        ),
    }
    k = len(rainy) // 2 if args.frame is None else args.frame
    top, bottom = [], []
    for name, frames in runs.items():
        acc = Flicker()
        for f in frames:
            acc.update(f)
        std = acc.std_map()
        value = float(std.mean())
        print(f"{name}: flicker {value:.2f} Y levels over {len(frames)} frames")
        grey = np.clip(std / args.std_max * 255.0, 0, 255).astype(np.uint8)
        h, w = frames[k].shape[:2]
        size = (args.width, round(h * args.width / w))
        top.append(_label(cv2.resize(frames[k], size, interpolation=cv2.INTER_AREA), name))
        std_rgb = cv2.cvtColor(cv2.resize(grey, size, interpolation=cv2.INTER_AREA),
                               cv2.COLOR_GRAY2RGB)
        bottom.append(_label(std_rgb, f"temporal std of Y, mean {value:.2f}"))
    write_image(args.out, np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)]))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
