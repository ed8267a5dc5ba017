"""A second, independent rain model, for held-out validation of weights trained on
:mod:`rtderain.synth.render` clips.

It shares no drawing code with ``render.py`` and differs in every step:

- **Drops, not seed images.** Each frame scatters individual drops, each with its own
  depth ``z`` in (0, 1] (1 = nearest; far drops are more numerous). A drop is a capsule
  (a line segment of the motion-blur length with round ends) whose coverage is computed
  analytically per pixel (``r + 0.5 - distance``, clipped: anti-aliased), brighter in
  its middle than at its ends. Radius, length and opacity grow with ``z``; every drop has
  its own direction (the clip's angle plus a per-drop turbulence), where ``render.py``
  convolves random seeds with one tapered line kernel per depth layer.
- **Refraction, then alpha compositing.** A water drop shows a blurred, brightened and
  shifted image of the scene behind it; the rain colour is that patch
  (``gain * blur(background shifted up) + lift``), composited over the background with
  the drops' alpha, far drops first. ``render.py`` adds or screen-blends a constant grey.
  Here rain can darken a very bright background a little.
- **Depth of field.** The nearest drops (``z`` > 0.75) are defocused by a Gaussian; far
  ones stay sharp. Then a faint haze and sensor noise; no JPEG, no camera jitter.

A clip is a static camera over one clean image: the background is the same in every
frame (``clean/`` holds it), the drops are drawn afresh each frame. Command line::

    python -m rtderain.synth.second SOURCES... -o OUT [--frames 10] [--angles vertical|diagonal]
        [--clips-per-source 1] [--seed 0] [--start-index 0] [--max-size 640]

writes ``OUT/clip_NNNNN/{rain,clean}/*.png`` and ``style.json`` as ``rtderain synth
--write-clean`` does. Deterministic: clip ``i`` uses the generator seeded with ``(seed,
start_index + i, 2)``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from rtderain.errors import RTDerainError
from rtderain.synth.build import _fit, collect_sources, read_rgb, write_rgb

log = logging.getLogger(__name__)

Range = tuple[float, float]
ANGLES: dict[str, Range] = {"vertical": (-12.0, 12.0), "diagonal": (20.0, 35.0)}


@dataclass(frozen=True)
class DropRanges:
    """Per-clip parameter ranges of the drop model (uniform draws).

    Lengths and radii are in pixels of the rendered frame, for the nearest drops.
    """

    drops_per_mpx: Range = (4000.0, 14000.0)  # drops per frame per megapixel, all depths
    length: Range = (20.0, 110.0)  # motion-blur length of a near drop
    radius: Range = (0.6, 1.5)  # capsule radius of a near drop (1.2-3 px wide)
    turbulence: float = 2.5  # per-drop angle spread (sigma, degrees)
    opacity: Range = (0.5, 0.95)  # peak opacity of a near drop
    refraction_blur: Range = (3.0, 8.0)  # Gaussian sigma of the refracted patch
    refraction_shift: Range = (2.0, 10.0)  # px: the drop shows the scene above it
    refraction_gain: Range = (1.1, 1.5)
    refraction_lift: Range = (0.12, 0.3)
    defocus: Range = (0.0, 1.2)  # Gaussian sigma on the nearest drops
    haze: Range = (0.0, 0.05)  # per-frame haze strength, bound per clip
    noise: Range = (0.0, 0.004)  # sensor noise sigma


def draw_drop_style(ranges: DropRanges, angles: str, rng: np.random.Generator) -> dict:
    """One clip's style (JSON-serialisable). ``angles``: ``vertical`` (-12..12 degrees
    from vertical) or ``diagonal`` (20-35 degrees, to a side drawn per clip)."""
    if angles not in ANGLES:
        raise RTDerainError(f"angles must be one of {', '.join(ANGLES)}, not {angles!r}")

    def u(r: Range) -> float:
        return float(rng.uniform(r[0], r[1]))

    angle = u(ANGLES[angles])
    if angles == "diagonal" and rng.random() < 0.5:
        angle = -angle
    return {
        "model": "second",
        "angles": angles,
        "angle": angle,
        "drops_per_mpx": u(ranges.drops_per_mpx),
        "length": u(ranges.length),
        "radius": u(ranges.radius),
        "turbulence": ranges.turbulence,
        "opacity": u(ranges.opacity),
        "refraction_blur": u(ranges.refraction_blur),
        "refraction_shift": u(ranges.refraction_shift),
        "refraction_gain": u(ranges.refraction_gain),
        "refraction_lift": u(ranges.refraction_lift),
        "defocus": u(ranges.defocus),
        "haze_max": u(ranges.haze),
        "haze_light": float(rng.uniform(0.75, 1.0)),
        "noise": u(ranges.noise),
    }


def _capsule(alpha: np.ndarray, cx: float, cy: float, angle_deg: float, length: float,
             radius: float, peak: float) -> None:
    """Composite one anti-aliased capsule into ``alpha`` (H, W) float32 in place
    (``a + d - a * d``); ``peak`` opacity in the middle, 55 % of it at the ends."""
    h, w = alpha.shape
    a = math.radians(angle_deg)
    dx, dy = math.sin(a), math.cos(a)
    half = length / 2
    ext = radius + 1.0
    x0 = max(0, math.floor(cx - abs(dx) * half - ext))
    x1 = min(w, math.ceil(cx + abs(dx) * half + ext) + 1)
    y0 = max(0, math.floor(cy - abs(dy) * half - ext))
    y1 = min(h, math.ceil(cy + abs(dy) * half + ext) + 1)
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1, dtype=np.float32)[None, :] - cx
    py = np.arange(y0, y1, dtype=np.float32)[:, None] - cy
    t = np.clip(px * dx + py * dy, -half, half)
    dist = np.hypot(px - t * dx, py - t * dy)
    cover = np.clip(radius + 0.5 - dist, 0.0, 1.0)
    prof = 0.55 + 0.45 * np.cos(np.pi * t / max(length, 1e-3))
    d = (peak * cover * prof).astype(np.float32)
    region = alpha[y0:y1, x0:x1]
    region += d - region * d


def drop_alphas(h: int, w: int, style: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """One frame's drops as three alpha maps (far, middle, near), float32 (H, W) in [0, 1]."""
    n = int(rng.poisson(style["drops_per_mpx"] * h * w / 1e6))
    z = 1.0 - 0.9 * np.sqrt(rng.uniform(0.0, 1.0, n))  # in [0.1, 1], more far than near
    bins = [np.zeros((h, w), np.float32) for _ in range(3)]
    for zi in z:
        length = style["length"] * (0.3 + 0.7 * zi) * rng.uniform(0.8, 1.2)
        radius = style["radius"] * (0.35 + 0.65 * zi)
        peak = style["opacity"] * (0.3 + 0.7 * zi) * rng.uniform(0.7, 1.0)
        angle = style["angle"] + rng.normal(0.0, style["turbulence"])
        cx = rng.uniform(-0.1 * w, 1.1 * w)
        cy = rng.uniform(-length / 2, h + length / 2)
        b = 0 if zi < 0.4 else (1 if zi <= 0.75 else 2)
        _capsule(bins[b], cx, cy, angle, length, radius, peak)
    if style["defocus"] > 0.3:
        bins[2] = cv2.GaussianBlur(bins[2], (0, 0), style["defocus"])
    return [np.clip(b, 0.0, 1.0) for b in bins]


