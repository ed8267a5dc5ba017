"""A real RTSP server (GStreamer, on 127.0.0.1) -> rtderain live -> recording.

The client reads with rtsp_transport=tcp (the low-latency defaults), de-rains with a
perturbed mgid-rt (its output differs from its input) and records; the recording is
checked frame by frame against the same frames de-rained offline, and a server killed
mid-stream is reconnected to without inserting frames.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import pytest
from live_helpers import LiveRun, decode_all, perturbed_engine, psnr, read_code

from rtderain.live.capture import SourceOptions
from rtderain.live.session import LiveOptions, derain_frame
from rtderain.live.sinks import RecordingSink
from rtderain.media.writer import EncodeOptions

pytestmark = [pytest.mark.network, pytest.mark.slow, pytest.mark.timeout(180)]


def _options(**kw) -> LiveOptions:
    return LiveOptions(source=SourceOptions(reconnect_delay=0.3, reconnect_max_delay=1.0,
                                            stall_timeout=3.0, **kw))


def _recorder(path):
    return RecordingSink(path, EncodeOptions(crf=4, preset="ultrafast"))


def _offline(rainy_clip):
    """The clip's frames decoded by PyAV, indexed by their coded frame number."""
    frames = {}
    for rgb, _, _ in decode_all(rainy_clip):
        frames[read_code(rgb)] = rgb
    return frames


def test_rtsp_record_matches_offline_derain(rtsp_server, rainy_clip, tmp_path, one_thread):
    engine = perturbed_engine()
    out = tmp_path / "live.mp4"
    run = LiveRun(rtsp_server.url, engine, [_recorder(out)], _options())
    run.wait_for(lambda: run.stats.processed >= 12, 90, "12 de-rained frames")
    summary = run.finish()

    recorded = decode_all(out)
    assert len(recorded) == summary.processed  # every frame that reached the file is kept
    pts = np.array([p for _, p, _ in recorded])
    assert (np.diff(pts) > 0).all(), pts
    offline = _offline(rainy_clip)
    gains = []
    for rgb, _, _ in recorded:
        idx = read_code(rgb)
        assert idx in offline, f"recorded frame codes index {idx}, not in the clip"
        expected = derain_frame(engine, offline[idx])
        to_offline, to_raw = psnr(rgb, expected), psnr(rgb, offline[idx])
        assert to_offline > 38.0, (idx, to_offline)
        gains.append(to_offline - to_raw)
    # The output is the de-rained frame, not the input passed through.
    assert min(gains) > 5.0, gains
    # Source timestamps kept: recorded pts follow the clip's 25 fps frame numbers.
    codes = np.array([read_code(rgb) for rgb, _, _ in recorded])
    seconds = np.diff(pts) * float(recorded[0][2])
    np.testing.assert_allclose(seconds, np.diff(codes) / 25, atol=0.01)
    assert summary.latency_p95 > 0


def test_rtsp_reconnect_after_server_restart(rtsp_server, tmp_path, caplog, one_thread):
    caplog.set_level(logging.INFO, logger="rtderain.live")
    engine = perturbed_engine()
    out = tmp_path / "reconnect.mp4"
    run = LiveRun(rtsp_server.url, engine, [_recorder(out)], _options())
    run.wait_for(lambda: run.stats.processed >= 5, 90, "5 frames before the outage")
    before = run.stats.snapshot().processed
    rtsp_server.stop()
    run.wait_for(lambda: run.stats.snapshot().source_state == "reconnecting", 20,
                 "the client to notice the server is gone")
    down = 1.5
    time.sleep(down)
    rtsp_server.start()
    run.wait_for(lambda: run.stats.reconnects >= 1 and run.stats.processed >= before + 5, 90,
                 "reconnect and 5 more frames")
    summary = run.finish()

    text = caplog.text
    assert "lost rtsp://127.0.0.1" in text
    assert "reconnected to rtsp://127.0.0.1" in text and "gap" in text
    assert summary.reconnects >= 1 and summary.gap_seconds >= down

    recorded = decode_all(out)
    assert len(recorded) == summary.processed
    pts = np.array([p for _, p, _ in recorded])
    tb = recorded[0][2]
    steps = np.diff(pts) * float(tb)
    assert (steps > 0).all()
    assert steps.max() >= down, "the outage should show as a pause in the timestamps"
    # No black (or any invented) frame: every recorded frame is a real frame of the clip.
    for rgb, _, _ in recorded:
        assert rgb[32:].mean() > 40
    codes = np.array([read_code(rgb) for rgb, _, _ in recorded])
    assert (np.diff(codes) < 0).any(), "the second connection restarts the clip"
