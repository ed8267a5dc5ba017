"""Streak orientation (rtderain.media.orient): the angle estimate, and the turned engine."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import rtderain
from rtderain.errors import ConfigError
from rtderain.evaluation.metrics import psnr
from rtderain.jobs import RunSettings
from rtderain.media import orient
from rtderain.media.batching import derain_frames
from rtderain.media.orient import OrientedEngine, estimate_streaks, oriented, parse_orient
from tests.mediagen import run_cli


def background(h: int = 360, w: int = 480, seed: int = 0) -> np.ndarray:
    """Smooth textured colour background (no thin structure of its own)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 200, (h // 24 + 2, w // 24 + 2, 3)).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def rain(clean: np.ndarray, angle: float, n: int = 500, seed: int = 1) -> np.ndarray:
    """Thin bright streaks leaning ``angle`` degrees (positive: like /), screen-blended."""
    rng = np.random.default_rng(seed)
    h, w = clean.shape[:2]
    layer = np.zeros((h, w), np.float32)
    a = math.radians(angle)
    for _ in range(n):
        x, y, length = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(15, 40)
        end = (int(x + length * math.sin(a)), int(y - length * math.cos(a)))
        cv2.line(layer, (int(x), int(y)), end, float(rng.uniform(0.5, 0.9)), 1, cv2.LINE_AA)
    out = 255 - (255 - clean.astype(np.float32)) * (1 - layer[..., None])
    return out.clip(0, 255).astype(np.uint8)


class VerticalStreakRemover:
    """A stand-in network that, like the shipped weights, removes only near-vertical thin
    bright streaks: the part of the horizontal top-hat that holds a 15-px vertical line."""

    name, device, multiple, description, selection = "fake", torch.device("cpu"), 4, "fake", ""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        self.calls.append(frames.shape[1:3])
        across = cv2.getStructuringElement(cv2.MORPH_RECT, (7, 1))
        along = cv2.getStructuringElement(cv2.MORPH_RECT, (1, 15))
        out = np.empty_like(frames)
        for i, f in enumerate(frames):
            streaks = cv2.morphologyEx(cv2.morphologyEx(f, cv2.MORPH_TOPHAT, across),
                                       cv2.MORPH_OPEN, along)
            out[i] = f - streaks
        return out

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        u8 = ((x.permute(0, 2, 3, 1).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        out = self.infer_frames(u8).astype(np.float32) / 127.5 - 1
        return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("angle", [-32.0, -20.0, 18.0, 30.0])
def test_the_streak_angle_is_found_and_the_frame_turned(angle: float) -> None:
    est = estimate_streaks(rain(background(), angle))
    assert abs(est.angle - angle) < 3.0, est
    assert est.turn is not None and abs(est.turn - angle) < 3.0


@pytest.mark.parametrize("angle", [0.0, 8.0])
def test_near_vertical_rain_is_not_turned(angle: float) -> None:
    est = estimate_streaks(rain(background(), angle))
    assert abs(est.angle - angle) < 3.0
    assert est.turn is None


def test_no_rain_or_one_scene_edge_is_not_turned() -> None:
    clean = background()
    assert estimate_streaks(clean).turn is None
    assert estimate_streaks(np.zeros_like(clean)).turn is None  # flat: no NaN, no turn
    edge = clean.copy()  # a bright 30-degree line 200 px long: a few tiles, not the frame
    cv2.line(edge, (100, 300), (200, 127), (255, 255, 255), 2)
    est = estimate_streaks(edge)
    assert est.agreement < orient.MIN_AGREEMENT and est.turn is None


def test_turning_removes_diagonal_rain_the_network_misses() -> None:
    clean = background()
    rainy = rain(clean, 30.0)
    fake = VerticalStreakRemover()
    plain = derain_frames(fake, rainy[None])[0]
    turned = derain_frames(oriented(fake, lambda *_: fake, "auto"), rainy[None])[0]
    assert turned.shape == rainy.shape and turned.dtype == np.uint8
    before = psnr(rainy, clean)
    gain_plain, gain_turned = psnr(plain, clean) - before, psnr(turned, clean) - before
    assert gain_plain < 0.5 and gain_turned > gain_plain + 1.5, (gain_plain, gain_turned)


def test_vertical_rain_goes_through_the_plain_engine_untouched() -> None:
    rainy = rain(background(), 0.0)
    fake = VerticalStreakRemover()
    built: list[tuple[int, int]] = []
    engine = OrientedEngine(fake, lambda h, w: built.append((h, w)) or fake)
    out = derain_frames(engine, rainy[None])[0]
    assert np.array_equal(out, derain_frames(fake, rainy[None])[0])
    assert built == []  # the canvas engine is built only for a frame that turns


def test_the_canvas_holds_every_turn_and_one_engine_serves_all_angles() -> None:
    fake = VerticalStreakRemover()
    built: list[tuple[int, int]] = []
    engine = OrientedEngine(fake, lambda h, w: built.append((h, w)) or fake)
    for angle in (-35.0, 20.0, 30.0):
        derain_frames(engine, rain(background(), angle, seed=int(abs(angle)))[None])
    h, w = orient.canvas_size(360, 480, fake.multiple)
    assert built == [(h, w)] and h % 4 == 0 and w % 4 == 0
    a = math.radians(orient.MAX_ANGLE)
    assert w >= 480 * math.cos(a) + 360 * math.sin(a) and h >= 480 * math.sin(a) + 360 * math.cos(a)


def test_the_float_path_matches_the_uint8_path() -> None:
    rainy = rain(background(), -25.0)
    fake = VerticalStreakRemover()
    engine = oriented(fake, lambda *_: fake, -25.0)
    u8 = derain_frames(engine, rainy[None])[0]
    deep = derain_frames(engine, (rainy.astype(np.uint16) * 257)[None])[0]  # float path
    assert deep.dtype == np.uint16
    diff = np.abs((deep / 257.0) - u8.astype(np.float64))
    assert diff.mean() < 1.0 and psnr((deep // 257).astype(np.uint8), u8) > 40


def test_orient_settings_parse_and_bad_values_are_one_line(tmp_path: Path) -> None:
    assert parse_orient(None) == "auto" and parse_orient(" OFF ") == "off"
    assert parse_orient("-25") == -25.0 and RunSettings(orient="12.5").orient == 12.5
    for bad in ("sideways", "90", "nan"):
        with pytest.raises(ConfigError):
            parse_orient(bad)
    r = run_cli("run", str(tmp_path / "x.png"), "-o", str(tmp_path / "y.png"),
                "--orient", "sideways")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "orient must be auto, off or an angle" in r.stderr.strip().splitlines()[-1]


def test_the_derainer_turns_only_with_orient_on() -> None:
    assert not isinstance(rtderain.Derainer("mgid-rt", engine="torch", orient="off")
                          .engine_for(64, 64), OrientedEngine)
    engine = rtderain.Derainer("mgid-rt", engine="torch", orient=20).engine_for(64, 64)
    assert isinstance(engine, OrientedEngine) and engine.turn_for(np.zeros((64, 64, 3))) == 20.0


def test_a_live_source_re_estimates_every_n_frames_only() -> None:
    fake = VerticalStreakRemover()
    engine = OrientedEngine(fake, lambda *_: fake, "auto", every=3)
    seen = []
    for i in range(7):
        angle = 30.0 if i < 3 else 0.0  # the rain turns vertical after three frames
        derain_frames(engine, rain(background(), angle, seed=i)[None])
        seen.append(engine.last.turn is not None)
    assert seen == [True, True, True, False, False, False, False]
    assert fake.calls[0] != fake.calls[-1]  # turned onto the canvas, then plain


class _Queued(VerticalStreakRemover):
    """The stand-in network behind a queue, as the CUDA wrapper is (``submit_frames``)."""

    def __init__(self) -> None:
        super().__init__()
        self.queued = 0

    def submit_frames(self, frames):
        from rtderain.media.tensors import pad_frames

        self.queued += 1
        batch, (h, w) = pad_frames(frames, self.multiple)
        done = self.infer_frames(batch)[:, :h, :w]
        return type("Done", (), {"result": lambda _self: done})()


def test_an_engine_that_queues_keeps_its_queue_for_frames_not_turned() -> None:
    fake = _Queued()
    engine = oriented(fake, None, "auto")
    vertical, diagonal = rain(background(), 0.0), rain(background(), 30.0)
    out = derain_frames(engine, vertical[None])[0]
    assert fake.queued == 1  # not turned: through the queue
    assert np.array_equal(out, derain_frames(VerticalStreakRemover(), vertical[None])[0])
    turned = derain_frames(engine, diagonal[None])[0]
    assert fake.queued == 1  # turned: at once, on the canvas
    plain = OrientedEngine(VerticalStreakRemover(), None, "auto")
    assert np.array_equal(turned, derain_frames(plain, diagonal[None])[0])
