"""Fixtures for the live tests: a synthetic rainy H.264 clip, an RTSP server on loopback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The test modules import their helpers from live_helpers.py beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))
from live_helpers import RTSPServer, gst_rtsp_missing, make_rainy_clip  # noqa: E402


@pytest.fixture(scope="session")
def rainy_clip(tmp_path_factory) -> Path:
    """12 s of 320x240 rainy H.264 at 25 fps, frame index coded in each frame."""
    path = tmp_path_factory.mktemp("live") / "rainy.mp4"
    make_rainy_clip(path, 12.0)
    return path


@pytest.fixture
def rtsp_server(rainy_clip, tmp_path):
    """A started RTSP server serving :func:`rainy_clip`; stopped in teardown."""
    reason = gst_rtsp_missing()
    if reason:
        pytest.skip(reason)
    server = RTSPServer(rainy_clip, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def one_thread():
    """Torch on one thread for the test (much faster than two on a busy 2-core machine)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
