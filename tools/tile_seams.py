"""Tiled against untiled output on real footage (docs/memory.md, "seams").

Frame 30 of the shipped sample, scaled to WIDTHxHEIGHT (bicubic), through each model whole
and in TILE-pixel tiles at each OVERLAP, on one engine and one precision (default fp32; not
``auto``, whose int8 verdict may differ between the whole-frame and the tile engine);
prints the largest and mean absolute difference in levels and the PSNR between the two.

    python tools/tile_seams.py --size 1280x720 --tile 512 --overlap 64 128
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--overlap", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--models", nargs="+", default=["mgid", "mgid-rt"])
    ap.add_argument("--engine", default="auto")
    ap.add_argument("--precision", default="fp32", help="fp32 (default), bf16, ...")
    a = ap.parse_args()
    import rtderain
    from rtderain.media.batching import derain_frames
    from rtderain.media.tiling import tiled

    width, height = (int(v) for v in a.size.lower().split("x"))
    with av.open(str(ROOT / "samples" / "rainy_bunny.mp4")) as c:
        frame = next(f for i, f in enumerate(c.decode(video=0)) if i == 30)
    rgb = cv2.resize(frame.to_ndarray(format="rgb24"), (width, height),
                     interpolation=cv2.INTER_CUBIC)
    for model in a.models:
        d = rtderain.Derainer(model, engine=a.engine, precision=a.precision, tile="off")
        whole = derain_frames(d.engine_for(height, width, 1), rgb[None])[0].astype(float)
        inner = d.engine_for(a.tile, a.tile, 1)
        for overlap in a.overlap:
            out = derain_frames(tiled(inner, (a.tile, a.tile), overlap), rgb[None])[0]
            diff = np.abs(out.astype(float) - whole)
            psnr = 10 * np.log10(255**2 / max((diff**2).mean(), 1e-12))
            print(f"{model} {width}x{height} tiles {a.tile} overlap {overlap}: max "
                  f"{diff.max():.0f}, mean {diff.mean():.4f} levels, PSNR {psnr:.1f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
