"""Rain rendering: per-frame independent rain layers over a (nearly) fixed background.

All images here are float32 (H, W, 3) RGB in [0, 1]. A clip shares one *style* (rain
regime, angle, colour, compositing, camera imperfections) drawn once per clip from a
:class:`RainRanges`; every frame draws its own streak positions, veil strength, drops,
jitter, gain, noise and JPEG round trip, so only the rain (and small camera effects)
change over time, as in a real time-lapse.

Streaks: per depth layer, sparse random seeds are widened by a Gaussian (streak width)
and smeared by an anti-aliased, tapered line kernel (motion blur: length and angle);
near layers are longer, wider, sparser, more opaque and slightly defocused.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import cv2
import numpy as np

from rtderain.errors import RTDerainError

Range = tuple[float, float]


@dataclass(frozen=True)
class RainRanges:
    """Parameter ranges a clip style is drawn from (uniform unless stated).

    Lengths and widths are in pixels of the rendered frame; densities are the fraction of
    pixels that seed a streak in the nearest layer (farther layers get more, shorter ones).
    """

    layers: tuple[int, int] = (1, 3)  # depth layers per frame (inclusive)
    density: Range = (0.0003, 0.0012)  # streak seeds per pixel, nearest layer
    length: Range = (8.0, 45.0)  # streak length (motion blur), nearest layer
    width: Range = (0.25, 0.7)  # Gaussian sigma of the streak cross-section
    angle: Range = (-15.0, 15.0)  # degrees from vertical, per clip
    angle_either_sign: bool = False  # mirror the drawn angle with probability 1/2
    angle_jitter: float = 3.0  # degrees, per layer and frame
    opacity: Range = (0.25, 0.8)  # peak opacity of the nearest layer
    brightness: Range = (0.8, 1.0)  # rain colour (grey level)
    defocus: Range = (0.0, 1.0)  # Gaussian sigma on the nearest layer
    screen_prob: float = 0.3  # screen blending instead of additive
    veil: Range = (0.0, 0.05)  # per-frame fog/veil strength, upper bound drawn per clip
    drop_prob: float = 0.1  # probability a clip has lens drops
    drops: tuple[int, int] = (1, 4)  # drops per frame when it has drops
    drop_radius: Range = (4.0, 14.0)
    jitter: Range = (0.0, 0.7)  # background shift in px per frame, upper bound per clip
    gain: Range = (0.0, 0.02)  # per-frame gain 1 +- g, g's bound per clip
    noise: Range = (0.0, 0.01)  # sensor noise sigma per clip
    jpeg_prob: float = 0.5  # probability the clip's frames are JPEG compressed
    jpeg_quality: tuple[int, int] = (70, 95)


PRESETS: dict[str, RainRanges] = {
    # NTURain-like: thin, bright, semi-transparent, near-vertical streaks, little fog.
    "light": RainRanges(),
    # Dense, wide, opaque streaks of moderate length and a veil.
    "heavy": RainRanges(
        layers=(2, 3),
        density=(0.0015, 0.004),
        length=(25.0, 80.0),
        width=(0.45, 1.3),
        angle=(-25.0, 25.0),
        opacity=(0.55, 1.0),
        defocus=(0.0, 1.5),
        screen_prob=0.5,
        veil=(0.05, 0.35),
        drop_prob=0.05,
    ),
    # Light rain filmed with a video shutter (1/25-1/50 s): few, long, thin motion-blurred
    # streaks, near vertical, little fog (real rain video, NTURain's rendered streaks).
    "long": RainRanges(
        density=(0.00015, 0.0007),
        length=(40.0, 160.0),
        width=(0.25, 0.6),
        angle=(-10.0, 10.0),
        angle_jitter=2.0,
        opacity=(0.3, 0.8),
        veil=(0.0, 0.03),
    ),
    # Drizzle, as NTURain's rendered rain mostly is: many faint, thin, near-vertical
    # streaks in several depth layers (most of their pixels brighten the background by
    # 4-16 Y levels), JPEG'd more often than not.
    "drizzle": RainRanges(
        layers=(2, 3),
        density=(0.0008, 0.002),
        length=(15.0, 70.0),
        width=(0.25, 0.55),
        angle=(-10.0, 10.0),
        angle_jitter=2.0,
        opacity=(0.1, 0.4),
        veil=(0.0, 0.01),
        drop_prob=0.0,
        jpeg_prob=0.7,
        jpeg_quality=(60, 90),
    ),
    # Diagonal rain, which the presets above barely draw: streaks 20-35 degrees from
    # vertical to either side, 1-3 px wide (Gaussian sigma 0.45-1.3), mostly screen-
    # blended, moderate to heavy density, a light veil.
    "diagonal": RainRanges(
        layers=(1, 3),
        density=(0.0006, 0.0025),
        length=(20.0, 90.0),
        width=(0.45, 1.3),
        angle=(20.0, 35.0),
        angle_either_sign=True,
        angle_jitter=3.0,
        opacity=(0.4, 0.9),
        screen_prob=0.8,
        veil=(0.0, 0.1),
        drop_prob=0.05,
    ),
    # Rain100H-like storm: very dense, long, wide, nearly opaque streaks in a few crossing
    # directions (the angle spreads by up to 10 degrees between layers) under a strong veil,
    # seen by a still camera (no jitter or gain change, faint noise) as Rain100H renders
    # it; so the temporal minimum of a clip is a faithful target (``pseudo_gt: adaptive``).
    "storm": RainRanges(
        layers=(2, 3),
        density=(0.0015, 0.004),
        length=(60.0, 180.0),
        width=(0.6, 1.3),
        angle=(-30.0, 30.0),
        angle_jitter=10.0,
        opacity=(0.7, 1.0),
        defocus=(0.0, 1.0),
        screen_prob=0.5,
        veil=(0.1, 0.4),
        drop_prob=0.0,
        jitter=(0.0, 0.0),
        gain=(0.0, 0.0),
        noise=(0.0, 0.003),
        jpeg_prob=0.25,
    ),
}
MIXED_LIGHT_SHARE = 0.6  # preset "mixed": this share of clips light, the rest heavy


def get_ranges(preset: str, rng: np.random.Generator, still: bool = False) -> RainRanges:
    """The ranges of ``preset`` (``light``, ``heavy``, or ``mixed``: one drawn per call).

    ``still``: a fixed camera, no background jitter and no gain change, so a clip's
    temporal median keeps the background's texture (a jitter of a fraction of a pixel
    per frame blurs it: about 6 dB of pseudo-ground-truth fidelity, docs/training.md).
    """
    if preset == "mixed":
        ranges = PRESETS["light" if rng.random() < MIXED_LIGHT_SHARE else "heavy"]
    else:
        try:
            ranges = PRESETS[preset]
        except KeyError:
            raise RTDerainError(
                f"unknown rain preset {preset!r} (known: {', '.join([*PRESETS, 'mixed'])})"
            ) from None
    return dataclasses.replace(ranges, jitter=(0.0, 0.0), gain=(0.0, 0.0)) if still else ranges


def _u(rng: np.random.Generator, r: Range) -> float:
    return float(rng.uniform(r[0], r[1]))


def draw_style(ranges: RainRanges, rng: np.random.Generator) -> dict:
    """One clip's style: fixed numbers drawn from ``ranges`` (JSON-serialisable)."""
    layers = int(rng.integers(ranges.layers[0], ranges.layers[1] + 1))
    density, length, width = (_u(rng, r) for r in (ranges.density, ranges.length, ranges.width))
    angle = _u(rng, ranges.angle)
    if ranges.angle_either_sign and rng.random() < 0.5:  # no draw for the other presets
        angle = -angle
    return {
        "layers": layers,
        "density": density,
        "length": length,
        "width": width,
        "angle": angle,
        "angle_jitter": ranges.angle_jitter,
        "opacity": _u(rng, ranges.opacity),
        "brightness": _u(rng, ranges.brightness),
        "defocus": _u(rng, ranges.defocus),
        "screen": bool(rng.random() < ranges.screen_prob),
        "veil_max": _u(rng, ranges.veil),
        "veil_light": float(rng.uniform(0.7, 1.0)),
        "drops": list(ranges.drops) if rng.random() < ranges.drop_prob else [0, 0],
        "drop_radius": list(ranges.drop_radius),
        "jitter": _u(rng, ranges.jitter),
        "gain": _u(rng, ranges.gain),
        "noise": _u(rng, ranges.noise),
        "jpeg": int(rng.integers(ranges.jpeg_quality[0], ranges.jpeg_quality[1] + 1))
        if rng.random() < ranges.jpeg_prob
        else 0,
    }


