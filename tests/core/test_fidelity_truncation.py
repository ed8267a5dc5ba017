"""A truncated file is decoded to its last decodable frame (threaded decoding included)
and reported: one warning with the count; the run still succeeds (exit 0)."""

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
from tests.mediagen import probe, run_cli

FRAMES = 30


def _truncated(tmp_path, ext: str, keep: float = 0.6):
    full, cut = tmp_path / f"full{ext}", tmp_path / f"cut{ext}"
    options = {"movflags": "+faststart"} if ext == ".mp4" else {}
    with av.open(str(full), "w", options=options) as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        rng = np.random.default_rng(0)
        for i in range(FRAMES):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    data = full.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    return full, cut


def _decodable(path) -> int:
    """Frames a plain single-threaded decode gets out of ``path``."""
    n = 0
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        for packet in c.demux(v):
            try:
                n += len(v.decode(packet))
            except (av.FFmpegError, EOFError):
                pass
    return n


@pytest.mark.parametrize("ext", [".mp4", ".mkv"])
def test_truncated_file_keeps_every_decodable_frame_and_says_so(tmp_path, caplog, ext):
    full, cut = _truncated(tmp_path, ext)
    expected = _decodable(cut)
    assert 0 < expected < FRAMES
    reader = VideoReader(cut)  # thread_type AUTO
    with caplog.at_level(logging.WARNING):
        frames = list(reader.frames())
    reader.close()
    assert len(frames) == expected
    assert reader.truncated == FRAMES - expected
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "truncated" in warnings[0], warnings
    assert f"about {FRAMES - expected} missing" in warnings[0]


def test_complete_file_is_not_reported(tmp_path, caplog):
    full, _ = _truncated(tmp_path, ".mp4")
    out = tmp_path / "out.mkv"
    with caplog.at_level(logging.WARNING):
        derain_video(full, out, IdentityEngine(), PipelineOptions(encode=EncodeOptions("ffv1")))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert probe(out)["frames"] == FRAMES


def test_cli_truncated_input_warns_and_exits_0(tmp_path):
    _, cut = _truncated(tmp_path, ".mp4")
    out = tmp_path / "out.mp4"
    result = run_cli(str(cut), "-o", str(out), "--model", "mgid-rt", "--engine", "torch",
                     "--device", "cpu", "-q")
    assert result.returncode == 0, result.stderr
    assert "truncated" in result.stderr and "Traceback" not in result.stderr
    assert probe(out)["frames"] == _decodable(cut)


def test_summary_line_reports_truncation():
    from pathlib import Path

    from rtderain.media.transcode import Summary

    common = dict(input=Path("a.mp4"), output=Path("b.mp4"), frames=10, seconds=1.0,
                  undecodable=0, copied_streams=0, engine="e", colour="c")
    assert "truncated" not in Summary(**common).line()
    assert "truncated: about 4 frames missing" in Summary(**common, truncated=4).line()
