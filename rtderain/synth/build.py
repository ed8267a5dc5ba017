"""Build a folder of rainy time-lapse clips from clean images or aligned sequences.

Output layout (one folder per clip, readable by :class:`rtderain.train.data.ClipDataset`)::

    OUT/clip_00000/rain/00000.png ...   rainy frames (RGB PNG)
    OUT/clip_00000/clean/00000.png ...  true backgrounds (with --write-clean)
    OUT/clip_00000/style.json           source, seed and the clip's rain parameters

Every source is checked before the first clip is rendered, and each clip is written to a
hidden ``.clip_NNNNN.partial`` folder that is renamed when complete, so a bad source or an
interrupted run never leaves a half-written ``clip_NNNNN``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from rtderain.errors import RTDerainError
from rtderain.synth.render import draw_style, get_ranges, render_clip

log = logging.getLogger(__name__)

from rtderain.media.images import IMAGE_SUFFIXES as IMAGE_EXTS  # noqa: E402


def read_rgb(path: Path) -> np.ndarray:
    """uint8 (H, W, 3) RGB image; a clear error if unreadable."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise RTDerainError(f"cannot read image {path}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    """Write uint8 (H, W, 3) RGB as PNG (fast compression)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 1]):
        raise RTDerainError(f"cannot write image {path}")


def collect_sources(paths: Iterable[str | Path], sequences: bool = False) -> list[list[Path]]:
    """Clean sources: each is a list of frame paths (one image = a one-frame source).

    Folders are searched recursively. With ``sequences``, every folder that directly holds
    images is one aligned time-lapse source (its frames in name order).
    """
    out: list[list[Path]] = []
    for p in map(Path, paths):
        if p.is_file():
            out.append([p])
        elif p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.suffix.lower() in IMAGE_EXTS)
            if sequences:
                groups: dict[Path, list[Path]] = {}
                for f in files:
                    groups.setdefault(f.parent, []).append(f)
                out.extend(groups[k] for k in sorted(groups))
            else:
                out.extend([f] for f in files)
        else:
            raise RTDerainError(f"synth source not found: {p}")
    if not out:
        raise RTDerainError("no clean images found in the given sources")
    for frames in out:
        for f in frames:
            if not cv2.haveImageReader(str(f)):
                raise RTDerainError(f"synth source is not an image OpenCV can read: {f}")
    return out


def _fit(img: np.ndarray, max_size: int, multiple: int = 8) -> np.ndarray:
    h, w = img.shape[:2]
    s = min(1.0, max_size / max(h, w))
    nh, nw = max(multiple, int(h * s) // multiple * multiple), max(
        multiple, int(w * s) // multiple * multiple
    )
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
    return img


def build_clips(
    sources: list[list[Path]],
    out_dir: str | Path,
    *,
    frames: int = 8,
    clips_per_source: int = 1,
    preset: str = "mixed",
    seed: int = 0,
    write_clean: bool = False,
    max_size: int = 640,
    start_index: int = 0,
    still: bool = False,
) -> int:
    """Render ``clips_per_source`` clips of ``frames`` frames per source; returns clip count.

    ``still``: a fixed camera (no background jitter or gain change), whatever the preset.

    Deterministic: clip ``i`` uses the generator seeded with ``(seed, start_index + i)``.
    """
    out_dir = Path(out_dir)
    n = start_index
    for src in sources:
        images = [
            _fit(read_rgb(p), max_size).astype(np.float32) / 255.0 for p in src[: max(frames, 1)]
        ]
        shape = images[0].shape
        images = [im for im in images if im.shape == shape]
        for _ in range(clips_per_source):
            rng = np.random.default_rng([seed, n])
            style = draw_style(get_ranges(preset, rng, still=still), rng)
            clip_images = images
            if len(images) > 1:  # a real sequence: random start, keep order
                k = int(rng.integers(0, len(images)))
                clip_images = images[k:] + images[:k]
            rainy, backs = render_clip(clip_images, frames, style, rng)
            final = out_dir / f"clip_{n:05d}"
            clip = out_dir / f".{final.name}.partial"
            shutil.rmtree(clip, ignore_errors=True)
            for t, img in enumerate(rainy):
                write_rgb(clip / "rain" / f"{t:05d}.png", (img * 255 + 0.5).astype(np.uint8))
                if write_clean:
                    write_rgb(
                        clip / "clean" / f"{t:05d}.png", (backs[t] * 255 + 0.5).astype(np.uint8)
                    )
            meta = {"source": [str(p) for p in src], "seed": [seed, n], "preset": preset,
                    "still": still, "style": style}
            (clip / "style.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
            if final.exists():  # a rerun replaces the clip as a whole
                shutil.rmtree(final)
            clip.rename(final)
            log.info("clip %s from %s", final.name, src[0].name)
            n += 1
    return n - start_index
