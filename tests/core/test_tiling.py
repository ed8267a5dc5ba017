"""Tiled inference (rtderain.media.tiling) and the memory budget (rtderain.resources)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch

import rtderain
from rtderain import resources
from rtderain.backends.base import IdentityEngine
from rtderain.errors import ConfigError, RTDerainError
from rtderain.jobs import RunSettings
from rtderain.media.batching import derain_frames
from rtderain.media.tiling import tiled
from rtderain.models import get_config
from rtderain.resources import tile_starts
from tests.mediagen import probe, run_cli, write_video

REPO = Path(__file__).resolve().parents[2]
GB = resources.GIB


@pytest.fixture(scope="module")
def rainy_frame() -> np.ndarray:
    """Frame 30 of the shipped sample (640x360, rain over real footage)."""
    with av.open(str(REPO / "samples" / "rainy_bunny.mp4")) as c:
        for i, frame in enumerate(c.decode(video=0)):
            if i == 30:
                return frame.to_ndarray(format="rgb24")
    raise AssertionError("the sample has fewer than 31 frames")


@pytest.mark.parametrize("length,tile,overlap", [(640, 256, 64), (360, 256, 64), (100, 256, 8),
                                                 (1000, 300, 128), (257, 256, 64)])
def test_tiles_cover_the_frame_and_overlap(length: int, tile: int, overlap: int) -> None:
    starts = tile_starts(length, tile, overlap)
    size = min(tile, length)
    covered = np.zeros(length, bool)
    for s in starts:
        assert 0 <= s and s + size <= length
        covered[s:s + size] = True
    assert covered.all()
    assert all(b - a <= size - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_identity_through_tiles_is_exact(rainy_frame: np.ndarray) -> None:
    """Blending weights sum to one everywhere: an identity network gives back the input,
    on the uint8 path and the float path."""
    eng = tiled(IdentityEngine(), (128, 192), overlap=32)
    assert np.array_equal(derain_frames(eng, rainy_frame[None])[0], rainy_frame)
    x = torch.rand(2, 3, 200, 330) * 2 - 1
    assert torch.allclose(eng.infer(x), x, atol=1e-6)


@pytest.mark.parametrize("model", ["mgid-rt", "mgid"])
def test_tiled_frame_matches_the_untiled_one(rainy_frame: np.ndarray, model: str) -> None:
    """The shipped network on real rain: 256-px tiles with the default overlap differ from
    the whole frame by a few levels at most (no seam), and far less than tiles stitched
    without any overlap do."""
    d = rtderain.Derainer(model, engine="torch", precision="fp32", temporal="off", orient="off")
    whole = derain_frames(d.engine_for(360, 640, 1), rainy_frame[None])[0].astype(float)
    inner = d.engine_for(256, 256, 1)
    blended = derain_frames(tiled(inner, (256, 256)), rainy_frame[None])[0].astype(float)
    butted = derain_frames(tiled(inner, (256, 256), overlap=0), rainy_frame[None])[0]

    def psnr(a: np.ndarray) -> float:
        return float(10 * np.log10(255**2 / max(((a - whole) ** 2).mean(), 1e-12)))

    assert np.abs(whole - rainy_frame).mean() > 1.0, "the network changes this frame"
    assert np.abs(blended - whole).max() <= 8
    assert psnr(blended) > 55
    assert psnr(blended) > psnr(butted.astype(float)) + 5


def test_planner_lowers_the_batch_then_tiles_then_refuses() -> None:
    cfg = get_config("mgid")
    big = resources.plan_engine(cfg, "fp32", 1088, 1920, 4, 64 * GB)
    assert (big.batch, big.tiled) == (4, False)
    lowered = resources.plan_engine(cfg, "fp32", 1088, 1920, 64, 16 * GB)
    assert lowered.rest == resources.pipeline_bytes(1088, 1920) > 0
    assert not lowered.tiled and 1 <= lowered.batch < 64
    assert lowered.estimate + lowered.rest <= 16 * GB
    more = resources.engine_bytes(cfg, "fp32", 1088 * 1920, lowered.batch + 1)
    assert more + lowered.rest > 16 * GB
    four_k = resources.plan_engine(cfg, "fp32", 2160, 3840, 4, 4 * GB)
    assert four_k.tiled and four_k.batch == 1 and four_k.estimate + four_k.rest <= 4 * GB
    assert four_k.size[0] % cfg.multiple == 0 and four_k.size[1] % cfg.multiple == 0
    with pytest.raises(RTDerainError, match="--tile off"):
        resources.plan_engine(cfg, "fp32", 2160, 3840, 1, 4 * GB, tile=0)
    with pytest.raises(RTDerainError, match="smaller --tile"):
        resources.plan_engine(cfg, "fp32", 2160, 3840, 1, 3 * GB, tile=2048)
    with pytest.raises(RTDerainError, match="too small for mgid"):
        resources.plan_engine(cfg, "fp32", 2160, 3840, 1, resources.pipeline_bytes(2160, 3840)
                              + (100 << 20))
    with pytest.raises(RTDerainError, match="pipeline itself"):
        resources.plan_engine(cfg, "fp32", 2160, 3840, 1, 1 * GB)


class _Recorder(IdentityEngine):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[int] = []

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append(x.shape[0])
        return x

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append(frames.shape[0])
        return frames


def test_the_planned_batch_bounds_every_call_of_an_any_batch_engine() -> None:
    """torch takes any batch at once: the wrapper feeds it the planned number of frames
    (whole frames) or tiles (large ones), never the pipeline's whole batch."""
    rec = _Recorder()
    eng = tiled(rec, (64, 96), chunk=2)
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 96, 3), dtype=np.uint8)
    assert np.array_equal(eng.infer_frames(frames), frames) and rec.calls == [2, 2, 1]
    rec.calls.clear()
    big = np.random.default_rng(1).integers(0, 255, (2, 128, 192, 3), dtype=np.uint8)
    eng = tiled(rec, (64, 96), chunk=1)
    assert np.array_equal(eng.infer_frames(big), big) and set(rec.calls) == {1}
    d = rtderain.Derainer("mgid", engine="torch", precision="fp32", max_memory="1200M",
                          orient="off")
    lowered = d.engine_for(360, 640, 64)
    assert "frames per call" in lowered.description and lowered.chunk < 64