def refraction_colour(background: np.ndarray, style: dict) -> np.ndarray:
    """What a drop shows: the background shifted down by ``refraction_shift`` (the scene
    above the drop), blurred, brightened; float32 (H, W, 3) in [0, 1]."""
    s = style["refraction_shift"]
    m = np.float32([[1, 0, 0], [0, 1, s]])
    h, w = background.shape[:2]
    shifted = cv2.warpAffine(background, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    blurred = cv2.GaussianBlur(shifted, (0, 0), style["refraction_blur"])
    return np.clip(blurred * style["refraction_gain"] + style["refraction_lift"], 0.0, 1.0)


def render_second_frame(background: np.ndarray, colour: np.ndarray, style: dict,
                        rng: np.random.Generator) -> np.ndarray:
    """One rainy frame over float32 (H, W, 3) RGB [0, 1] ``background``; same layout."""
    h, w = background.shape[:2]
    img = background.copy()
    for alpha in drop_alphas(h, w, style, rng):  # far drops first
        a = alpha[..., None]
        img = img * (1.0 - a) + colour * a
    haze = rng.uniform(0.0, style["haze_max"]) if style["haze_max"] > 0 else 0.0
    if haze > 0:
        img = img * (1.0 - haze) + haze * style["haze_light"]
    if style["noise"] > 0:
        img = img + rng.normal(0.0, style["noise"], img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def render_second_clip(clean: np.ndarray, frames: int, style: dict,
                       rng: np.random.Generator) -> list[np.ndarray]:
    """``frames`` rainy frames of a static camera over ``clean`` (float32 (H, W, 3) RGB
    [0, 1], the background of every frame); rain drawn independently per frame."""
    colour = refraction_colour(clean, style)
    return [render_second_frame(clean, colour, style, rng) for _ in range(frames)]


def build_second_clips(
    sources: list[Path],
    out_dir: str | Path,
    *,
    frames: int = 10,
    angles: str = "vertical",
    clips_per_source: int = 1,
    seed: int = 0,
    start_index: int = 0,
    max_size: int = 640,
) -> int:
    """Render ``clips_per_source`` clips per clean image into ``out_dir`` (the layout of
    ``rtderain synth --write-clean``); returns the number of clips."""
    out_dir = Path(out_dir)
    n = start_index
    for src in sources:
        clean = _fit(read_rgb(src), max_size).astype(np.float32) / 255.0
        clean_u8 = (clean * 255 + 0.5).astype(np.uint8)
        for _ in range(clips_per_source):
            rng = np.random.default_rng([seed, n, 2])
            style = draw_drop_style(DropRanges(), angles, rng)
            rainy = render_second_clip(clean, frames, style, rng)
            final = out_dir / f"clip_{n:05d}"
            clip = out_dir / f".{final.name}.partial"
            shutil.rmtree(clip, ignore_errors=True)
            for t, img in enumerate(rainy):
                write_rgb(clip / "rain" / f"{t:05d}.png", (img * 255 + 0.5).astype(np.uint8))
                write_rgb(clip / "clean" / f"{t:05d}.png", clean_u8)
            meta = {"source": [str(src)], "seed": [seed, n, 2], "renderer": "second",
                    "style": style}
            (clip / "style.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if final.exists():
                shutil.rmtree(final)
            clip.rename(final)
            log.info("clip %s from %s (%s)", final.name, src.name, angles)
            n += 1
    return n - start_index


def main(argv: list[str] | None = None) -> None:
    """Render held-out rainy clips with the second rain model (see the module doc)."""
    ap = argparse.ArgumentParser(prog="python -m rtderain.synth.second",
                                 description=main.__doc__)
    ap.add_argument("sources", nargs="+", help="clean images or folders (recursive)")
    ap.add_argument("-o", "--out", required=True, help="output folder")
    ap.add_argument("--frames", type=int, default=10)
    ap.add_argument("--angles", choices=sorted(ANGLES), default="vertical")
    ap.add_argument("--clips-per-source", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--start-index", type=int, default=0)
    ap.add_argument("--max-size", type=int, default=640)
    args = ap.parse_args(argv)
    try:
        srcs = [group[0] for group in collect_sources(args.sources)]
        n = build_second_clips(srcs, args.out, frames=args.frames, angles=args.angles,
                               clips_per_source=args.clips_per_source, seed=args.seed,
                               start_index=args.start_index, max_size=args.max_size)
    except RTDerainError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"wrote {n} clips of {args.frames} frames to {args.out}")


if __name__ == "__main__":
    main()
