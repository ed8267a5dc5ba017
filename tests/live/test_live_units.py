"""Small parts of the live path: queues, timestamps across reconnects, source options."""

from __future__ import annotations

import threading
import time
from fractions import Fraction

import pytest

from rtderain.errors import RTDerainError
from rtderain.live.capture import (
    SourceOptions,
    classify,
    input_options_for,
    low_latency_options,
)
from rtderain.live.queues import Closed, LatestQueue
from rtderain.live.sources import Stamper
from rtderain.live.stats import LiveStats
from rtderain.util import redact_url


def test_latest_queue_drops_oldest_and_counts():
    q = LatestQueue(maxsize=2)
    for i in range(5):
        assert q.put(i)
    assert q.dropped == 3
    assert [q.get(0), q.get(0)] == [3, 4]
    assert q.get(timeout=0.01) is None
    q.close()
    assert not q.put(9)
    with pytest.raises(Closed):
        q.get(0)


def test_blocking_queue_keeps_everything():
    q = LatestQueue(maxsize=1, drop=False)
    got = []

    def consume():
        try:
            while True:
                item = q.get(1.0)
                if item is not None:
                    got.append(item)
                    time.sleep(0.005)
        except Closed:
            pass

    t = threading.Thread(target=consume)
    t.start()
    for i in range(20):
        assert q.put(i, timeout=5)
    q.close()
    t.join(5)
    assert got == list(range(20)) and q.dropped == 0


def test_stamper_keeps_source_pts_and_the_reconnect_gap():
    s = Stamper()
    tb = Fraction(1, 90000)
    # Session 0: source pts starting at an arbitrary value, 25 fps.
    out0 = [s.stamp(151200 + 3600 * k, tb, 100.0 + 0.04 * k) for k in range(3)]
    assert out0 == [0, 3600, 7200] and s.time_base == tb
    # Session 1 after a 2 s outage: the source restarts its pts; output continues after the gap.
    s.new_session()
    out1 = [s.stamp(90000 + 3600 * k, tb, 102.08 + 0.04 * k) for k in range(2)]
    assert out1[0] - out0[-1] == round(2.0 / tb)
    assert out1[1] - out1[0] == 3600
    # A source without pts (webcam): the capture clock, monotonic.
    w = Stamper()
    outs = [w.stamp(None, None, 5.0 + 0.033 * k) for k in range(3)]
    assert outs[0] == 0 and outs[1] < outs[2] and w.time_base == Fraction(1, 90000)


def test_classify_sources(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    assert classify("0") == "webcam"
    assert classify("/dev/video2") == "device"
    assert classify("rtsp://cam/live") == "network"
    assert classify("srt://1.2.3.4:9000") == "network"
    assert classify(str(clip)) == "file"
    with pytest.raises(RTDerainError, match="not found"):
        classify(str(tmp_path / "missing.mp4"))
    with pytest.raises(RTDerainError, match="gopher"):
        classify("gopher://x")


def test_low_latency_defaults_and_overrides():
    assert low_latency_options("rtsp://cam/x")["rtsp_transport"] == "tcp"
    assert "rtsp_transport" not in low_latency_options("http://cam/x.mjpg")
    opts = input_options_for(
        "rtsp://cam/x", "network",
        SourceOptions(input_options={"rtsp_transport": "udp", "fflags": "", "stimeout": "1"}),
    )
    assert opts["rtsp_transport"] == "udp" and "fflags" not in opts and opts["stimeout"] == "1"
    assert input_options_for("rtsp://cam/x", "network", SourceOptions(low_latency=False)) == {}
    assert input_options_for("f.mp4", "file", SourceOptions()) == {}


def test_stats_percentiles():
    st = LiveStats()
    for k in range(100):
        st.on_capture(float(k))
        st.on_output(float(k), float(k) + (k + 1) / 1000)
    snap = st.snapshot()
    assert snap.processed == 100
    assert snap.latency_p50 == pytest.approx(0.0505, abs=1e-3)
    assert snap.latency_p95 == pytest.approx(0.095, abs=2e-3)
    assert "p95 95 ms" in snap.line()


def test_keep_up_hint_names_what_is_faster_only_when_frames_were_lost():
    from dataclasses import replace

    st = LiveStats()
    for k in range(40):
        st.on_capture(float(k))
        st.on_output(float(k), float(k) + 0.01)
    kept = st.snapshot()
    assert kept.keep_up_hint("mgid-rt", "causal") is None
    behind = replace(kept, dropped=10, stale=2)  # 12 of 40 lost
    hint = behind.keep_up_hint("mgid-rt", "causal")
    assert hint.startswith("hint: 30 % of the frames were dropped")
    assert "--model mgid-lite or --temporal off" in hint
    assert "--model mgid-rt" in behind.keep_up_hint("mgid", "off")
    assert "--temporal off" not in behind.keep_up_hint("mgid", "off")
    assert "faster" not in behind.keep_up_hint("mgid-lite", "off")
    assert replace(kept, dropped=4).keep_up_hint("mgid-rt", "off") is None  # 10 %: kept up
    assert replace(kept, captured=20, dropped=10).keep_up_hint("mgid", "off") is None


def test_passwords_are_hidden():
    assert redact_url("rtsp://admin:secret@10.0.0.5/stream1") == "rtsp://admin:***@10.0.0.5/stream1"
    assert redact_url("rtsp://10.0.0.5/a@b") == "rtsp://10.0.0.5/a@b"
    assert redact_url("rtsp://u:p@ss@cam:554/x") == "rtsp://u:***@cam:554/x"  # FFmpeg's split
    assert redact_url("cannot open srt://h:9?passphrase=1&token=t: refused") == (
        "cannot open srt://h:9?passphrase=***&token=***: refused")
    assert redact_url("clips/rain@night.mp4") == "clips/rain@night.mp4"
    # an RTMP stream key is the path after the application: hidden; the app stays
    assert redact_url("to rtmp://a.rtmp.youtube.com/live2/abcd-1234-efgh done") == (
        "to rtmp://a.rtmp.youtube.com/live2/*** done")
    assert redact_url("RTMPS://u:pw@live.example/app/k/x?x=1") == "RTMPS://u:***@live.example/app/***?x=1"
    assert redact_url("rtmp://host/app") == "rtmp://host/app"
