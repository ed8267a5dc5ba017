"""Known-answer tests for the temporal metrics (warping error, flicker) on synthesised clips."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from rtderain.errors import RTDerainError
from rtderain.evaluation.temporal import (
    DEFAULT_STATIC_THRESHOLD,
    Flicker,
    WarpingError,
    flicker,
    static_background_mask,
    warping_error,
)

H, W = 96, 128
#: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255: the weights sum to 219/255.
Y_GAIN_EQUAL_RGB = (65.481 + 128.553 + 24.966) / 255.0
#: Variance (in levels^2) that rounding to integers adds to continuous noise (Sheppard).
ROUNDING_VAR = 1.0 / 12.0


def texture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour texture, uint8 (h, w, 3) RGB in [40, 215] (no clipping room)."""
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0.0, 1.0, (h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return np.rint(40 + 175 * smooth).astype(np.uint8)


def static_clip(n: int, h: int = H, w: int = W, seed: int = 0) -> list[np.ndarray]:
    """``n`` identical copies of one texture frame."""
    frame = texture(h, w, seed)
    return [frame.copy() for _ in range(n)]


def shifted_clip(n: int, dx: int, dy: int, h: int = H, w: int = W) -> list[np.ndarray]:
    """A window moving ``(dx, dy)`` pixels per frame over a larger texture (content moves by
    ``(-dx, -dy)``), so frame t at x equals frame t-1 at x + (dx, dy)."""
    canvas = texture(h + n * dy + 1, w + n * dx + 1, seed=1)
    return [
        np.ascontiguousarray(canvas[t * dy : t * dy + h, t * dx : t * dx + w]) for t in range(n)
    ]


def add_noise(
    frames: list[np.ndarray],
    sigma: float,
    equal_rgb: bool,
    region: np.ndarray | None = None,
    seed: int = 2,
) -> list[np.ndarray]:
    """Frames plus i.i.d. N(0, sigma^2) noise per frame, rounded to integers (in levels).

    ``equal_rgb``: one noise value added to R, G and B; else independent per channel.
    ``region``: bool (H, W) where noise is added (default everywhere). The textures stay in
    [40, 215], so for sigma <= 5 clipping at 0/255 is negligible (> 8 sigma away).
    """
    rng = np.random.default_rng(seed)
    out = []
    for frame in frames:
        shape = frame.shape[:2] + ((1,) if equal_rgb else (3,))
        noise = np.rint(rng.normal(0.0, sigma, shape))
        if region is not None:
            noise = noise * region[..., None]
        out.append(np.clip(frame + noise, 0, 255).astype(np.uint8))
    return out


def expected_population_std(sigma: float, n: int) -> float:
    """E[population std of n i.i.d. N(0, sigma^2) samples] = sigma sqrt(2/n) G(n/2)/G((n-1)/2).

    (About sigma sqrt((n-1)/n), slightly less.)
    """
    return sigma * math.sqrt(2.0 / n) * math.exp(math.lgamma(n / 2) - math.lgamma((n - 1) / 2))


def frozen_expected_error(frame: np.ndarray, dx: int, dy: int) -> float:
    """Warping error of a frozen output on a clip moving (dx, dy) per frame: the mean over
    channels and interior pixels of (F(x) - F(x + d))^2, RGB in [0, 1]."""
    f = frame.astype(np.float64) / 255.0
    diff = f[: H - dy, : W - dx] - f[dy:, dx:]
    return float(np.mean(diff**2))


def test_static_clip_has_zero_flicker_and_zero_warping_error() -> None:
    clip = static_clip(6)
    assert flicker(clip) == 0.0
    half_level_everywhere = (0.5 / 255.0) ** 2
    assert warping_error(clip, clip) < half_level_everywhere


def test_shifted_clip_is_consistent_and_frozen_output_is_not() -> None:
    dx, dy, n = 3, 2, 6
    clip = shifted_clip(n, dx, dy)
    moving = WarpingError()
    frozen = WarpingError()
    for frame in clip:
        moving.update(frame, frame)
        frozen.update(clip[0], frame)
    moving_result, frozen_result = moving.result(), frozen.result()
    expected_frozen = frozen_expected_error(clip[0], dx, dy)
    assert frozen_result["warping_error"] == pytest.approx(expected_frozen, rel=0.05)
    assert moving_result["warping_error"] < 0.01 * expected_frozen
    # The gt's own error uses the same flow and mask: output == gt gives relative 0.
    assert moving_result["relative_warping_error"] == 0.0
    assert frozen_result["reference_warping_error"] == moving_result["warping_error"]
    assert frozen_result["relative_warping_error"] == pytest.approx(
        expected_frozen - moving_result["warping_error"], rel=0.05
    )
    # Only the band entering the frame (dx columns, dy rows) and the flow's edges are occluded.
    entering = 1.0 - (H - dy) * (W - dx) / (H * W)
    assert 1.0 - 3 * entering < moving_result["non_occluded_fraction"] <= 1.0 - entering / 2
    assert moving_result["pairs"] == n - 1 and moving_result["frames"] == n


def test_flow_at_reduced_resolution_still_follows_the_motion() -> None:
    dx, dy, n = 4, 2, 5  # half resolution: a shift of (2, 1) pixels
    clip = shifted_clip(n, dx, dy)
    frozen = [clip[0]] * n
    expected_frozen = frozen_expected_error(clip[0], dx, dy)
    reduced = warping_error(clip, clip, flow_max_side=W // 2)
    assert reduced < 0.05 * expected_frozen
    assert warping_error(frozen, clip, flow_max_side=W // 2) == pytest.approx(
        expected_frozen, rel=0.05
    )


def test_noise_raises_flicker_by_its_luma_std() -> None:
    sigma, n = 4.0, 8
    noisy = add_noise(static_clip(n), sigma, equal_rgb=True)
    sigma_y = math.sqrt(sigma**2 + ROUNDING_VAR) * Y_GAIN_EQUAL_RGB
    assert flicker(noisy) == pytest.approx(expected_population_std(sigma_y, n), rel=0.03)


def test_noise_raises_warping_error_by_twice_its_variance() -> None:
    sigma, n = 4.0, 6
    clean = static_clip(n)
    noisy = add_noise(clean, sigma, equal_rgb=False)
    acc = WarpingError()
    for pred, ref in zip(noisy, clean, strict=True):
        acc.update(pred, ref)
    result = acc.result()
    # Difference of two independent noise frames: variance 2 sigma^2, in [0, 1] units.
    expected = 2.0 * (sigma**2 + ROUNDING_VAR) / 255.0**2
    assert result["relative_warping_error"] == pytest.approx(expected, rel=0.05)


def test_flicker_mask_restricts_the_average() -> None:
    sigma, n = 5.0, 8
    region = np.zeros((H, W), dtype=bool)
    region[10:60, 20:90] = True
    noisy = add_noise(static_clip(n), sigma, equal_rgb=True, region=region)
    sigma_y = math.sqrt(sigma**2 + ROUNDING_VAR) * Y_GAIN_EQUAL_RGB
    inside = flicker(noisy, mask=region)
    assert inside == pytest.approx(expected_population_std(sigma_y, n), rel=0.03)
    assert flicker(noisy, mask=~region) == 0.0
    assert flicker(noisy) == pytest.approx(inside * region.mean(), rel=1e-9)
    acc = Flicker(mask=region)
    for frame in noisy:
        acc.update(frame)
    assert acc.result() == {"flicker": inside, "pixels": int(region.sum()), "frames": n}


def test_streaming_flicker_matches_direct_std() -> None:
    frames = add_noise(shifted_clip(7, 1, 1), 3.0, equal_rgb=False)
    rgb = np.stack(frames).astype(np.float64)
    y = 16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255
    acc = Flicker()
    for frame in frames:
        acc.update(frame)
    np.testing.assert_allclose(acc.std_map(), y.std(axis=0), rtol=1e-9, atol=1e-9)
    assert flicker(frames) == pytest.approx(float(y.std(axis=0).mean()), rel=1e-9)


def test_static_background_mask_finds_the_static_half() -> None:
    n, half = 6, W // 2
    moving = shifted_clip(n, 3, 0)
    still = static_clip(n, seed=3)
    clip = [
        np.concatenate([s[:, :half], m[:, half:]], axis=1)
        for s, m in zip(still, moving, strict=True)
    ]
    mask = static_background_mask(clip)
    assert mask[:, :half].all()
    assert mask[:, half:].mean() < 0.1
    # Flicker on the static background ignores the moving half.
    noisy = add_noise(clip, 4.0, equal_rgb=True)
    sigma_y = math.sqrt(16.0 + ROUNDING_VAR) * Y_GAIN_EQUAL_RGB
    on_static = flicker(noisy, mask=mask)
    assert on_static == pytest.approx(expected_population_std(sigma_y, n), rel=0.05)
    assert flicker(clip, mask=mask) < DEFAULT_STATIC_THRESHOLD / 2


def test_single_frame_warping_error_is_nan() -> None:
    frame = texture(H, W)
    assert math.isnan(warping_error([frame], [frame]))
    acc = WarpingError()
    assert math.isnan(acc.result()["warping_error"])
    acc.update(frame, frame)
    result = acc.result()
    assert result["pairs"] == 0 and result["frames"] == 1
    assert math.isnan(result["relative_warping_error"])
    assert flicker([frame]) == 0.0


@pytest.mark.parametrize(
    "bad, what",
    [
        (np.zeros((H, W, 3), dtype=np.float32), "dtype"),
        (np.zeros((H, W), dtype=np.uint8), "shape"),
        (np.zeros((H, W, 4), dtype=np.uint8), "shape"),
        (np.zeros((H, W + 2, 3), dtype=np.uint8), "size"),
        ([[0, 0, 0]], "numpy"),
    ],
)
def test_bad_frames_raise_naming_the_index(bad: object, what: str) -> None:
    good = static_clip(3)
    frames = good[:2] + [bad]
    with pytest.raises(RTDerainError, match=rf"frame 2\b.*{what}|{what}.*frame 2\b"):
        warping_error(frames, good)
    with pytest.raises(RTDerainError, match=r"frame 2\b"):
        warping_error(good, frames)
    with pytest.raises(RTDerainError, match=r"frame 2\b"):
        flicker(frames)


def test_mismatched_sequences_and_masks_raise() -> None:
    clip = static_clip(3)
    with pytest.raises(RTDerainError, match="frame 2"):
        warping_error(clip, clip[:2])
    with pytest.raises(RTDerainError, match="frame 0"):
        warping_error(clip, [c[:, :-2] for c in clip])
    with pytest.raises(RTDerainError, match="mask"):
        flicker(clip, mask=np.ones((H, W - 1), dtype=bool))
    with pytest.raises(RTDerainError, match="mask"):
        flicker(clip, mask=np.ones((H, W), dtype=np.uint8))
    with pytest.raises(RTDerainError, match="empty"):
        warping_error([], [])
