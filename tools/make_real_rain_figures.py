"""Make the real-rain figures of docs/training.md: input | mgid | mgid-rt, side by side.

Real rain has no ground truth, so these pictures are the evidence: streaks gone, detail
kept. Each frame is de-rained on its own by the shipped weights through the default
engine, exactly as ``rtderain photo.jpg -o out.png`` would.

    python tools/make_real_rain_figures.py [--frame 30] [--data ../shared/data/nturain_real]

Writes ``docs/img/training_real_<sequence>.jpg`` and the centre third of each at 2x,
``docs/img/training_real_<sequence>_crop.jpg``, where thin streaks are visible.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from rtderain.backends import create_engine
from rtderain.media.batching import derain_frames
from rtderain.media.images import read_image
from rtderain.models.checkpoint import load_model
from rtderain.util import data_root

DOCS = Path(__file__).resolve().parents[1] / "docs"
SEQUENCES = {"ra1": "ra1_Rain", "rb2": "rb2_Rain"}


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 0, 0), 4, cv2.LINE_AA)
    cv2.putText(out, text, (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2,
                cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frame", type=int, default=30)
    ap.add_argument("--data", default=None,
                    help="NTURain real clips (default: $RTDERAIN_DATA/nturain_real)")
    args = ap.parse_args()
    if args.data is None:
        args.data = str(data_root(None) / "nturain_real")
    models = {name: load_model(name) for name in ("mgid", "mgid-rt")}
    for short, folder in SEQUENCES.items():
        rgb = read_image(Path(args.data) / folder / f"{args.frame:05d}.jpg")
        panels = [label(rgb, "input")]
        for name, model in models.items():
            engine = create_engine(model, size=rgb.shape[:2])
            panels.append(label(derain_frames(engine, [rgb])[0], name))
        row = np.concatenate(panels, axis=1)
        h, w = rgb.shape[:2]
        y, x = h // 3, w // 3
        crops = [cv2.resize(p[y : y + h // 3, x : x + w // 3], None, fx=2, fy=2,
                            interpolation=cv2.INTER_NEAREST) for p in panels]
        for suffix, img in (("", row), ("_crop", np.concatenate(crops, axis=1))):
            path = DOCS / "img" / f"training_real_{short}{suffix}.jpg"
            cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 88])
            print(path)


if __name__ == "__main__":
    main()
