"""``--serve``: the page in headless Chromium shows moving live views and the stats; the
token, the Host check, the connection cap and the idle timeout."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from live_helpers import LiveRun, SleepEngine, free_port

from rtderain.live.capture import SourceOptions
from rtderain.live.server import ServeSink, parse_address
from rtderain.live.session import LiveOptions
from rtderain.live.stats import LiveStats

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


def _stats() -> dict:
    return LiveStats().snapshot().as_dict()


def _get(port: int, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET on 127.0.0.1 (``Host`` is ``127.0.0.1:PORT`` unless ``headers`` has one)."""
    with contextlib.closing(http.client.HTTPConnection("127.0.0.1", port, timeout=30)) as conn:
        conn.request("GET", path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()


@contextlib.contextmanager
def _serving(host: str = "127.0.0.1", **kwargs) -> Iterator[tuple[ServeSink, int]]:
    """A ServeSink on a free port (closed at the end) and that port."""
    port = free_port()
    sink = ServeSink(f"{host}:{port}", _stats, **kwargs)
    try:
        yield sink, port
    finally:
        sink.close()


def test_a_network_bind_needs_the_token():
    with _serving("0.0.0.0") as (sink, port):
        assert sink.generated_token and len(sink.token) >= 16
        assert _get(port, "/stats.json")[0] == 401
        assert _get(port, "/")[0] == 401
        assert _get(port, "/raw.mjpg?token=wrong")[0] == 401
        assert _get(port, "/stats.json", {"Authorization": "Bearer wrong"})[0] == 401
        status, headers, _ = _get(port, f"/?token={sink.token}")
        assert status == 303 and headers["Location"] == "/"
        cookie = headers["Set-Cookie"].split(";")[0]
        assert sink.token in cookie
        status, _, page = _get(port, "/", {"Cookie": cookie})
        assert status == 200 and b"/derained.mjpg" in page
        assert _get(port, "/stats.json", {"Authorization": f"Bearer {sink.token}"})[0] == 200
        assert _get(port, f"/stats.json?token={sink.token}")[0] == 200


def test_a_given_token_is_required_on_loopback_too():
    with _serving(token="given-token") as (sink, port):
        assert not sink.generated_token
        assert _get(port, "/stats.json")[0] == 401
        assert _get(port, "/stats.json?token=given-token")[0] == 200


def test_unknown_host_names_are_refused():
    with _serving() as (sink, port):
        assert sink.token is None  # loopback: no token unless given
        assert _get(port, "/stats.json")[0] == 200
        assert _get(port, "/stats.json", {"Host": f"localhost:{port}"})[0] == 200
        assert _get(port, "/stats.json", {"Host": f"{socket.gethostname()}:{port}"})[0] == 200
        assert _get(port, "/", {"Host": f"rebind.attacker.test:{port}"})[0] == 403
        assert _get(port, "/stats.json", {"Host": "evil.example"})[0] == 403


def test_connections_are_capped():
    with _serving(max_connections=2, idle_timeout=60) as (_, port), contextlib.ExitStack() as held:
        for _ in range(2):
            held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=30))
        assert _get(port, "/stats.json")[0] == 503
        held.close()
        deadline = time.monotonic() + 30
        while _get(port, "/stats.json")[0] != 200:  # the slots come back once they close
            assert time.monotonic() < deadline, "slots never freed"
            time.sleep(0.1)


def test_idle_sockets_are_closed():
    with _serving(idle_timeout=0.5) as (_, port):
        with socket.create_connection(("127.0.0.1", port), timeout=30) as idle:
            idle.sendall(b"GET /stats.json HTTP/1.1\r\n")  # and never the rest
            assert idle.recv(1024) == b""  # closed by the server, long before our timeout


def _stream(*args: str) -> subprocess.CompletedProcess:
    root = Path(__file__).resolve().parents[2]
    return subprocess.run(
        [sys.executable, "-m", "rtderain", "stream", *args, "--engine", "torch", "--threads",
         "1", "--frames", "2"], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(root)},
    )


def test_cli_prints_the_generated_token_once_and_warns(rainy_clip):
    res = _stream(str(rainy_clip), "-q", "--serve", f"0.0.0.0:{free_port()}")
    assert res.returncode == 0, res.stderr
    lines = [line for line in res.stderr.splitlines() if "?token=" in line]
    assert len(lines) == 1 and lines[0].startswith("live view: http://"), res.stderr
    token = lines[0].rpartition("?token=")[2]
    assert len(token) >= 16 and res.stderr.count(token) == 1
    assert "reachable from the network" in res.stderr


def test_cli_never_prints_a_given_token(rainy_clip):
    res = _stream(str(rainy_clip), "--serve", f"0.0.0.0:{free_port()}",
                  "--serve-token", "s3cret-given")
    assert res.returncode == 0, res.stderr
    assert "s3cret-given" not in res.stderr and "live view: http://" in res.stderr
