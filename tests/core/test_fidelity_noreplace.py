"""The final rename never replaces a file that appeared at the output path during the run
(without overwrite): that file is kept, the finished result stays beside it under a clear
name, and the error says where."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from rtderain import util
from rtderain.errors import RTDerainError
from rtderain.media.colour import ColourInfo
from rtderain.media.images import read_image, write_image
from rtderain.media.writer import EncodeOptions, VideoWriter


def _writer(path, **kw) -> VideoWriter:
    colour = ColourInfo(colorspace=1, color_range=1, color_primaries=1, color_trc=1)
    return VideoWriter(path, width=64, height=48, time_base=Fraction(1, 25),
                       frame_rate=Fraction(25), colour=colour,
                       options=EncodeOptions(codec="ffv1"), **kw)


def _write_frames(writer: VideoWriter, n: int = 3) -> None:
    for i in range(n):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8), i)


def test_video_created_during_the_run_is_not_replaced(tmp_path):
    out = tmp_path / "clip.mkv"
    writer = _writer(out)
    _write_frames(writer)
    out.write_bytes(b"someone else's file")  # appears while we encode
    with pytest.raises(RTDerainError) as info:
        writer.close()
    kept = util.kept_name(out)
    assert out.read_bytes() == b"someone else's file"
    assert str(kept) in str(info.value) and "not replaced" in str(info.value)
    with av.open(str(kept)) as c:
        assert len(list(c.decode(video=0))) == 3
    assert not writer.tmp_path.exists()


def test_video_overwrite_replaces(tmp_path):
    out = tmp_path / "clip.mkv"
    writer = _writer(out, overwrite=True)
    _write_frames(writer)
    out.write_bytes(b"old")
    writer.close()
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 3


def test_image_created_during_the_write_is_not_replaced(tmp_path, monkeypatch):
    out = tmp_path / "photo.png"
    real = util.finish_noreplace

    def racing(tmp, path):
        path.write_bytes(b"theirs")  # created between our check and our rename
        real(tmp, path)

    monkeypatch.setattr(util, "finish_noreplace", racing)
    with pytest.raises(RTDerainError, match="kept as"):
        write_image(out, np.zeros((48, 64, 3), np.uint8), overwrite=False)
    assert out.read_bytes() == b"theirs"
    assert read_image(util.kept_name(out)).shape == (48, 64, 3)
    assert len(list(tmp_path.iterdir())) == 2  # no temporary file left


def test_rename_noreplace_refuses_an_existing_file(tmp_path):
    src, dst = tmp_path / "a", tmp_path / "b"
    src.write_text("new")
    dst.write_text("old")
    with pytest.raises(FileExistsError):
        util.rename_noreplace(src, dst)
    assert dst.read_text() == "old" and src.read_text() == "new"
    dst.unlink()
    util.rename_noreplace(src, dst)
    assert dst.read_text() == "new" and not src.exists()


def test_overwrite_replaces_an_existing_video_output(tmp_path):
    """`--overwrite` on an existing output: the new result replaces it, nothing left beside."""
    from tests.mediagen import probe, run_cli, write_video

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=6)
    dst.write_bytes(b"old")
    res = run_cli(str(src), "-o", str(dst), "--overwrite", "--model", "mgid-rt", "--engine",
                  "torch", "-q")
    assert res.returncode == 0, res.stderr
    assert probe(dst)["frames"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4", "out.mp4"]
