"""Fixtures for the training tests: tiny synthetic clip folders made on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rtderain.synth.build import build_clips


@pytest.fixture(scope="session")
def tiny_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three 4-frame rainy clips (with clean frames) rendered from smooth random images."""
    root = tmp_path_factory.mktemp("clips")
    src_dir = root / "src"
    src_dir.mkdir()
    rng = np.random.default_rng(0)
    import cv2

    sources = []
    for i in range(3):
        img = cv2.resize(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), (80, 64),
                         interpolation=cv2.INTER_CUBIC)
        path = src_dir / f"src{i}.png"
        cv2.imwrite(str(path), img)
        sources.append([path])
    build_clips(sources, root / "clips", frames=4, preset="mixed", seed=3, write_clean=True)
    return root / "clips"


