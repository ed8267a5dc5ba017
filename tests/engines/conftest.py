"""Fixtures for the engine tests: perturbed networks (so parity is meaningful) and frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rtderain.models import build_model
from rtderain.models.mgid import MGID

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
REAL_FRAME = DATA / "nturain_a1" / "rain" / "00001.jpg"

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


@pytest.fixture(scope="session", params=["mgid", "mgid-rt"])
def model(request: pytest.FixtureRequest) -> MGID:
    return perturbed_model(request.param)


def random_frames(n: int = 2, seed: int = 1) -> torch.Tensor:
    """(n, 3, HEIGHT, WIDTH) float32 uniform in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, HEIGHT, WIDTH), generator=gen) * 2 - 1


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
