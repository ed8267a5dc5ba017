"""rtderain synth (determinism, clean frames, rain only brightens) and the clip dataset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rtderain.cli.synth import synth
from rtderain.errors import RTDerainError
from rtderain.synth.render import PRESETS, draw_style, get_ranges, render_clip
from rtderain.train.data import ClipDataset, adaptive_pseudo, index_clips
from rtderain.train.validate import paired_frames


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


def test_rain_amount_grows_light_heavy_storm() -> None:
    means = {p: np.mean([float(np.mean(x)) for x in _rain_layers(p, 96, 2)])
             for p in ("light", "heavy", "storm")}
    assert 0 < means["light"] < means["heavy"] < means["storm"], means


def test_drizzle_is_fainter_per_streak_and_covers_more_pixels_than_light() -> None:
    """``drizzle`` (NTURain's faint rain): a rained-on pixel brightens less on average than
    under ``light``, and more pixels are rained on."""
    stats = {}
    for preset in ("light", "drizzle"):
        layers = [x.mean(axis=2) for x in _rain_layers(preset, 128, 1, veil_max=0.0)]
        wet = [x > 2 / 255 for x in layers]
        stats[preset] = (np.mean([x[w].mean() for x, w in zip(layers, wet, strict=True)]),
                         np.mean([w.mean() for w in wet]))
    assert stats["drizzle"][0] < stats["light"][0], stats
    assert stats["drizzle"][1] > stats["light"][1], stats


@pytest.mark.parametrize(("short", "long"), [("light", "long"), ("heavy", "storm")])
def test_long_streak_presets_draw_longer_streaks(short: str, long: str) -> None:
    """``long`` (video-shutter streaks) and ``storm`` (Rain100H-like) correlate along the
    fall direction (made vertical here) over a longer distance than ``light``/``heavy``."""
    corr = {}
    for preset in (short, long):
        vals = []
        for layer in _rain_layers(preset, 192, 1, jitter=0.0, drops=[0, 0], angle=0.0,
                                  angle_jitter=0.0, veil_max=0.0):
            grey = layer.mean(axis=2)
            vals.append(float(np.corrcoef(grey[:-30].ravel(), grey[30:].ravel())[0, 1]))
        corr[preset] = np.mean(vals)
    assert corr[long] > corr[short] + 0.1, corr


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



def test_synth_checks_every_source_before_writing_a_clip(
    tmp_path: Path, tiny_clips: Path
) -> None:
    """A non-image among the sources (e.g. a glob catching SOURCE.txt) is a user error
    (``rtderain`` prints it as one line) raised before anything is rendered: no clip,
    complete or partial, is left behind."""
    good = next(tiny_clips.glob("clip_*/clean/00000.png"))
    bad = tmp_path / "SOURCE.txt"
    bad.write_text("not an image")
    out = tmp_path / "out"
    res = CliRunner().invoke(synth, [str(good), str(good), str(bad), "-o", str(out)])
    assert isinstance(res.exception, RTDerainError)
    assert "not an image" in str(res.exception) and str(bad) in str(res.exception)
    assert not out.exists() or not any(out.iterdir())


def test_an_unfinished_clip_is_not_training_data(tmp_path: Path, tiny_clips: Path) -> None:
    """``.clip_NNNNN.partial`` (``rtderain synth`` stopped mid-clip) is skipped by the
    clip index and by the paired validation frames."""
    import shutil

    clips = sorted(tiny_clips.glob("clip_*"))
    root = tmp_path / "set"
    shutil.copytree(clips[0], root / clips[0].name)
    before = (len(index_clips([root])), len(paired_frames(root)))
    shutil.copytree(clips[0], root / f".{clips[0].name}.partial")
    assert (len(index_clips([root])), len(paired_frames(root))) == before


def test_synth_still_keeps_the_background_fixed(tmp_path: Path, tiny_clips: Path) -> None:
    """``--still``: every clean frame is the same image; without it the light preset's
    jitter and gain move the background from frame to frame (same seed, same rain style)."""
    src = next(tiny_clips.glob("clip_*/clean/00000.png"))
    backs, styles = {}, {}
    for flag in ("", "--still"):
        out = tmp_path / (flag or "moving")
        args = [str(src), "-o", str(out), "--frames", "4", "--seed", "2", "--preset", "light",
                "--write-clean", *([flag] if flag else [])]
        res = CliRunner().invoke(synth, args)
        assert res.exit_code == 0, res.output
        clip = out / "clip_00000"
        backs[flag] = [(clip / "clean" / f"{t:05d}.png").read_bytes() for t in range(4)]
        styles[flag] = json.loads((clip / "style.json").read_text())
    assert len(set(backs["--still"])) == 1
    assert len(set(backs[""])) > 1
    assert styles["--still"]["still"] and not styles[""]["still"]
    assert styles["--still"]["style"]["jitter"] == styles["--still"]["style"]["gain"] == 0
    same = ("density", "length", "angle", "opacity")
    assert all(styles[""]["style"][k] == styles["--still"]["style"][k] for k in same)

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


def _clip_over(background: np.ndarray, rain_share: float, frames: int = 9) -> np.ndarray:
    """uint8 (T, H, W, 3): ``background`` + noise of sigma 1.5, and in each frame a random
    ``rain_share`` of the pixels lifted by 120 levels (seeded)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(frames):
        f = background + rng.normal(0, 1.5, background.shape)
        f[rng.random(background.shape[:2]) < rain_share] += 120
        out.append(np.clip(f + 0.5, 0, 255).astype(np.uint8))
    return np.stack(out)


def test_adaptive_pseudo_gt_is_the_median_for_light_rain_and_the_minimum_for_dense() -> None:
    back = np.tile(np.linspace(40, 160, 48, dtype=np.float32)[None, :, None], (48, 1, 3))
    light = _clip_over(back, 0.05)
    np.testing.assert_allclose(adaptive_pseudo(light), np.median(light, axis=0), atol=1e-4)
    dense = _clip_over(back, 0.6)  # rain on most frames of a pixel: the median is rain
    p = adaptive_pseudo(dense)
    np.testing.assert_array_equal(p, dense.min(axis=0).astype(np.float32))
    assert float(np.abs(p - back).mean()) < 5 < float(np.abs(np.median(dense, 0) - back).mean())


def test_adaptive_pseudo_gt_blends_between_its_levels() -> None:
    back = np.full((32, 32, 3), 100, np.float32)
    frames = np.stack([back, back, back + 12]).astype(np.uint8)  # median 100, min 100
    np.testing.assert_array_equal(adaptive_pseudo(frames), back)
    frames = np.stack([back, back + 12, back + 12]).astype(np.uint8)  # gap 12: halfway
    np.testing.assert_allclose(adaptive_pseudo(frames, (8.0, 16.0)), back + 6)


def test_index_rejects_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(RTDerainError, match="no clips"):
        index_clips([tmp_path])


def test_root_weights_repeat_a_root_in_the_index(tiny_clips: Path) -> None:
    ds = ClipDataset([tiny_clips, tiny_clips], crop=32, root_weights=(1, 2))
    assert len(ds) == 9
    assert ds.clip_frames(0) is ds.clip_frames(3)  # one cache entry per clip, not per listing
    with pytest.raises(RTDerainError, match="root_weights"):
        ClipDataset([tiny_clips], crop=32, root_weights=(1, 2))


# sha256 (first 16 hex) of 20 drawn styles per preset plus the generator's next draws,
# from the renderer before the `diagonal` preset: the existing presets must not change
# (rtderain synth is documented to be deterministic).
STYLE_DIGESTS = {
    "light": "730e590e18281b11", "light-still": "1932940e6af77801",
    "heavy": "59a41d42d779b02b", "heavy-still": "23a81d25a0a35d0d",
    "long": "b2a7b38dce9c4795", "long-still": "54fddcaaad2d567c",
    "drizzle": "dc831310684e7e39", "drizzle-still": "8f4c57326ff4a9cc",
    "storm": "22dbf9eabbd25976", "storm-still": "22dbf9eabbd25976",
    "mixed": "066875a24dd644ec", "mixed-still": "60859968935a4896",
}


@pytest.mark.parametrize("key", sorted(STYLE_DIGESTS))
def test_existing_presets_draw_the_same_styles_as_before(key: str) -> None:
    import hashlib

    preset, still = key.removesuffix("-still"), key.endswith("-still")
    digest = hashlib.sha256()
    for seed in range(20):
        rng = np.random.default_rng([seed, seed + 3])
        digest.update(json.dumps(draw_style(get_ranges(preset, rng, still=still), rng)).encode())
        digest.update(rng.random(4).tobytes())
    assert digest.hexdigest()[:16] == STYLE_DIGESTS[key]


def _streak_angle_deg(grey: np.ndarray) -> float:
    """Dominant streak direction of a (H, W) rain layer, degrees from vertical (the
    gradient's direction from the x axis)."""
    import cv2

    gx = cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 1, 0)
    gy = cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 0, 1)
    return float(np.degrees(0.5 * np.arctan2(2 * (gx * gy).sum(), (gx * gx - gy * gy).sum())))


def test_diagonal_preset_draws_steep_angles_to_both_sides_and_wide_screened_streaks() -> None:
    styles = [draw_style(PRESETS["diagonal"], np.random.default_rng(s)) for s in range(40)]
    angles = [st["angle"] for st in styles]
    assert all(20 <= abs(a) <= 35 for a in angles)
    assert min(angles) < 0 < max(angles)
    assert all(0.45 <= st["width"] <= 1.3 for st in styles)
    assert np.mean([st["screen"] for st in styles]) > 0.6
    for layer in _rain_layers("diagonal", 192, 1, veil_max=0.0, drops=[0, 0]):
        assert 15 <= abs(_streak_angle_deg(layer.mean(axis=2))) <= 40
    for layer in _rain_layers("light", 192, 1, veil_max=0.0, drops=[0, 0]):
        assert abs(_streak_angle_deg(layer.mean(axis=2))) < 20
