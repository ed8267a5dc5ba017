"""``--serve``: the page in headless Chromium shows moving live views and the stats."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request

import cv2
import numpy as np
import pytest
from live_helpers import LiveRun, SleepEngine, free_port

from rtderain.live.capture import SourceOptions
from rtderain.live.server import ServeSink, parse_address
from rtderain.live.session import LiveOptions

pytestmark = [pytest.mark.network, pytest.mark.timeout(180)]

CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--window-size=900,560",
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not installed (apt-get install chromium, or .ci/install-live.sh)")
    return exe


def _screenshot(exe: str, url: str, path, profile) -> np.ndarray:
    """One headless screenshot (one retry: a loaded 2-core machine can starve chromium)."""
    log = ""
    for _ in range(2):
        res = subprocess.run(
            [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={path}", url],
            capture_output=True, text=True, timeout=90, check=False,
        )
        img = cv2.imread(str(path))
        if img is not None:
            return img
        log = res.stderr[-1500:]
    raise AssertionError(f"chromium wrote no screenshot to {path}: {log}")


def _has_picture(img: np.ndarray) -> bool:
    """Both views textured (the page background is flat) and the stats table rendered
    (light text on the dark page under the views)."""
    return img[60:330, :700].astype(np.float32).std() > 20 and (img[330:, :300] > 200).mean(
    ) > 0.002


def _page_shot(exe: str, url: str, folder, name: str) -> np.ndarray:
    """A screenshot of the page once it shows its pictures (up to 3 tries: chromium may
    capture before the first MJPEG part arrives on a loaded machine)."""
    for attempt in range(3):
        img = _screenshot(exe, url, folder / f"{name}{attempt}.png", folder / "profile")
        if _has_picture(img):
            return img
    raise AssertionError(f"no picture or no stats in {folder / name}*.png")


def test_parse_address():
    assert parse_address("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_address(":9000") == ("127.0.0.1", 9000)
    with pytest.raises(Exception, match="HOST:PORT"):
        parse_address("localhost")


@pytest.mark.slow
def test_serve_page_in_headless_chromium(rainy_clip, tmp_path):
    exe = _chromium()
    run_stats = {}
    sink = ServeSink(f"127.0.0.1:{free_port()}", lambda: run_stats["run"].stats.snapshot()
                     .as_dict(), source_label="rainy.mp4")
    run = LiveRun(rainy_clip, SleepEngine(0.02), [sink],
                  LiveOptions(source=SourceOptions(realtime=True, loop=True)))
    run_stats["run"] = run
    try:
        run.wait_for(lambda: run.stats.processed >= 5, 60, "5 served frames")
        with urllib.request.urlopen(sink.url + "stats.json", timeout=10) as resp:
            stats = json.load(resp)
        assert stats["processed"] >= 5 and stats["source_state"] == "live"
        with urllib.request.urlopen(sink.url, timeout=10) as resp:
            page = resp.read().decode()
        assert "/derained.mjpg" in page and "/raw.mjpg" in page and "latency p95" in page
        with urllib.request.urlopen(sink.url + "derained.jpg", timeout=10) as resp:
            assert resp.headers["Content-Type"] == "image/jpeg"
            assert cv2.imdecode(np.frombuffer(resp.read(), np.uint8), cv2.IMREAD_COLOR).shape == (
                240, 320, 3)

        first = _page_shot(exe, sink.url, tmp_path, "a")
        shown = run.stats.processed
        run.wait_for(lambda: run.stats.processed >= shown + 5, 60, "5 more frames")
        second = _page_shot(exe, sink.url, tmp_path, "b")
    finally:
        run.finish()

    diff = np.abs(first.astype(np.int16) - second.astype(np.int16))
    assert diff[60:330].mean() > 1.0, "the live views did not change between screenshots"
