"""Fixtures for the evaluator, metric and baseline tests: shared data paths and synthetic rain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

METRIC_REFS = Path(__file__).resolve().parents[2].parent / "shared" / "metric_refs"


def rainy_clip(
    n: int = 12, h: int = 64, w: int = 80, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A static textured background with thin bright streaks at new places every frame.

    Returns ``(rainy, clean, mask)``: uint8 ``(N, H, W, 3)`` RGB clips and the bool
    ``(N, H, W)`` streak mask. Streaks add the same amount to R, G and B (achromatic rain)
    and never cover a pixel in two consecutive frames (so temporal methods can see behind).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack(
        [
            90 + 40 * np.sin(xx / 5.0) * np.cos(yy / 7.0),
            110 + 30 * np.sin((xx + yy) / 9.0),
            70 + 35 * np.cos(xx / 4.0 - yy / 11.0),
        ],
        axis=-1,
    )
    base += rng.normal(0, 6, size=base.shape)
    clean = np.clip(np.round(base), 0, 255).astype(np.uint8)
    clean = np.repeat(clean[None], n, axis=0)
    mask = np.zeros((n, h, w), dtype=bool)
    for t in range(n):
        for _ in range(h * w // 120):
            x0, y0 = rng.integers(0, w), rng.integers(0, h)
            length = rng.integers(6, 14)
            ys = np.clip(y0 + np.arange(length), 0, h - 1)
            xs = np.clip(x0 + np.arange(length) // 4, 0, w - 1)
            mask[t, ys, xs] = True
        if t > 0:
            mask[t] &= ~mask[t - 1]
    rainy = clean.astype(np.int16) + (mask[..., None] * rng.integers(60, 90)).astype(np.int16)
    return np.clip(rainy, 0, 255).astype(np.uint8), clean, mask


@pytest.fixture
def make_rainy_clip():
    """The :func:`rainy_clip` factory (fixtures avoid importing conftest by module name)."""
    return rainy_clip


@pytest.fixture
def metric_refs() -> Path:
    if not (METRIC_REFS / "refs.json").is_file():
        pytest.skip(f"shared metric references not found at {METRIC_REFS}")
    return METRIC_REFS
