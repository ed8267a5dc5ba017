"""Temporal stage: fusion quality on synthetic clips, streaming contract, bounded memory."""

from __future__ import annotations

import numpy as np
import pytest

from rtderain.errors import ConfigError, RTDerainError
from rtderain.temporal import TemporalSettings, TemporalStage
from rtderain.temporal.fuse import trusted_median

H, W = 96, 128


def _background(rng: np.random.Generator, h: int = H, w: int = W) -> np.ndarray:
    """Smooth textured RGB background, float64 in [40, 180]."""
    import cv2

    noise = rng.uniform(0, 1, (h // 8 + 1, w // 8 + 1, 3))
    smooth = cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return 40 + 140 * np.clip(smooth, 0, 1)


def _rain(rng: np.random.Generator, h: int = H, w: int = W, count: int = 60) -> np.ndarray:
    """Sparse vertical streaks: (H, W, 1) float64 brightness added by rain."""
    layer = np.zeros((h, w, 1))
    for _ in range(count):
        x, y0 = int(rng.integers(0, w)), int(rng.integers(0, h - 8))
        layer[y0 : y0 + int(rng.integers(4, 9)), x] = rng.uniform(40, 80)
    return layer


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _clip(rng, backs, keep=0.5):
    """Rainy frames and a fake per-frame de-rainer that leaves ``keep`` of the rain."""
    rainy, derained = [], []
    for back in backs:
        rain = _rain(rng, *back.shape[:2])
        rainy.append(_u8(back + rain))
        derained.append(_u8(back + keep * rain))
    return rainy, derained


def _run(stage: TemporalStage, rainy, derained, payloads=None):
    payloads = list(range(len(rainy))) if payloads is None else payloads
    out = []
    for r, d, p in zip(rainy, derained, payloads, strict=True):
        out += stage.push(r, d, p)
    out += stage.flush()
    return out


def _mse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_static_clip_removes_more_rain_than_per_frame(mode: str) -> None:
    """Each mode's defaults (causal: the still rule alone, over 4 past frames); frames
    large enough for the still rule's sub-pixel stillness test (at 96x128 its phase
    correlation runs on 48x64 and reads up to 0.26 px on a still camera)."""
    rng = np.random.default_rng(0)
    back = _background(rng, 2 * H, 2 * W)
    rainy, derained = [], []
    for _ in range(12):
        rain = _rain(rng, 2 * H, 2 * W, count=240)  # the same density as _clip's
        rainy.append(_u8(back + rain))
        derained.append(_u8(back + 0.5 * rain))
    out = _run(TemporalStage(mode), rainy, derained)
    clean = _u8(back)
    per_frame = np.mean([_mse(d, clean) for d in derained])
    fused = np.mean([_mse(f, clean) for f, _ in out])
    assert fused < per_frame / 2, (fused, per_frame)


def test_uint16_frames_fuse_like_uint8() -> None:
    rng = np.random.default_rng(1)
    back = _background(rng)
    rainy, derained = _clip(rng, [back] * 8)
    up = [
        (r.astype(np.uint16) * 257, d.astype(np.uint16) * 257)
        for r, d in zip(rainy, derained, strict=True)
    ]
    out16 = _run(TemporalStage("window"), *zip(*up, strict=True))
    out8 = _run(TemporalStage("window"), rainy, derained)
    assert all(f.dtype == np.uint16 for f, _ in out16)
    clean16 = _u8(back).astype(np.uint16) * 257
    per_frame = np.mean([_mse(d, clean16) for _, d in up])
    fused = np.mean([_mse(f, clean16) for f, _ in out16])
    assert fused < per_frame / 2
    # Nearly the same result on both scales (flows differ by rounding only).
    diff = [np.abs(f16 / 257.0 - f8).mean() for (f16, _), (f8, _) in zip(out16, out8, strict=True)]
    assert max(diff) <= 0.5


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_moving_object_does_not_ghost(mode: str) -> None:
    rng = np.random.default_rng(2)
    back = _background(rng)
    backs, boxes = [], []
    for t in range(12):
        frame = back.copy()
        x = 10 + 6 * t  # a dark square moving 6 px per frame over a static scene
        frame[30:62, x : x + 24] = 15.0
        backs.append(frame)
        boxes.append(x)
    rainy, derained = _clip(rng, backs)
    out = _run(TemporalStage(mode, radius=2), rainy, derained)
    for t, ((fused, _), d, b, x) in enumerate(zip(out, derained, backs, boxes, strict=True)):
        band = (slice(20, 72), slice(max(0, x - 14), x + 38))  # the object and its trail
        clean = _u8(b)
        assert _mse(fused[band], clean[band]) <= 1.05 * _mse(d[band], clean[band]) + 1.0, t


@pytest.mark.parametrize("mode, radius", [("window", 2), ("causal", None)])
def test_scene_cut_resets_window(mode: str, radius: int | None, monkeypatch) -> None:
    """Causal defaults have no flow rule: the cut test's one flow pair per frame
    (``Aligner.misaligned``) finds the cut, and no other alignment is computed."""
    from rtderain.temporal.align import Aligner

    if mode == "causal":
        def no_pairs(*args):
            raise AssertionError("causal defaults align no neighbour pairs")

        monkeypatch.setattr(Aligner, "align_pair", no_pairs)
    rng = np.random.default_rng(3)
    a, b = _background(rng), 255 - _background(rng)
    rainy_a, der_a = _clip(rng, [a] * 7)
    rainy_b, der_b = _clip(rng, [b] * 7)
    stage = TemporalStage(mode, radius=radius)
    out = _run(stage, rainy_a + rainy_b, der_a + der_b)
    assert stage.resets >= 1
    # After the cut, exactly what a fresh stage makes of the second scene alone: nothing
    # from before the cut is used; before it, what the first scene alone gives.
    only_a = _run(TemporalStage(mode, radius=radius), rainy_a, der_a)
    only_b = _run(TemporalStage(mode, radius=radius), rainy_b, der_b)
    assert [p for _, p in out] == list(range(14))
    for (f, _), (g, _) in zip(out, only_a + only_b, strict=True):
        np.testing.assert_array_equal(f, g)


def test_frame_count_and_payload_order_with_resets() -> None:
    rng = np.random.default_rng(4)
    frames = []
    for size, n in (((48, 64), 5), ((40, 56), 3), ((48, 64), 1), ((48, 64), 6)):
        back = _background(rng, *size)
        frames += list(zip(*_clip(rng, [back] * n), strict=True))
    payloads = [{"pts": 1000 + 33 * i} for i in range(len(frames))]
    for mode in ("window", "causal", "off"):
        out = _run(TemporalStage(mode, radius=2), *zip(*frames, strict=True), payloads=payloads)
        assert [p for _, p in out] == payloads
        assert [f.shape for f, _ in out] == [d.shape for _, d in frames]


def test_causal_returns_each_frame_before_the_next_push() -> None:
    rng = np.random.default_rng(5)
    rainy, derained = _clip(rng, [_background(rng)] * 10)
    stage = TemporalStage("causal", radius=2)
    for i, (r, d) in enumerate(zip(rainy, derained, strict=True)):
        out = stage.push(r, d, i)
        assert [p for _, p in out] == [i]
        assert stage.buffered <= 3
    assert stage.flush() == []


def test_window_look_ahead_is_radius() -> None:
    rng = np.random.default_rng(6)
    rainy, derained = _clip(rng, [_background(rng)] * 8)
    stage = TemporalStage("window", radius=3)
    for i, (r, d) in enumerate(zip(rainy, derained, strict=True)):
        out = stage.push(r, d, i)
        assert [p for _, p in out] == ([] if i < 3 else [i - 3])
    assert [p for _, p in stage.flush()] == [5, 6, 7]


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_memory_bounded_on_long_clip(mode: str) -> None:
    rng = np.random.default_rng(7)
    back = _background(rng, 32, 40)
    stage = TemporalStage(mode, radius=2)
    count = 0
    for i in range(500):
        rain = _rain(rng, 32, 40, count=5)
        count += len(stage.push(_u8(back + rain), _u8(back + rain / 2), i))
        assert stage.buffered <= stage.bound
        assert len(stage._pairs) <= 2 * stage.settings.radius * stage.bound
    count += len(stage.flush())
    assert count == 500
    assert stage.max_buffered == stage.bound


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_window_shorter_than_window(n: int) -> None:
    rng = np.random.default_rng(8)
    back = _background(rng)
    rainy, derained = _clip(rng, [back] * n)
    stage = TemporalStage("window", radius=2)
    out = []
    for i, (r, d) in enumerate(zip(rainy, derained, strict=True)):
        out += stage.push(r, d, i)
    assert len(out) == max(0, n - 2)  # a frame waits for its 2 frames of look-ahead
    out += stage.flush()
    assert [p for _, p in out] == list(range(n))
    if n <= 2:  # fewer than min_neighbours (2) neighbours: the per-frame result
        for (f, _), d in zip(out, derained, strict=True):
            np.testing.assert_array_equal(f, d)
    for (f, _), r in zip(out, rainy, strict=True):
        assert np.all(f <= r)  # never brighter than the rainy input


def test_off_is_passthrough() -> None:
    rng = np.random.default_rng(9)
    rainy, derained = _clip(rng, [_background(rng)] * 3)
    stage = TemporalStage("off")
    for i, (r, d) in enumerate(zip(rainy, derained, strict=True)):
        [(f, p)] = stage.push(r, d, i)
        assert f is d and p == i
    assert stage.flush() == []


def test_bad_input_and_settings() -> None:
    stage = TemporalStage("window")
    good = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(RTDerainError, match="rainy"):
        stage.push(np.zeros((8, 8, 4), np.uint8), good)
    with pytest.raises(RTDerainError, match="float32"):
        stage.push(good, good.astype(np.float32))
    with pytest.raises(RTDerainError, match="differ"):
        stage.push(good, np.zeros((8, 9, 3), np.uint8))
    with pytest.raises(ConfigError, match="radius"):
        TemporalStage("window", radius=0)
    with pytest.raises(ConfigError, match="mode"):
        TemporalSettings(mode="future")


def test_trusted_median_ignores_untrusted() -> None:
    rng = np.random.default_rng(10)
    values = rng.integers(0, 256, (4, 50, 3)).astype(np.uint8)
    ok = rng.random((4, 50)) < 0.6
    got = trusted_median(values, ok)
    for i in range(50):
        kept = values[ok[:, i], i].astype(np.float64)
        if len(kept) == 0:
            assert np.isnan(got[i]).all()
        else:
            np.testing.assert_allclose(got[i], np.median(kept, axis=0))


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_static_clip_flow_rule_alone_removes_rain(mode: str) -> None:
    """With the still-camera rule off, the flow-based detector alone still helps."""
    rng = np.random.default_rng(5)
    back = _background(rng)
    rainy, derained = _clip(rng, [back] * 12)
    out = _run(TemporalStage(mode, radius=2, flow_radius=2, still_shift=0.0), rainy, derained)
    clean = _u8(back)
    per_frame = np.mean([_mse(d, clean) for d in derained])
    fused = np.mean([_mse(f, clean) for f, _ in out])
    assert fused < per_frame, (fused, per_frame)


def test_still_rule_declines_a_panning_camera() -> None:
    """A camera that pans (a few px per frame) is not taken for still: ``fuse_still`` says
    ``None`` and the flow path runs; the result is no worse than per frame."""
    import cv2

    from rtderain.temporal.still import fuse_still

    rng = np.random.default_rng(6)
    wide = _background(rng, H, W + 40)
    backs = [wide[:, 3 * t : 3 * t + W] for t in range(10)]
    rainy, derained = _clip(rng, backs)
    lumas = [cv2.cvtColor(r, cv2.COLOR_RGB2GRAY) for r in rainy]
    groups = [[(rainy[i], lumas[i]) for i in (2, 3)], [(rainy[i], lumas[i]) for i in (5, 6)]]
    got = fuse_still(derained[4], rainy[4], groups, tol=20, blob=5, guard=9, max_shift=0.2)
    assert got is None
    out = _run(TemporalStage("window", radius=2), rainy, derained)
    for (fused, _), d, b in zip(out, derained, backs, strict=True):
        assert _mse(fused, _u8(b)) <= 1.05 * _mse(d, _u8(b)) + 1.0


def test_causal_still_rule_declines_a_camera_that_starts_to_move() -> None:
    """In causal mode both groups lie in the past: four still frames agree, and only the
    centre check sees that the camera has just moved (2 px); without it the rule fires."""
    import cv2

    from rtderain.temporal.still import fuse_still

    rng = np.random.default_rng(7)
    wide = _background(rng, 2 * H, 2 * W + 8)
    backs = [wide[:, : 2 * W]] * 4 + [wide[:, 2 : 2 * W + 2]]
    rainy, derained = _clip(rng, backs)
    lumas = [cv2.cvtColor(r, cv2.COLOR_RGB2GRAY) for r in rainy]
    groups = [[(rainy[i], lumas[i]) for i in (3, 1)], [(rainy[i], lumas[i]) for i in (2, 0)]]
    args = {"tol": 10.0, "blob": 3, "guard": 15, "max_shift": 0.2}
    assert fuse_still(derained[4], rainy[4], groups, **args) is not None
    assert fuse_still(derained[4], rainy[4], groups, centre_luma=lumas[4], **args) is None
    still = fuse_still(derained[3], rainy[3], [[groups[0][1]], [groups[1][0], groups[1][1]]],
                       centre_luma=lumas[3], **args)
    assert still is not None  # the still centre before the move passes the check


def test_window_checks_the_centre_at_a_segment_start() -> None:
    """Window mode, frame 0: all neighbours lie in the future. The camera moved by 2 px
    between frames 0 and 1 and then stood still: the two groups agree, and only the centre
    check (``still_centre`` ``ends``, the window default) keeps frame 0 from being filled
    with the shifted minimum (a ghost of every edge)."""
    rng = np.random.default_rng(10)
    wide = _background(rng, 2 * H, 2 * W + 8)
    backs = [wide[:, : 2 * W]] + [wide[:, 2 : 2 * W + 2]] * 8
    rainy, derained = _clip(rng, backs)
    clean = _u8(backs[0])
    checked = _run(TemporalStage("window"), rainy, derained)[0][0]
    unchecked = _run(TemporalStage("window", still_centre="off"), rainy, derained)[0][0]
    per_frame = _mse(derained[0], clean)
    assert _mse(checked, clean) <= 1.05 * per_frame + 1.0
    assert _mse(unchecked, clean) > 1.5 * _mse(checked, clean)


def test_still_rule_agreement_takes_rain_left_in_one_group_not_a_moving_object() -> None:
    """``agree``: where the group minima differ because rain fell on the same spot in every
    frame of one group, the de-rained centre matches the darker minimum: the spot is not
    motion, so its guard zone does not keep the rain the network left beside it; where a
    dark object sat in one group's frames, the centre matches neither, and the guard
    keeps the per-frame result (no ghost of the object)."""
    import cv2

    from rtderain.temporal.still import fuse_still

    rng = np.random.default_rng(9)
    back = _u8(_background(rng))
    frames = [back.copy() for _ in range(5)]  # 0, 1: group A; 3, 4: group B; 2: centre
    for i in (0, 1):
        frames[i][20:28, 20:28] = 250  # coincident rain: the same 8x8 spot in both
        frames[i][60:76, 90:106] = 10  # a dark object that has left before the centre
    centre_rainy = frames[2].copy()
    centre_rainy[29:33, 24] = 255  # a streak beside the spot, within its guard zone
    derained = back.copy()
    derained[29:33, 24] = back[29:33, 24] + 6  # ... which the network did not fully remove
    lumas = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    groups = [[(frames[i], lumas[i]) for i in (0, 1)], [(frames[i], lumas[i]) for i in (3, 4)]]
    args = {"tol": 10.0, "blob": 3, "guard": 15, "max_shift": 100.0}
    plain = fuse_still(derained, centre_rainy, groups, **args)
    agreed = fuse_still(derained, centre_rainy, groups, agree=True, **args)
    assert plain is not None and agreed is not None
    np.testing.assert_array_equal(plain[29:33, 24], derained[29:33, 24])  # guarded
    np.testing.assert_array_equal(agreed[29:33, 24], back[29:33, 24])  # rain removed
    np.testing.assert_array_equal(agreed[20:28, 20:28], back[20:28, 20:28])
    # The dark object's old place: the guard holds (the minimum there is the object).
    np.testing.assert_array_equal(agreed[60:76, 90:106], derained[60:76, 90:106])
    assert agreed[60:76, 90:106].min() > 10


def test_global_shift_on_a_large_frame_reads_sub_pixel_shifts() -> None:
    """At 1280x720 the phase correlation runs on a centred 360 px half-res crop: a still
    pair reads under 0.05 px, a 0.5 px shift within 0.15 px of it."""
    import cv2

    from rtderain.temporal.still import global_shift

    rng = np.random.default_rng(8)
    big = _u8(_background(rng, 720, 1280))[..., 1]
    moved = cv2.warpAffine(big, np.float32([[1, 0, 0.5], [0, 1, 0]]), (1280, 720),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    assert global_shift(big, big.copy()) < 0.05
    assert abs(global_shift(big, moved) - 0.5) < 0.15


def test_still_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="still_blob"):
        TemporalSettings("window", still_blob=0)
    with pytest.raises(ConfigError, match="flow_preset"):
        TemporalSettings("window", flow_preset="slow")
    with pytest.raises(ConfigError, match="still_centre"):
        TemporalSettings("window", still_centre="sometimes")
    assert TemporalSettings("causal", radius=3).radius == 3


def test_neighbours_that_disagree_on_the_background_leave_the_pixel_alone() -> None:
    """A bright centre pixel with two trusted neighbours that agree is filled; where the
    neighbours' backgrounds differ by more than fill_spread (a moving edge), it is not."""
    from rtderain.temporal.fuse import Neighbour, fuse

    h, w = 16, 16
    rainy = np.full((h, w, 3), 100, np.uint8)
    rainy[8, 4] = rainy[8, 12] = 160  # two bright pixels in the centre frame
    centre = rainy.copy()  # the network left both
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    coords = np.dstack([xs, ys])
    ok = np.ones((h, w), np.uint8)
    luma = np.full((h, w), 100, np.uint8)
    agree = np.full((h, w, 3), 100, np.uint8)
    differ = agree.copy()
    differ[8, 12] = 150  # one neighbour sees something else at the second pixel
    nbs = [Neighbour(agree, luma, coords, ok, -1), Neighbour(differ, luma, coords, ok, 1)]
    kw = dict(rain_lo=2.0, rain_hi=4.0, grad_weight=0.0, min_neighbours=2, streak_width=5)
    guarded = fuse(centre, rainy, nbs, fill_spread=20.0, **kw)
    assert (guarded[8, 4] == 100).all() and (guarded[8, 12] == 160).all()
    unguarded = fuse(centre, rainy, nbs, fill_spread=0.0, **kw)
    assert (unguarded[8, 4] == 100).all() and (unguarded[8, 12] == 125).all()
    with pytest.raises(ConfigError):
        TemporalSettings(fill_spread=-1)


def test_the_flow_rule_cleans_what_the_still_rule_guards() -> None:
    """A still camera with a moving object: the still rule keeps the per-frame result
    around the object (its guard), and the flow rule, chained after it, still removes the
    rain there. Flows are computed for the nearest ``flow_radius`` neighbours only."""
    import cv2

    rng = np.random.default_rng(12)
    back = 60 + 120 * cv2.GaussianBlur(rng.uniform(0, 1, (160, 320, 3)), (0, 0), 1.5)
    backs, boxes = [], []
    for t in range(14):
        frame = back.copy()
        x = 40 + 3 * t
        frame[70:82, x : x + 12] = 20.0
        backs.append(frame)
        boxes.append(x)
    rainy, derained = _clip(rng, backs)
    # still_shift 100: the camera is taken for still whatever the object does
    stage = TemporalStage("window", radius=4, flow_radius=2, still_shift=100.0)
    out = _run(stage, rainy, derained)
    before = after = 0.0
    for t in range(4, 10):
        x = boxes[t]
        ring = np.zeros((160, 320), bool)  # the still rule's guard around the object, off it
        ring[60:92, max(0, x - 14) : x + 26] = True
        ring[66:86, max(0, x - 6) : x + 18] = False
        clean = _u8(backs[t])
        before += _mse(derained[t][ring], clean[ring])
        after += _mse(out[t][0][ring], clean[ring])
    assert before > 20 and after < 0.2 * before, (before, after)
    held = TemporalStage("window", radius=4, flow_radius=2)
    for r, d in zip(rainy[:6], derained[:6], strict=True):
        held.push(r, d)
    assert held._pairs and all(abs(a - b) <= 2 for a, b in held._pairs)