def _line_kernel(length: float, angle_deg: float) -> np.ndarray:
    """Tapered anti-aliased line of ``length`` px, ``angle_deg`` from vertical; max 1."""
    n = int(math.ceil(length)) | 1
    img = np.zeros((n, n), np.uint8)
    c = n // 2
    a = math.radians(angle_deg)
    dx, dy = math.sin(a) * (length - 1) / 2, math.cos(a) * (length - 1) / 2
    p0 = (round((c - dx) * 16), round((c - dy) * 16))
    p1 = (round((c + dx) * 16), round((c + dy) * 16))
    cv2.line(img, p0, p1, 255, 1, cv2.LINE_AA, shift=4)
    k = img.astype(np.float32) / 255.0
    # Taper: fainter at the tail (top) than at the head, as a falling drop's exposure.
    yy = (np.arange(n, dtype=np.float32) / max(n - 1, 1))[:, None]
    k *= 0.4 + 0.6 * yy
    return k / max(float(k.max()), 1e-6)


def streak_layer(
    h: int,
    w: int,
    rng: np.random.Generator,
    density: float,
    length: float,
    angle: float,
    width: float,
    defocus: float = 0.0,
) -> np.ndarray:
    """One depth layer of streak intensity, float32 (H, W) in [0, 1]."""
    seeds = np.zeros((h, w), np.float32)
    count = rng.binomial(h * w, min(max(density, 0.0), 1.0))
    if count:
        idx = rng.choice(h * w, size=count, replace=False)
        seeds.flat[idx] = rng.uniform(0.5, 1.0, size=count).astype(np.float32)
    if width > 0.45:
        seeds = cv2.GaussianBlur(seeds, (0, 0), width) * (2 * math.pi * width * width) ** 0.5
    kernel = _line_kernel(max(length, 2.0), angle)
    layer = cv2.filter2D(seeds, -1, kernel, borderType=cv2.BORDER_REFLECT)
    if defocus > 0.3:
        layer = cv2.GaussianBlur(layer, (0, 0), defocus)
    return np.clip(layer, 0.0, 1.0)


