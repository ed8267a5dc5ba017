"""Timestamps: raw elementary streams keep their codec's frame rate; a duplicate pts moves
only that frame."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.media.reader import VideoReader
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions


def _raw_stream(path, codec: str, fps: int, frames: int) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.mark.parametrize("name", ["clip.h264", "clip.264"])
def test_raw_h264_at_30_fps_stays_30_fps(tmp_path, caplog, name):
    src, out = tmp_path / name, tmp_path / "clean.mp4"
    _raw_stream(src, "libx264", 30, 15)
    opts = PipelineOptions(encode=EncodeOptions(codec="libx264", crf=30, preset="ultrafast"))
    with caplog.at_level(logging.WARNING):
        derain_video(src, out, IdentityEngine(), opts)
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 0
    with av.open(str(out)) as c:
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    assert len(times) == 15
    assert np.allclose(np.diff(times), 1 / 30, atol=1e-3), np.diff(times)


def _with_pts(path, pts_ms: list[int]) -> None:
    """An FFV1 clip in Matroska whose frames carry exactly ``pts_ms`` (duplicates too)."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.time_base = s.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = 40 * i, Fraction(1, 1000)  # the encoder wants them increasing
            for packet in s.encode(f):
                packet.pts = packet.dts = pts
                c.mux(packet)
        c.mux(s.encode(None))


def test_a_duplicate_pts_moves_only_that_frame(tmp_path):
    src = tmp_path / "dup.mkv"
    _with_pts(src, [0, 40, 40, 80, 120, 160])
    reader = VideoReader(src)
    try:
        pts = [f.pts for f in reader.frames()]
    finally:
        reader.close()
    assert pts == [0, 40, 41, 80, 120, 160]
