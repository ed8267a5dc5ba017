"""``--stream-out udp://``: MPEG-TS over UDP on loopback, read back by a PyAV client."""

from __future__ import annotations

import socket
import threading

import av
import pytest
from live_helpers import LiveRun, SleepEngine, free_port, read_code

from rtderain.errors import RTDerainError
from rtderain.live.capture import SourceOptions
from rtderain.live.session import LiveOptions
from rtderain.live.sinks import StreamSink, stream_format

pytestmark = [pytest.mark.network, pytest.mark.timeout(120)]


def test_stream_formats():
    assert stream_format("udp://127.0.0.1:5000")[0] == "mpegts"
    assert stream_format("rtmp://host/app/key")[0] == "flv"
    assert stream_format("rtsp://host/path") == ("rtsp", {"rtsp_transport": "tcp"})
    with pytest.raises(RTDerainError, match="stream-out"):
        stream_format("file.mp4")


def test_udp_mpegts_stream_out(rainy_clip):
    port = free_port(socket.SOCK_DGRAM)
    received: list = []
    errors: list = []
    listening = threading.Event()

    def receive() -> None:
        try:
            listening.set()
            with av.open(f"udp://127.0.0.1:{port}?overrun_nonfatal=1&fifo_size=100000",
                         format="mpegts", timeout=(30, 10)) as c:
                for frame in c.decode(video=0):
                    received.append((frame.to_ndarray(format="rgb24"), frame.pts))
                    if len(received) >= 15:
                        break
        except Exception as exc:  # reported by the assertion below
            errors.append(exc)

    rx = threading.Thread(target=receive, daemon=True)
    rx.start()
    listening.wait(5)
    run = LiveRun(rainy_clip, SleepEngine(0.01), [StreamSink(f"udp://127.0.0.1:{port}")],
                  LiveOptions(source=SourceOptions(realtime=True)))
    try:
        rx.join(60)
    finally:
        summary = run.finish()
    assert not errors, errors
    assert len(received) >= 15, f"received {len(received)} frames; sender {summary.line()}"
    assert received[0][0].shape == (240, 320, 3)
    codes = [read_code(rgb) for rgb, _ in received]
    assert codes == sorted(codes) and len(set(codes)) == len(codes)
    pts = [p for _, p in received]
    assert pts == sorted(pts)