def rain_alpha(h: int, w: int, style: dict, rng: np.random.Generator) -> np.ndarray:
    """Combined rain opacity of one frame, float32 (H, W) in [0, 1], over all depth layers."""
    alpha = np.zeros((h, w), np.float32)
    n = style["layers"]
    for i in range(n):
        z = 1.0 - i / max(n, 1) * 0.7  # 1 = nearest, down to 0.3 (far)
        ang = style["angle"] + rng.uniform(-1, 1) * style["angle_jitter"]
        layer = streak_layer(
            h,
            w,
            rng,
            density=style["density"] / (z * n),
            length=style["length"] * z * rng.uniform(0.8, 1.2),
            angle=ang,
            width=style["width"] * (0.5 + 0.5 * z),
            defocus=style["defocus"] * z,
        )
        opacity = style["opacity"] * (0.45 + 0.55 * z) * rng.uniform(0.85, 1.15)
        alpha = 1.0 - (1.0 - alpha) * (1.0 - np.clip(layer * opacity, 0, 1))
    return alpha


def _drops(img: np.ndarray, style: dict, rng: np.random.Generator) -> np.ndarray:
    lo, hi = style["drops"]
    if hi <= 0:
        return img
    h, w = img.shape[:2]
    blurred = cv2.GaussianBlur(img, (0, 0), 4.0) * 1.08 + 0.03
    mask = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(lo, hi + 1))):
        r = rng.uniform(*style["drop_radius"])
        cv2.circle(mask, (int(rng.integers(0, w)), int(rng.integers(0, h))), int(r), 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), 2.0)[..., None]
    return img * (1 - mask) + np.clip(blurred, 0, 1) * mask


def background_frame(
    clean: np.ndarray, style: dict, rng: np.random.Generator
) -> np.ndarray:
    """The frame's true background: the clean image with small jitter and gain change."""
    out = clean
    j = style["jitter"]
    if j > 0:
        m = np.float32([[1, 0, rng.uniform(-j, j)], [0, 1, rng.uniform(-j, j)]])
        out = cv2.warpAffine(out, m, (out.shape[1], out.shape[0]), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)
    g = style["gain"]
    if g > 0:
        out = out * (1.0 + rng.uniform(-g, g))
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def render_frame(
    background: np.ndarray, style: dict, rng: np.random.Generator
) -> np.ndarray:
    """Rainy frame over ``background`` (float32 (H, W, 3) RGB [0, 1]); same layout out."""
    h, w = background.shape[:2]
    alpha = rain_alpha(h, w, style, rng)[..., None]
    colour = style["brightness"]
    if style["screen"]:
        img = 1.0 - (1.0 - background) * (1.0 - alpha * colour)
    else:
        img = background + alpha * colour
    veil = rng.uniform(0.0, style["veil_max"]) if style["veil_max"] > 0 else 0.0
    if veil > 0:
        img = img * (1.0 - veil) + veil * style["veil_light"]
    img = _drops(np.clip(img, 0, 1), style, rng)
    if style["noise"] > 0:
        img = img + rng.normal(0.0, style["noise"], img.shape).astype(np.float32)
    img = np.clip(img, 0.0, 1.0)
    if style["jpeg"]:
        u8 = (img * 255 + 0.5).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, style["jpeg"]])
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED).astype(np.float32) / 255.0
    return img.astype(np.float32)


def render_clip(
    clean: np.ndarray | list[np.ndarray],
    frames: int,
    style: dict,
    rng: np.random.Generator,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Render a rainy time-lapse clip.

    Args:
        clean: one float32 (H, W, 3) RGB [0, 1] image (repeated) or a list of aligned
            frames (a real time-lapse; cycled if shorter than ``frames``).
        frames: number T of frames.
    Returns:
        (rainy, backgrounds): two lists of T float32 (H, W, 3) RGB [0, 1] frames.
    """
    sources = clean if isinstance(clean, list) else [clean]
    rainy, backs = [], []
    for t in range(frames):
        back = background_frame(sources[t % len(sources)], style, rng)
        backs.append(back)
        rainy.append(render_frame(back, style, rng))
    return rainy, backs
