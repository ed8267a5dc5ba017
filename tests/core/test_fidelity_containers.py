"""Copied streams and the output container: what the muxer takes is kept, what it refuses
is one line that says which containers take it and how to convert or drop it."""

from __future__ import annotations

import av
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.errors import MediaError
from rtderain.media.transcode import derain_video
from tests.mediagen import probe, run_cli, write_video


def test_mpegts_output_keeps_its_aac_track(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.ts"
    write_video(src, frames=12, audio=True)
    derain_video(src, dst, IdentityEngine())
    a, b = probe(src), probe(dst)
    assert b["streams"] == ["video", "audio"]
    assert b["packets"]["audio"] == a["packets"]["audio"] > 0
    assert b["frames"] == a["frames"] == 12


def test_mov_text_into_mkv_names_the_containers_that_take_it(tmp_path):
    src, dst = tmp_path / "talk.mp4", tmp_path / "out.mkv"
    write_video(src, frames=8, subtitles=True, subtitle_codec="mov_text")
    with pytest.raises(MediaError) as info:
        derain_video(src, dst, IdentityEngine())
    message = str(info.value)
    assert "'mov_text'" in message and "a .mkv file" in message
    assert "write .mp4 or .mov instead" in message
    assert "-c:s srt" in message and "-map -0:s" in message  # convert or drop, for .mkv
    assert "(e.g. .mkv)" not in message
    assert not list(tmp_path.glob(".*partial*")) and not dst.exists()


def test_mov_text_into_mp4_is_copied(tmp_path):
    src, dst = tmp_path / "talk.mp4", tmp_path / "out.mp4"
    write_video(src, frames=8, subtitles=True, subtitle_codec="mov_text")
    derain_video(src, dst, IdentityEngine())
    assert _texts(dst) == _texts(src) == [b"subtitle 0", b"subtitle 4"]


def _texts(path) -> list[bytes]:
    """The subtitle texts of ``path`` (the MP4 muxer adds empty samples for the gaps)."""
    with av.open(str(path)) as c:
        return [bytes(p)[2:] for p in c.demux(subtitles=0) if p.size > 2]


def test_refused_stream_is_one_line_on_the_command_line(tmp_path):
    src = tmp_path / "talk.mp4"
    write_video(src, frames=4, subtitles=True, subtitle_codec="mov_text")
    res = run_cli(str(src), "-o", str(tmp_path / "out.mkv"), "--model", "mgid-rt",
                  "--engine", "torch", "--temporal", "off")
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "write .mp4 or .mov instead" in lines[0], res.stderr
