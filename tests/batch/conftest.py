"""Fixtures of the batch tests: tiny clips with audio, fast run settings, output checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtderain.jobs import RunSettings
from rtderain.temporal import TemporalSettings
from tests.mediagen import probe, write_video

FRAMES = 8


@pytest.fixture
def make_clips(tmp_path: Path):
    """``make_clips(names)``: write 64x48 clips of 8 frames with an AAC track under
    ``tmp_path/in``; returns that folder."""

    def make(names: list[str], frames: int = FRAMES) -> Path:
        root = tmp_path / "in"
        for name in names:
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            write_video(path, frames=frames, width=64, height=48, audio=True)
        return root

    return make


@pytest.fixture
def fast_settings() -> RunSettings:
    """The real-time network on the torch engine, CPU, no temporal stage."""
    return RunSettings(model="mgid-rt", engine="torch", device="cpu", batch=4,
                       temporal=TemporalSettings("off"))


@pytest.fixture
def assert_complete():
    """``assert_complete(src, dst)``: dst has every frame of src, at src's timestamps, and
    as many audio packets."""

    def check(src: Path, dst: Path) -> None:
        a, b = probe(src), probe(dst)
        assert b["frames"] == a["frames"]
        assert b["pts_seconds"] == pytest.approx(a["pts_seconds"], abs=1e-3)
        assert b["packets"].get("audio", 0) == a["packets"]["audio"] > 0
        assert b["size"] == a["size"]

    return check
