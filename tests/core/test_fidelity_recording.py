"""``stream --record``: a write error (disk full) keeps what was recorded as a valid file
and says so in one line, instead of deleting it."""

from __future__ import annotations

import errno
import threading
from fractions import Fraction

import av
import numpy as np
import pytest

from rtderain.errors import MediaError
from rtderain.live.sinks import OutputFrame, RecordingSink, SinkWorker
from rtderain.live.sources import LiveFrame
from rtderain.media.colour import ColourInfo
from rtderain.media.writer import EncodeOptions, VideoWriter

COLOUR = ColourInfo(colorspace=1, color_range=1, color_primaries=1, color_trc=1)


def _item(i: int) -> OutputFrame:
    rgb = np.full((48, 64, 3), 20 * i, np.uint8)
    src = LiveFrame(raw=rgb, convert=lambda raw, colour: raw, pts=i, time_base=Fraction(1, 25),
                    t_capture=0.0, index=i, session=0, colour=COLOUR)
    return OutputFrame(source=src, pixels=rgb, t_output=0.0)


def _disk_full_after(monkeypatch, n: int) -> None:
    real = VideoWriter._mux
    calls = {"n": 0}

    def mux(self, packets):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, packets)

    monkeypatch.setattr(VideoWriter, "_mux", mux)


@pytest.mark.parametrize("ext", [".mkv", ".mp4"])
def test_disk_full_keeps_the_frames_recorded(tmp_path, monkeypatch, ext):
    out = tmp_path / f"rec{ext}"
    sink = RecordingSink(out, EncodeOptions(codec="ffv1" if ext == ".mkv" else "mpeg4",
                                            crf=None, preset=None))
    _disk_full_after(monkeypatch, 5)
    with pytest.raises(MediaError) as info:
        for i in range(10):
            sink.write(_item(i))
    sink.close()
    message = str(info.value)
    assert "\n" not in message and "No space left" in message, message
    assert "5 frames" in message and str(out) in message, message
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 5
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no partial left behind


def test_disk_full_through_the_sink_worker(tmp_path, monkeypatch):
    out = tmp_path / "rec.mkv"
    stop = threading.Event()
    worker = SinkWorker(RecordingSink(out, EncodeOptions(codec="ffv1")), stop)
    _disk_full_after(monkeypatch, 3)
    worker.start()
    for i in range(8):
        worker.submit(_item(i))
    worker.finish()
    assert isinstance(worker.error, MediaError) and stop.is_set()
    with av.open(str(out)) as c:
        assert len(list(c.decode(video=0))) == 3
