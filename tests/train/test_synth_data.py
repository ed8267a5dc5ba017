"""rtderain synth (determinism, clean frames, rain only brightens) and the clip dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rtderain.errors import RTDerainError
from rtderain.synth.cli import synth
from rtderain.synth.render import PRESETS, draw_style, render_clip
from rtderain.train.data import ClipDataset, index_clips


def test_render_is_deterministic_and_changes_rain_per_frame() -> None:
    clean = np.full((48, 64, 3), 0.3, np.float32)
    ranges = PRESETS["light"]
    out = []
    for _ in range(2):
        rng = np.random.default_rng(7)
        out.append(render_clip(clean, 3, draw_style(ranges, rng), rng)[0])
    for a, b in zip(*out, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(out[0][0], out[0][1])  # independent rain per frame


def _rain_layers(preset: str, side: int, frames: int, **style: object) -> list[np.ndarray]:
    """Frame 0's rain layer (rainy - background, (side, side, 3)) for seeds 0-3 over a flat
    grey background: ``preset``'s drawn style, no JPEG, noise or gain, then ``style``."""
    clean = np.full((side, side, 3), 0.2, np.float32)
    layers = []
    for seed in range(4):
        rng = np.random.default_rng(seed)
        drawn = {**draw_style(PRESETS[preset], rng), "jpeg": 0, "noise": 0.0, "gain": 0.0,
                 **style}
        rainy, backs = render_clip(clean, frames, drawn, rng)
        layers.append(rainy[0] - backs[0])
    return layers


def test_heavy_rain_brightens_more_than_light() -> None:
    means = {p: np.mean([float(np.mean(x)) for x in _rain_layers(p, 96, 2)])
             for p in ("light", "heavy")}
    assert 0 < means["light"] < means["heavy"]


def test_long_preset_draws_longer_streaks() -> None:
    """``long`` (video-shutter streaks) correlates along the fall direction (made vertical
    here) over a longer distance than ``light``."""
    corr = {}
    for preset in ("light", "long"):
        vals = []
        for layer in _rain_layers(preset, 192, 1, jitter=0.0, drops=[0, 0], angle=0.0,
                                  angle_jitter=0.0):
            grey = layer.mean(axis=2)
            vals.append(float(np.corrcoef(grey[:-30].ravel(), grey[30:].ravel())[0, 1]))
        corr[preset] = np.mean(vals)
    assert corr["long"] > corr["light"] + 0.1, corr


def test_synth_cli_writes_clips_and_clean_frames(tmp_path: Path, tiny_clips: Path) -> None:
    src = next(tiny_clips.glob("clip_*/clean/00000.png"))
    args = [str(src), "-o", str(tmp_path / "a"), "--frames", "3", "--seed", "5", "--write-clean"]
    res = CliRunner().invoke(synth, args)
    assert res.exit_code == 0, res.output
    clip = tmp_path / "a" / "clip_00000"
    assert len(list((clip / "rain").glob("*.png"))) == 3
    assert len(list((clip / "clean").glob("*.png"))) == 3
    res = CliRunner().invoke(synth, [*args[:2], str(tmp_path / "b"), *args[3:]])
    assert res.exit_code == 0
    for name in ("00000.png", "00002.png"):
        a = (clip / "rain" / name).read_bytes()
        assert a == (tmp_path / "b" / "clip_00000" / "rain" / name).read_bytes()


def test_clip_dataset_pairs_share_the_crop(tiny_clips: Path) -> None:
    ds = ClipDataset([tiny_clips], crop=32, frames=2, pseudo_gt="median")
    assert len(ds) == 3
    torch.manual_seed(0)
    item = ds[1]
    assert item["frames"].shape == (2, 3, 32, 32) and item["pseudo"].shape == (3, 32, 32)
    assert item["frames"].min() >= -1 and item["frames"].max() <= 1
    # Same crop: the per-pixel median of the two frames' background is close to the pseudo-GT
    # everywhere except where rain fell, i.e. the crops are spatially aligned.
    diff = (item["frames"].min(dim=0).values - item["pseudo"]).abs()
    assert float(diff.median()) < 0.05


def test_index_rejects_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(RTDerainError, match="no clips"):
        index_clips([tmp_path])


def test_root_weights_repeat_a_root_in_the_index(tiny_clips: Path) -> None:
    ds = ClipDataset([tiny_clips, tiny_clips], crop=32, root_weights=(1, 2))
    assert len(ds) == 9
    assert ds.clip_frames(0) is ds.clip_frames(3)  # one cache entry per clip, not per listing
    with pytest.raises(RTDerainError, match="root_weights"):
        ClipDataset([tiny_clips], crop=32, root_weights=(1, 2))
