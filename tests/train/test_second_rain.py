"""The second rain model (rtderain.synth.second): held-out clips in the synth layout."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtderain.errors import RTDerainError
from rtderain.synth.second import DropRanges, draw_drop_style, main, render_second_clip
from rtderain.train.data import index_clips
from rtderain.train.validate import paired_frames


def _grey(side: int = 160) -> np.ndarray:
    return np.full((side, side, 3), 0.3, np.float32)


def _streak_angle_deg(grey: np.ndarray) -> float:
    gx = cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 1, 0)
    gy = cv2.Sobel(grey.astype(np.float64), cv2.CV_64F, 0, 1)
    return float(np.degrees(0.5 * np.arctan2(2 * (gx * gy).sum(), (gx * gx - gy * gy).sum())))


def test_clip_is_deterministic_and_the_rain_changes_per_frame() -> None:
    runs = []
    for _ in range(2):
        rng = np.random.default_rng(3)
        runs.append(render_second_clip(_grey(), 3, draw_drop_style(DropRanges(), "vertical",
                                                                   rng), rng))
    for a, b in zip(*runs, strict=True):
        assert np.array_equal(a, b)
    assert not np.array_equal(runs[0][0], runs[0][1])
    assert float(np.mean(runs[0][0])) > 0.3  # drops brighten a mid-grey background


@pytest.mark.parametrize(("angles", "lo", "hi"), [("vertical", 0, 14), ("diagonal", 17, 38)])
def test_streak_direction_follows_the_angle_mode(angles: str, lo: float, hi: float) -> None:
    signs = set()
    for seed in range(6):
        rng = np.random.default_rng(seed)
        style = {**draw_drop_style(DropRanges(), angles, rng), "noise": 0.0, "haze_max": 0.0}
        rain = render_second_clip(_grey(192), 1, style, rng)[0] - 0.3
        ang = _streak_angle_deg(rain.mean(axis=2))
        assert lo <= abs(ang) <= hi, (seed, ang, style["angle"])
        signs.add(np.sign(style["angle"]))
    if angles == "diagonal":
        assert signs == {-1.0, 1.0}


def test_unknown_angle_mode_is_an_error() -> None:
    with pytest.raises(RTDerainError, match="angles"):
        draw_drop_style(DropRanges(), "sideways", np.random.default_rng(0))


def test_command_writes_the_synth_layout_with_a_constant_background(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    src = tmp_path / "src.png"
    cv2.imwrite(str(src), cv2.resize(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8),
                                     (96, 72), interpolation=cv2.INTER_CUBIC))
    out = tmp_path / "out"
    main([str(src), "-o", str(out), "--frames", "3", "--angles", "diagonal",
          "--clips-per-source", "2", "--start-index", "4"])
    clips = sorted(p.name for p in out.iterdir())
    assert clips == ["clip_00004", "clip_00005"]
    clip = out / "clip_00004"
    meta = json.loads((clip / "style.json").read_text())
    assert meta["renderer"] == "second" and meta["style"]["angles"] == "diagonal"
    cleans = [cv2.imread(str(p)) for p in sorted((clip / "clean").glob("*.png"))]
    rains = [cv2.imread(str(p)) for p in sorted((clip / "rain").glob("*.png"))]
    assert len(cleans) == len(rains) == 3
    assert all(np.array_equal(c, cleans[0]) for c in cleans)
    assert np.array_equal(cleans[0], cv2.imread(str(src)))  # 96x72 is not resized
    assert not np.array_equal(rains[0], rains[1])
    assert len(paired_frames(out)) == 6
    assert len(index_clips([out])) == 2
    main([str(src), "-o", str(tmp_path / "again"), "--frames", "3", "--angles", "diagonal",
          "--clips-per-source", "2", "--start-index", "4"])
    again = tmp_path / "again" / "clip_00004" / "rain" / "00002.png"
    assert again.read_bytes() == (clip / "rain" / "00002.png").read_bytes()
