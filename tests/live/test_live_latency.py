"""Inference slower than the camera: drops are counted and latency stays bounded."""

from __future__ import annotations

import pytest
from live_helpers import LiveRun, SleepEngine, make_rainy_clip

from rtderain.live.capture import SourceOptions
from rtderain.live.session import LiveOptions

pytestmark = pytest.mark.timeout(120)

INFER = 0.15  # seconds per frame: ~6.7 fps against a 25 fps source


@pytest.mark.parametrize("bound", [0.5, 0.3])
def test_slow_inference_drops_and_bounds_latency(rainy_clip, bound):
    run = LiveRun(rainy_clip, SleepEngine(INFER), [],
                  LiveOptions(source=SourceOptions(realtime=True), max_latency=bound))
    run.wait_for(lambda: run.stats.processed >= 12, 60, "12 frames")
    summary = run.finish()
    assert summary.captured > summary.processed
    assert summary.dropped + summary.stale >= summary.captured - summary.processed - 1
    assert summary.dropped + summary.stale > summary.processed  # most frames dropped
    assert summary.latency_p95 <= bound, summary
    assert summary.fps_in > 15  # the source kept its own pace


def test_latest_frame_wins_without_a_bound(rainy_clip):
    """No --max-latency: the one-frame queue alone keeps latency near two inference times."""
    run = LiveRun(rainy_clip, SleepEngine(INFER), [], LiveOptions(source=SourceOptions(
        realtime=True)))
    run.wait_for(lambda: run.stats.processed >= 12, 60, "12 frames")
    summary = run.finish()
    assert summary.dropped > 0
    assert summary.latency_p95 < 3 * INFER + 0.15, summary


def test_file_without_realtime_keeps_every_frame(tmp_path):
    """A file read as fast as it is consumed drops nothing (a blocking queue, not a camera)."""
    clip = tmp_path / "short.mp4"
    make_rainy_clip(clip, 2.0, 160, 96)
    run = LiveRun(clip, SleepEngine(0.005), [], LiveOptions())
    run.thread.join(60)
    summary = run.finish()
    assert summary.captured == summary.processed == 50
    assert summary.dropped == summary.stale == 0


def test_loop_plays_a_file_again(tmp_path):
    clip = tmp_path / "short.mp4"
    make_rainy_clip(clip, 1.0, 160, 96)
    run = LiveRun(clip, SleepEngine(0.0), [],
                  LiveOptions(source=SourceOptions(loop=True), max_frames=60))
    run.thread.join(60)
    summary = run.finish()
    assert summary.processed == 60 and summary.reconnects == 0
