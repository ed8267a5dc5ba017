"""Training augmentation: one flip and one rotation for all frames of a sample, off by default."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from rtderain.errors import RTDerainError
from rtderain.train.config import DataConfig, load_train_config
from rtderain.train.data import ClipDataset


@pytest.fixture()
def static_clip(tmp_path: Path) -> Path:
    """A 3-frame clip whose frames are one identical, asymmetric, bright image (100x120):
    a sample's frames then differ only if their transforms differ."""
    rng = np.random.default_rng(1)
    img = cv2.resize(rng.integers(40, 255, (10, 12, 3), dtype=np.uint8), (120, 100),
                     interpolation=cv2.INTER_CUBIC)
    img = np.clip(img, 40, 255).astype(np.uint8)
    clip = tmp_path / "clip" / "rain"
    clip.mkdir(parents=True)
    for t in range(3):
        cv2.imwrite(str(clip / f"{t:05d}.png"), img)
    return tmp_path / "clip"


def test_augmentation_is_off_by_default(tiny_clips: Path) -> None:
    assert DataConfig().augment_flip is False
    assert DataConfig().augment_rotate_deg == 0.0
    cfg, _ = load_train_config(None, ("data.crop=32",))
    assert (cfg.data.augment_flip, cfg.data.augment_rotate_deg) == (False, 0.0)
    ds = ClipDataset([tiny_clips], crop=32, pseudo_gt="median")
    torch.manual_seed(5)
    item = ds[1]
    after = torch.rand(())
    # The same random stream as before augmentation existed: the plain crop, nothing else.
    torch.manual_seed(5)
    arr = ds.clip_frames(1)
    pick = torch.randperm(arr.shape[0])[:2].tolist()
    y = int(torch.randint(0, arr.shape[1] - 32 + 1, ()).item())
    x = int(torch.randint(0, arr.shape[2] - 32 + 1, ()).item())
    want = torch.from_numpy(arr[pick][:, y : y + 32, x : x + 32]).permute(0, 3, 1, 2)
    assert torch.equal(item["frames"], want.float() / 127.5 - 1.0)
    assert torch.equal(torch.rand(()), after)
    pseudo = torch.from_numpy(ds.clip_pseudo(1)[y : y + 32, x : x + 32]).permute(2, 0, 1)
    assert torch.equal(item["pseudo"], pseudo / 127.5 - 1.0)


def test_flip_and_rotation_are_the_same_for_every_frame_and_the_pseudo_gt(
    static_clip: Path,
) -> None:
    ds = ClipDataset([static_clip], crop=48, flip=True, rotate_deg=25.0, pseudo_gt="median")
    plain = ClipDataset([static_clip], crop=48, pseudo_gt="median")
    changed = 0
    for seed in range(12):
        torch.manual_seed(seed)
        item = ds[0]
        f = item["frames"]
        assert f.shape == (2, 3, 48, 48)
        assert torch.equal(f[0], f[1])  # identical frames, identical transform
        assert torch.allclose(item["pseudo"], f[0], atol=1.5 / 127.5)
        # No empty (black) corners: the source is never darker than 40.
        assert float(f.min()) >= 30 / 127.5 - 1.0
        torch.manual_seed(seed)
        changed += not torch.equal(f, plain[0]["frames"])
    assert changed == 12


def test_flip_mirrors_the_plain_crop(tiny_clips: Path) -> None:
    plain = ClipDataset([tiny_clips], crop=32)
    flipped = ClipDataset([tiny_clips], crop=32, flip=True)
    seen = set()
    for seed in range(16):
        torch.manual_seed(seed)
        a = flipped[0]["frames"]
        torch.manual_seed(seed)
        b = plain[0]["frames"]
        if torch.equal(a, b.flip(-1)):
            seen.add("flipped")
        elif torch.equal(a, b):
            seen.add("kept")
        else:
            raise AssertionError(f"seed {seed}: neither the crop nor its mirror")
    assert seen == {"flipped", "kept"}


def _orientation_deg(grey: np.ndarray) -> float:
    """Dominant gradient direction of a (H, W) image, degrees from the x axis."""
    gx = cv2.Sobel(grey, cv2.CV_64F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_64F, 0, 1)
    return float(np.degrees(0.5 * np.arctan2(2 * (gx * gy).sum(), (gx * gx - gy * gy).sum())))


def test_rotation_turns_the_content(tmp_path: Path) -> None:
    """Vertical bars (gradient along x) tilt by up to the configured angle."""
    img = np.full((160, 160, 3), 60, np.uint8)
    img[:, 4::16] = 250
    img[:, 5::16] = 250
    clip = tmp_path / "bars"
    clip.mkdir()
    for t in range(2):
        cv2.imwrite(str(clip / f"{t}.png"), img)
    plain = ClipDataset([clip], crop=64)
    assert abs(_orientation_deg(plain[0]["frames"][0].mean(0).numpy())) < 1.0
    ds = ClipDataset([clip], crop=64, rotate_deg=30.0)
    tilts = []
    for seed in range(8):
        torch.manual_seed(seed)
        tilts.append(abs(_orientation_deg(ds[0]["frames"][0].mean(0).numpy())))
    assert max(tilts) > 10.0, tilts
    assert max(tilts) < 31.0, tilts


def test_rotation_range_is_checked(tiny_clips: Path) -> None:
    with pytest.raises(RTDerainError, match="augment_rotate_deg"):
        ClipDataset([tiny_clips], crop=32, rotate_deg=120.0)


@pytest.mark.parametrize("limit", [0.0, 1e-4])
def test_frame_cache_limit_gives_the_same_samples(tiny_clips: Path, limit: float) -> None:
    """Past ``cache_frames_max_gb`` a sample's two frames are read from disk: the same
    samples (and random stream) as with everything cached; the pseudo ground truth stays
    cached."""
    full = ClipDataset([tiny_clips], crop=32, pseudo_gt="adaptive", flip=True, rotate_deg=10)
    capped = ClipDataset([tiny_clips], crop=32, pseudo_gt="adaptive", flip=True,
                         rotate_deg=10, cache_frames_max_gb=limit)
    for seed in range(9):
        torch.manual_seed(seed)
        a = full[seed % 3]
        torch.manual_seed(seed)
        b = capped[seed % 3]
        assert torch.equal(a["frames"], b["frames"]) and torch.equal(a["pseudo"], b["pseudo"])
    assert len(full._frames) == 3 and len(capped._pseudo) == 3
    assert len(capped._frames) == (0 if limit == 0 else 1)  # a 4x64x80 clip: 61 kB of 100
