"""A frame size that changes mid-stream (concatenated TS, a camera changing mode, a live
reconnect at a new size): every frame de-rained at its own size, kept, with its pts."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.live.session import LiveOptions, run_live
from rtderain.live.sinks import RecordingSink
from rtderain.media.reader import VideoReader
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from tests.mediagen import moving_pattern, run_cli

SIZES = ((96, 64), (128, 80))  # (width, height) of the two parts
EACH = 6
STEP = 3600  # 25 fps in 1/90000


def _ts_part(path, width: int, height: int, first: int) -> None:
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=25, options={"bf": "0"})  # no reorder delay
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.time_base = Fraction(1, 90000)
        for i in range(first, first + EACH):
            f = av.VideoFrame.from_ndarray(moving_pattern(i, width, height), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i * STEP, Fraction(1, 90000)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


@pytest.fixture
def two_sizes(tmp_path):
    """An MPEG-TS clip whose second half is another size (two files concatenated)."""
    parts = []
    for n, (w, h) in enumerate(SIZES):
        _ts_part(tmp_path / f"part{n}.ts", w, h, n * EACH)
        parts.append((tmp_path / f"part{n}.ts").read_bytes())
    src = tmp_path / "two_sizes.ts"
    src.write_bytes(b"".join(parts))
    return src


def _decoded(path) -> list[av.VideoFrame]:
    with av.open(str(path)) as c:
        return [f for f in c.decode(video=0)]


class _OneSizeEngine(IdentityEngine):
    """An identity engine built for one frame size, as the fixed-shape engines are."""

    def __init__(self, size: tuple[int, int], built: list) -> None:
        super().__init__()
        self.size = size
        built.append(size)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        assert frames.shape[1:3] == self.size, f"engine for {self.size} got {frames.shape}"
        return frames


def _run(src, out, batch: int = 4) -> list:
    built: list = []
    opts = PipelineOptions(batch=batch,
                           encode=EncodeOptions(codec="libx264", crf=12, preset="ultrafast"))
    probe = VideoReader(src)  # the size the header declares: the engine is built for it
    size = (probe.height, probe.width)
    probe.close()
    derain_video(src, out, _OneSizeEngine(size, built), opts,
                 engine_for=lambda h, w: _OneSizeEngine((h, w), built))
    return built


def test_source_changes_size(two_sizes):
    frames = _decoded(two_sizes)
    assert [(f.width, f.height) for f in frames] == [SIZES[0]] * EACH + [SIZES[1]] * EACH


def test_ts_output_keeps_every_size(two_sizes, tmp_path):
    out = tmp_path / "clean.ts"
    built = _run(two_sizes, out)  # batch 4 over a change at frame 6: the batch is split
    assert sorted(built) == [(64, 96), (80, 128)]
    src, got = _decoded(two_sizes), _decoded(out)
    assert len(got) == len(src) == 2 * EACH
    assert [f.pts for f in got] == [f.pts for f in src]
    assert [(f.width, f.height) for f in got] == [(f.width, f.height) for f in src]
    for a, b in zip(src, got, strict=True):  # the picture, not garbage
        diff = np.abs(a.to_ndarray(format="rgb24").astype(int) - b.to_ndarray(format="rgb24"))
        assert diff.mean() < 3


def test_mp4_output_scales_with_one_warning(two_sizes, tmp_path, caplog):
    out = tmp_path / "clean.mp4"
    with caplog.at_level(logging.WARNING):
        _run(two_sizes, out, batch=3)
    warnings = [r for r in caplog.records if "frame size changes" in r.getMessage()]
    assert len(warnings) == 1 and "128x80" in warnings[0].getMessage()
    src, got = _decoded(two_sizes), _decoded(out)
    assert len(got) == len(src)
    assert [float(f.pts * f.time_base) for f in got] == [float(f.pts * f.time_base) for f in src]
    assert {(f.width, f.height) for f in got} == {SIZES[0]}
    for a, b in zip(src, got, strict=True):
        want = cv2.resize(a.to_ndarray(format="rgb24"), SIZES[0], interpolation=cv2.INTER_AREA)
        assert np.abs(want.astype(int) - b.to_ndarray(format="rgb24")).mean() < 4


@pytest.mark.parametrize("ext", [".ts", ".mkv"])
def test_live_recording_of_a_size_change(two_sizes, tmp_path, ext):
    out = tmp_path / f"rec{ext}"
    built: list = []
    sink = RecordingSink(out, EncodeOptions(codec="libx264", crf=12, preset="ultrafast"))
    summary = run_live(str(two_sizes), _OneSizeEngine((80, 128), built), [sink], LiveOptions(),
                       engine_for=lambda h, w: _OneSizeEngine((h, w), built))
    assert summary.processed == 2 * EACH
    got = _decoded(out)
    assert len(got) == 2 * EACH
    want = [SIZES[0]] * EACH + [SIZES[1]] * EACH if ext == ".ts" else [SIZES[0]] * 2 * EACH
    assert [(f.width, f.height) for f in got] == want
    assert sorted(set(built)) == [(64, 96), (80, 128)]


def test_cli_derains_each_part_at_its_size(two_sizes, tmp_path):
    out = tmp_path / "clean.ts"
    res = run_cli(str(two_sizes), "-o", str(out), "--model", "mgid-rt", "--engine", "torch",
                  "--batch", "4", "--temporal", "off", "-q")
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    src, got = _decoded(two_sizes), _decoded(out)
    # x264's B-frames make the TS muxer start at a later pts; the steps are the source's
    assert [(f.pts - got[0].pts, f.width, f.height) for f in got] == [
        (f.pts, f.width, f.height) for f in src]
    for a, b in zip(src, got, strict=True):  # de-rained, not garbage: close to the input
        diff = np.abs(a.to_ndarray(format="rgb24").astype(int) - b.to_ndarray(format="rgb24"))
        assert diff.mean() < 20
