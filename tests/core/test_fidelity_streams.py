"""Side streams: Matroska attachments, timecode tracks and extra video tracks are copied
where the output's container holds them; anything dropped is a warning naming the stream,
and ``--strict`` makes it an error before any work."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from tests.mediagen import run_cli

FONT = b"\x00\x01\x00\x00 not really a font, but bytes to carry"
OPTS = PipelineOptions(encode=EncodeOptions(codec="libx264", crf=30, preset="ultrafast"))


def _source(path, *, timecode=None, extra_video=False, attachment=False, frames=5) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"bf": "0"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        if timecode:
            s.metadata["timecode"] = timecode  # the .mov/.mp4 muxer writes a tmcd track
        s2 = c.add_stream("mpeg4", rate=25) if extra_video else None
        if s2 is not None:
            s2.width, s2.height, s2.pix_fmt = 32, 24, "yuv420p"
        if attachment:
            c.add_attachment("subs-font.ttf", "application/x-truetype-font", FONT)
        for i in range(frames):
            for st, (w, h) in ((s, (64, 48)), (s2, (32, 24))):
                if st is None:
                    continue
                f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), "rgb24")
                f = f.reformat(format="yuv420p")
                f.pts, f.time_base = i, Fraction(1, 25)
                c.mux(st.encode(f))
        for st in (s, s2):
            if st is not None:
                c.mux(st.encode(None))


def _streams(path) -> list[tuple]:
    with av.open(str(path)) as c:
        out = []
        for s in c.streams:
            if s.type == "attachment":
                out.append(("attachment", s.name, bytes(s.data)))
            elif s.type == "data":
                out.append(("data", (s.metadata or {}).get("timecode")))
            else:
                out.append((s.type, s.codec_context.name))
        return out


def _video_packets(path, index: int) -> int:
    with av.open(str(path)) as c:
        return sum(1 for p in c.demux(c.streams[index]) if p.size)


def test_attachment_and_extra_video_reach_mkv(tmp_path, caplog):
    src, out = tmp_path / "subs.mkv", tmp_path / "clean.mkv"
    _source(src, attachment=True, extra_video=True)
    with caplog.at_level(logging.WARNING):
        summary = derain_video(src, out, IdentityEngine(), OPTS)
    assert not [r for r in caplog.records if "not copied" in r.getMessage()]
    got = _streams(out)
    assert ("attachment", "subs-font.ttf", FONT) in got
    assert [s for s in got if s[0] == "video"] == [("video", "h264"), ("video", "mpeg4")]
    assert _video_packets(out, 1) == _video_packets(src, 1) == 5
    assert summary.copied_streams == 2


@pytest.mark.parametrize("ext", [".mov", ".mp4"])
def test_timecode_track_is_kept(tmp_path, ext):
    src, out = tmp_path / f"tc{ext}", tmp_path / f"clean{ext}"
    _source(src, timecode="01:02:03:04")
    assert ("data", "01:02:03:04") in _streams(src)
    derain_video(src, out, IdentityEngine(), OPTS)
    assert ("data", "01:02:03:04") in _streams(out)


def test_dropped_streams_are_warnings_naming_each(tmp_path, caplog):
    src, out = tmp_path / "tc.mov", tmp_path / "clean.mkv"
    _source(src, timecode="01:02:03:04")
    with caplog.at_level(logging.WARNING):
        summary = derain_video(src, out, IdentityEngine(), OPTS)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("stream #1" in m and "timecode 01:02:03:04" in m and "not copied" in m
               for m in lines), lines
    assert summary.frames == 5 and summary.copied_streams == 0

    src2, out2 = tmp_path / "subs.mkv", tmp_path / "clean.mp4"
    _source(src2, attachment=True)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        derain_video(src2, out2, IdentityEngine(), OPTS)
    assert any("subs-font.ttf" in r.getMessage() and r.levelno == logging.WARNING
               for r in caplog.records)


def test_strict_checks_every_input_before_any_work(tmp_path):
    good, mkv = tmp_path / "good.mp4", tmp_path / "subs.mkv"
    _source(good)
    _source(mkv, attachment=True)
    bad = mkv.rename(tmp_path / "bad.mp4")  # Matroska inside: its .mp4 output drops the font
    out = tmp_path / "clean"
    res = run_cli(str(good), str(bad), "--out-dir", str(out), "--strict", "--model", "mgid-rt",
                  "--engine", "torch", "-q")
    assert res.returncode == 1
    assert "subs-font.ttf" in res.stderr and "Traceback" not in res.stderr
    assert not (out / "good.mp4").exists()  # the good first input was not started either
    res = run_cli(str(good), str(bad), "--out-dir", str(out), "--model", "mgid-rt",
                  "--engine", "torch", "-q")  # without --strict: a warning, and done
    assert res.returncode == 0, res.stderr
    assert "subs-font.ttf" in res.stderr and "not copied" in res.stderr
    assert (out / "good.mp4").exists() and (out / "bad.mp4").exists()


def test_strict_error_is_one_line_and_nothing_written(tmp_path):
    good, src = tmp_path / "plain.mkv", tmp_path / "tc.mov"
    _source(good)
    _source(src, timecode="01:02:03:04")
    out = tmp_path / "clean.mkv"
    res = run_cli(str(src), "-o", str(out), "--strict", "--model", "mgid-rt")
    assert res.returncode == 1
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, res.stderr
    assert "--strict" in lines[0] and "timecode 01:02:03:04" in lines[0]
    assert "Traceback" not in res.stderr
    assert not out.exists()
