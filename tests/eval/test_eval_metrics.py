"""Metrics against the field's reference implementations (../shared/metric_refs) and known cases."""

from __future__ import annotations

import hashlib
import json
import math

import cv2
import numpy as np
import pytest

from rtderain.errors import RTDerainError
from rtderain.evaluation import metrics

TOL = {"psnr": 0.01, "ssim": 0.002, "vif": 0.01, "fsim": 0.003}


def _read(path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path), cv2.IMREAD_COLOR)[:, :, ::-1])


def _pairs(root):
    refs = json.loads((root / "refs.json").read_text())
    for pair in refs["pairs"]:
        x, y = _read(root / pair["distorted"]), _read(root / pair["reference"])
        assert hashlib.sha256(x.tobytes()).hexdigest() == pair["distorted_decoded_sha256"]
        assert hashlib.sha256(y.tobytes()).hexdigest() == pair["reference_decoded_sha256"]
        yield pair, x, y


def test_rgb_to_y_matches_matlab_formula():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    y = metrics.rgb_to_y(img)
    assert y.dtype == np.float64 and y.shape == (1, 4)
    np.testing.assert_allclose(y[0, :3], [16.0, 235.0, 16 + 65.481])
    assert y[0, 3] == pytest.approx(16 + (65.481 * 10 + 128.553 * 200 + 24.966 * 30) / 255)


def test_psnr_ssim_match_references(metric_refs):
    for pair, x, y in _pairs(metric_refs):
        sk, piq_y = pair["skimage"], pair["y01_float64"]
        assert metrics.psnr(x, y) == pytest.approx(sk["sk_psnr_y255"], abs=TOL["psnr"])
        assert metrics.psnr(x, y) == pytest.approx(piq_y["piq_psnr"], abs=TOL["psnr"])
        assert metrics.ssim(x, y) == pytest.approx(sk["sk_ssim_y255"], abs=TOL["ssim"])
        assert metrics.psnr(x, y, channel="rgb") == pytest.approx(
            sk["sk_psnr_rgb_u8"], abs=TOL["psnr"]
        )
        assert metrics.ssim(x, y, channel="rgb") == pytest.approx(
            sk["sk_ssim_rgb_u8"], abs=TOL["ssim"]
        )


@pytest.mark.slow
def test_vif_fsim_match_piq(metric_refs):
    for pair, x, y in _pairs(metric_refs):
        on_y, on_rgb = pair["y01_float64"], pair["rgb01_float64"]
        assert metrics.vif(x, y) == pytest.approx(on_y["piq_vif_p"], abs=TOL["vif"])
        assert metrics.vif(x, y, channel="rgb") == pytest.approx(
            on_rgb["piq_vif_p"], abs=TOL["vif"]
        )
        assert metrics.fsim(x, y) == pytest.approx(on_y["piq_fsim_nochroma"], abs=TOL["fsim"])
        assert metrics.fsim(x, y, channel="rgb") == pytest.approx(
            on_rgb["piq_fsim_chromatic"], abs=TOL["fsim"]
        )


def test_vif_fsim_match_piq_one_pair(metric_refs):
    """The fast subset of the test above (one 640x480 pair: FSIM pooling factor 2)."""
    pair, x, y = next(_pairs(metric_refs))
    assert metrics.vif(x, y) == pytest.approx(pair["y01_float64"]["piq_vif_p"], abs=TOL["vif"])
    assert metrics.fsim(x, y, channel="rgb") == pytest.approx(
        pair["rgb01_float64"]["piq_fsim_chromatic"], abs=TOL["fsim"]
    )


@pytest.mark.parametrize("channel", ["y", "rgb"])
def test_identical_images(channel):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, size=(64, 72, 3), dtype=np.uint8)
    got = metrics.compute(img, img, channel=channel)
    assert got["psnr"] == math.inf
    assert got["ssim"] == pytest.approx(1.0, abs=1e-12)
    assert got["vif"] == pytest.approx(1.0, abs=1e-6)
    assert got["fsim"] == pytest.approx(1.0, abs=1e-12)


def test_metrics_fall_with_distortion():
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:96, 0:96]
    clean = np.stack([128 + 60 * np.sin(xx / 6.0 + c) * np.cos(yy / 9.0) for c in range(3)], -1)
    clean = clean.astype(np.uint8)
    light = np.clip(clean + rng.normal(0, 3, clean.shape), 0, 255).astype(np.uint8)
    heavy = np.clip(clean + rng.normal(0, 25, clean.shape), 0, 255).astype(np.uint8)
    good, bad = metrics.compute(light, clean), metrics.compute(heavy, clean)
    for name in metrics.METRICS:
        assert good[name] > bad[name], name


def test_psnr_known_value_and_crop():
    gt = np.full((20, 20, 3), 100, dtype=np.uint8)
    pred = gt.copy()
    pred[...] = 110  # Y differs by 10 * (65.481 + 128.553 + 24.966) / 255 = 8.588...
    dy = 10 * (65.481 + 128.553 + 24.966) / 255
    assert metrics.psnr(pred, gt) == pytest.approx(10 * math.log10(255**2 / dy**2))
    assert metrics.psnr(pred, gt, channel="rgb") == pytest.approx(10 * math.log10(255**2 / 100))
    pred2 = gt.copy()
    pred2[0, :] = 0  # damage only the border row
    assert metrics.psnr(pred2, gt, crop=1) == math.inf


def test_bad_inputs_raise_clear_errors():
    a = np.zeros((50, 50, 3), np.uint8)
    with pytest.raises(RTDerainError, match="differs"):
        metrics.psnr(a, np.zeros((50, 51, 3), np.uint8))
    with pytest.raises(RTDerainError, match="channel"):
        metrics.psnr(a, a, channel="lab")
    with pytest.raises(RTDerainError, match="crop"):
        metrics.psnr(a, a, crop=25)
    with pytest.raises(RTDerainError, match="41x41"):
        metrics.vif(a[:30, :30], a[:30, :30])
    with pytest.raises(RTDerainError, match="RGB"):
        metrics.psnr(a[..., 0], a[..., 0])