def test_int8_is_tried_only_where_its_calibration_fits() -> None:
    cfg = get_config("mgid")
    small = resources.plan_engine(cfg, "bf16", 368, 640, 4, 12 * GB, auto=True)
    assert small.try_int8
    four_k = resources.plan_engine(cfg, "bf16", 2160, 3840, 4, 12 * GB, auto=True)
    assert not four_k.try_int8  # its build would need ~45 GB
    forced = resources.plan_engine(cfg, "int8", 2160, 3840, 1, 12 * GB)
    assert forced.tiled and resources.engine_bytes(
        cfg, "int8-build", forced.size[0] * forced.size[1], 1) <= 12 * GB


def test_memory_sizes_parse_and_bad_ones_are_one_line() -> None:
    assert resources.parse_memory("8G") == 8 * GB
    assert resources.parse_memory("512MiB") == 512 << 20
    assert resources.parse_memory("1.5gb") == int(1.5 * GB)
    assert resources.parse_memory("auto") == resources.default_budget() >= GB
    for bad in ("lots", "8X", "-1G", "100M", "99999G"):
        with pytest.raises(RTDerainError):
            resources.parse_memory(bad)
    with pytest.raises(ConfigError, match="max_memory"):
        RunSettings(max_memory="lots")
    with pytest.raises(ConfigError, match="tile"):
        RunSettings(tile="huge")


def test_a_budget_that_forces_tiles_still_derains_every_frame(rainy_frame: np.ndarray) -> None:
    d = rtderain.Derainer("mgid", engine="torch", precision="fp32", max_memory="1000M")
    eng = d.engine_for(360, 640, 4)
    assert "tiles" in eng.description
    whole = rtderain.Derainer("mgid", engine="torch", precision="fp32")(rainy_frame)
    out = d(rainy_frame)
    assert out.shape == rainy_frame.shape and np.abs(out.astype(int) - whole).max() <= 8


def test_cli_refuses_what_cannot_fit_before_any_work(tmp_path: Path) -> None:
    src, small = tmp_path / "in.mp4", tmp_path / "small.mp4"
    write_video(src, frames=2, width=1280, height=720)
    write_video(small, frames=4, width=320, height=192)
    out = tmp_path / "out.mp4"
    r = run_cli(str(src), "-o", str(out), "--tile", "off", "--max-memory", "900M", "-q")
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "--tile off" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    assert not list(tmp_path.glob(".out*"))
    r = run_cli(str(small), "-o", str(out), "--max-memory", "900M", "--tile", "128", "-q",
                "-m", "mgid-rt", "--engine", "torch")
    assert r.returncode == 0, r.stderr
    assert probe(out)["frames"] == 4
