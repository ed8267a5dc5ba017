"""Fixtures for the engine tests: perturbed networks (so parity is meaningful) and frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtderain.models import MODELS, build_model
from rtderain.models.mgid import MGID
from tests.mediagen import SHARED_DATA

REAL_FRAME = SHARED_DATA / "nturain_a1" / "rain" / "00001.jpg"

# Small padded sizes, multiples of both models' pad multiple (8 and 16).
HEIGHT, WIDTH = 96, 128


def perturbed_model(name: str, seed: int = 0) -> MGID:
    """A registered network whose zero-initialised rain head is randomly perturbed.

    The untrained net is the identity (R = 0), which would make every parity test pass
    trivially; a random head makes the output depend on every layer and on the memory.
    """
    with torch.random.fork_rng():
        torch.manual_seed(seed)  # the other layers' default init: same seed, same net
        model = build_model(name).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=gen) * 0.05)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=gen) * 0.05)
    return model


@pytest.fixture(scope="session", params=list(MODELS))
def model(request: pytest.FixtureRequest) -> MGID:
    return perturbed_model(request.param)


def random_frames(n: int = 2, seed: int = 1) -> torch.Tensor:
    """(n, 3, HEIGHT, WIDTH) float32 uniform in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, HEIGHT, WIDTH), generator=gen) * 2 - 1


def scene_frames(n: int = 2, seed: int = 2) -> torch.Tensor:
    """(n, 3, HEIGHT, WIDTH) float32 in [-1, 1]: a real-like rainy scene made here.

    Smooth sky gradient, a textured ground, hard-edged buildings with windows, sensor
    noise, and bright thin slanted rain streaks (brighter than the background, as rain
    is): the statistics a de-raining net sees, without the benchmark data.
    """
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    out = []
    for _ in range(n):
        img = np.empty((HEIGHT, WIDTH, 3), np.float32)
        img[...] = (60 + 80 * yy / HEIGHT)[..., None] * np.array([0.8, 0.9, 1.1], np.float32)
        ground = yy > HEIGHT * 0.6
        texture = 40 * np.sin(xx / 3.1 + rng.uniform(0, 6)) * np.cos(yy / 2.3)
        img[ground] = (90 + texture[ground])[:, None] * np.array([0.7, 0.8, 0.5], np.float32)
        for _ in range(4):  # buildings with lit windows
            x0, w = int(rng.integers(0, WIDTH - 20)), int(rng.integers(12, 30))
            top = int(rng.integers(10, HEIGHT // 2))
            img[top : int(HEIGHT * 0.6), x0 : x0 + w] = rng.uniform(40, 120, 3)
            img[top + 3 : int(HEIGHT * 0.6) : 6, x0 + 2 : x0 + w - 2 : 5] = 220
        img += rng.normal(0, 3, img.shape)
        rain = np.zeros((HEIGHT, WIDTH), np.float32)
        for _ in range(60):
            x, y = int(rng.integers(0, WIDTH)), int(rng.integers(0, HEIGHT))
            length, slant = int(rng.integers(6, 20)), float(rng.uniform(-0.4, 0.4))
            end = (int(x + slant * length), y + length)
            cv2.line(rain, (x, y), end, float(rng.uniform(40, 110)), 1, cv2.LINE_AA)
        img = np.clip(img + cv2.GaussianBlur(rain, (3, 3), 0.6)[..., None], 0, 255)
        out.append(img)
    x = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).contiguous()
    return x / 127.5 - 1


FRAME_KINDS = ("random", "scene", "real")


def frames_of(kind: str, n: int = 2) -> torch.Tensor:
    """Test frames by kind: ``random`` noise, a made ``scene`` (always available), or
    ``real`` crops of NTURain a1 (skips when the shared data is absent)."""
    return {"random": random_frames, "scene": scene_frames, "real": real_frames}[kind](n)


def real_frames(n: int = 2) -> torch.Tensor:
    """(n, 3, HEIGHT, WIDTH) crops of a real rainy frame (NTURain a1), float32 in [-1, 1]."""
    if not REAL_FRAME.is_file():
        pytest.skip(f"real frame not found: {REAL_FRAME} (shared data missing)")
    import cv2

    bgr = cv2.imread(str(REAL_FRAME), cv2.IMREAD_COLOR)
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    crops = [rgb[40 * i : 40 * i + HEIGHT, 60 * i : 60 * i + WIDTH] for i in range(n)]
    x = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two tensors on the [-1, 1] scale (peak-to-peak 2)."""
    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * np.log10(4.0 / mse)


@pytest.fixture(autouse=True)
def _private_engine_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """Engines built by these tests never land in the repository's ``engines/``."""
    monkeypatch.setenv("RTDERAIN_ENGINES", str(tmp_path_factory.getbasetemp() / "engines-env"))


def shared_engines_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One engine cache for the whole session: equal keys reuse artifacts across tests."""
    return tmp_path_factory.getbasetemp() / "engines-shared"
