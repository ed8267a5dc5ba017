"""Benchmark datasets on disk: sequences of rainy and clean frames, and frame readers.

A dataset folder holds ``rain/`` and ``gt/`` (or ``clean/``) frame folders (one sequence),
or sub-folders that each do (one sequence each; hidden folders such as a partial
``rtderain synth`` clip are skipped). Frames match by sorted file name. The one set of
image suffixes is :data:`rtderain.media.images.IMAGE_SUFFIXES`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rtderain.errors import RTDerainError

GT_NAMES = ("gt", "clean")


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """uint8 as it is; uint16 (full 16-bit scale) rounded to 8 bits."""
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype == np.uint16:
        return np.round(frame / 257.0).astype(np.uint8)
    raise RTDerainError(f"unsupported sample type {frame.dtype}")


def read_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Frames of a video file, a folder of images (sorted by name) or one image, as uint8 RGB."""
    from rtderain.media.images import is_image, list_images, read_image

    path = Path(path)
    if not path.exists():
        raise RTDerainError(f"not found: {path}")
    if path.is_dir():
        for p in list_images(path):
            yield to_uint8(read_image(p))
    elif is_image(path):
        yield to_uint8(read_image(path))
    else:
        from rtderain.media.reader import VideoReader

        reader = VideoReader(path, copy=())
        try:
            for frame in reader.frames():
                yield to_uint8(frame.pixels)
        finally:
            reader.close()


@dataclass(frozen=True)
class Sequence:
    """One benchmark sequence: rainy frames and clean frames, matched by sorted file name."""

    name: str
    rain: Path
    gt: Path


def find_sequences(folder: str | Path) -> list[Sequence]:
    """``folder/rain`` + ``folder/gt`` (or ``clean``): one sequence; else each sub-folder that
    has them. No sequence found is an error naming the folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RTDerainError(f"dataset folder not found: {folder}")

    def one(d: Path) -> Sequence | None:
        gts = [d / n for n in GT_NAMES if (d / n).is_dir()]
        return Sequence(d.name, d / "rain", gts[0]) if (d / "rain").is_dir() and gts else None

    seq = one(folder)
    if seq is not None:
        return [seq]
    subs = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    seqs = [s for d in subs for s in [one(d)] if s]
    if not seqs:
        raise RTDerainError(f"{folder}: no rain/ and gt/ (or clean/) frame folders in it or below")
    return seqs
