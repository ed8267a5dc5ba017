"""Benchmark input clips: real rainy scenery (from the shipped sample) or a synthetic one.

Encoders and the network both cost more on real content than on synthetic gradients
(x264 codes a flat pattern almost for free), so speed figures come from
:func:`real_clip`: the shipped sample ``samples/rainy_bunny.mp4`` (real footage with
rendered rain, 640x360) scaled to the benchmark size. Upscaled footage has less fine
detail than a native 1080p camera file, so codec figures at 1080p are a best case; the
decode+encode ceiling printed beside every end-to-end figure is measured on the same clip.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "rainy_bunny.mp4"


def _encode(path: Path, frames, width: int, height: int, fps: int) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, fps)
        stream.options = {"preset": "veryfast", "crf": "18"}  # a camera-like file
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def synthetic_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """An H.264 (yuv420p) clip of moving blocky noise, ``frames`` long."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), dtype=np.uint8))[:height, :width]
    rolled = (np.roll(base, shift=(i * 3, i * 5), axis=(0, 1)) for i in range(frames))
    return _encode(path, rolled, width, height, fps)


def real_clip(path: Path, width: int, height: int, frames: int, fps: int = 30) -> Path:
    """An H.264 (yuv420p) clip of real rainy scenery at ``width`` x ``height``: the shipped
    sample's frames (looped when ``frames`` is longer) scaled with bicubic interpolation.
    Without the sample (an installed package has no ``samples/``) the synthetic clip."""
    if not SAMPLE.is_file():
        log.warning("%s not found: benchmarking on a synthetic clip", SAMPLE)
        return synthetic_clip(path, width, height, frames, fps)
    import av
    import cv2

    with av.open(str(SAMPLE)) as container:
        source = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    scaled = (
        cv2.resize(source[i % len(source)], (width, height), interpolation=cv2.INTER_CUBIC)
        for i in range(frames)
    )
    return _encode(path, scaled, width, height, fps)
