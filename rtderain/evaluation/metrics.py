"""Full-reference image quality metrics: PSNR, SSIM, VIF (pixel domain) and FSIM / FSIMc.

Conventions (the ones the de-raining literature reports, see ``docs/evaluation.md``):

- Inputs are ``uint8 (H, W, 3)`` RGB arrays (prediction first, ground truth second).
- ``channel="y"`` (default): metrics on luminance Y of MATLAB ``rgb2ycbcr`` (BT.601 studio
  swing, not rounded, 0-255 scale, values in [16, 235]); ``channel="rgb"``: on the three RGB
  channels (PSNR over all channels, SSIM averaged over channels, VIF on piq's
  0.299/0.587/0.114 luma, FSIM becomes FSIMc).
- ``crop`` removes that many pixels from every border before measuring.
- Identical images give PSNR ``inf`` (no cap), SSIM 1, VIF 1, FSIM 1.

PSNR and SSIM use scikit-image (``peak_signal_noise_ratio`` convention;
``structural_similarity`` with an 11x11 Gaussian window, sigma 1.5, population covariance:
the MATLAB ``ssim_index`` convention, no downsampling). VIF and FSIM are written here in
numpy following piq 0.8.0 (``vif_p``, ``fsim``) step by step, because piq needs torchvision.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from rtderain.errors import RTDerainError

CHANNELS = ("y", "rgb")
METRICS = ("psnr", "ssim", "vif", "fsim")

# MATLAB rgb2ycbcr luma row (inputs 0..255): Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255.
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64) / 255.0


def _check_rgb(img: np.ndarray, name: str = "image") -> None:
    if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
        shape = getattr(img, "shape", type(img).__name__)
        raise RTDerainError(f"{name} must be an (H, W, 3) RGB array, got shape {shape}")


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> None:
    _check_rgb(pred, "prediction")
    _check_rgb(gt, "ground truth")
    if pred.shape != gt.shape:
        raise RTDerainError(f"prediction size {pred.shape} differs from ground truth {gt.shape}")


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise RTDerainError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """MATLAB ``rgb2ycbcr`` luma of an RGB image, not rounded.

    ``img``: ``(H, W, 3)`` RGB, uint8 (0..255; other dtypes are taken on the same scale).
    Returns ``(H, W)`` float64 on the 0-255 scale, in [16, 235] for uint8 input.
    """
    _check_rgb(img)
    return 16.0 + img.astype(np.float64) @ _Y_WEIGHTS


def _crop(img: np.ndarray, crop: int) -> np.ndarray:
    if crop < 0:
        raise RTDerainError(f"border crop must be >= 0, got {crop}")
    if crop == 0:
        return img
    if 2 * crop >= min(img.shape[0], img.shape[1]):
        raise RTDerainError(
            f"border crop {crop} leaves nothing of a {img.shape[1]}x{img.shape[0]} image"
        )
    return img[crop:-crop, crop:-crop]


def _planes(
    pred: np.ndarray, gt: np.ndarray, channel: str, crop: int
) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 on 0-255: (H, W) Y planes or (H, W, 3) RGB, border-cropped."""
    _check_pair(pred, gt)
    _check_channel(channel)
    if channel == "y":
        a, b = rgb_to_y(pred), rgb_to_y(gt)
    else:
        a, b = pred.astype(np.float64), gt.astype(np.float64)
    return _crop(a, crop), _crop(b, crop)


def psnr(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    channel: str = "y",
    crop: int = 0,
    data_range: float = 255.0,
) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    ``pred``, ``gt``: uint8 ``(H, W, 3)`` RGB. ``channel``: ``"y"`` (MATLAB luma, not
    rounded) or ``"rgb"`` (MSE over all three channels). ``crop``: border pixels dropped per
    side. ``data_range``: the peak value (255 for 8-bit).
    """
    a, b = _planes(pred, gt, channel, crop)
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return 10.0 * math.log10(data_range**2 / mse)


def ssim(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    channel: str = "y",
    crop: int = 0,
    data_range: float = 255.0,
) -> float:
    """Structural similarity, MATLAB ``ssim_index`` convention (no downsampling).

    11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03, population covariance, mean over the
    'valid' area (scikit-image crops 5 px per side). ``channel="rgb"`` averages the three
    channels. Inputs as in :func:`psnr`; images must be at least 11x11 after ``crop`` (a
    smaller window would be another metric, so none is substituted).
    """
    from skimage.metrics import structural_similarity

    a, b = _planes(pred, gt, channel, crop)
    if min(a.shape[:2]) < 11:  # skimage would raise deep inside; the window must fit
        raise RTDerainError(
            f"SSIM needs images of at least 11x11 pixels (its 11x11 window), got "
            f"{a.shape[1]}x{a.shape[0]}" + (f" after --crop {crop}" if crop else "")
            + "; leave it out with --metrics psnr"
        )
    kwargs = dict(
        data_range=data_range, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    if channel == "rgb":
        kwargs["channel_axis"] = -1
    return float(structural_similarity(b, a, **kwargs))


def _gauss_1d(size: int, sigma: float) -> np.ndarray:
    t = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    return g / g.sum()


def _blur_valid(img: np.ndarray, g1: np.ndarray) -> np.ndarray:
    """'valid' 2-D filtering of an (H, W) float64 plane with the separable kernel outer(g1, g1)."""
    import cv2

    r = len(g1) // 2
    out = cv2.sepFilter2D(img, cv2.CV_64F, g1, g1, borderType=cv2.BORDER_REFLECT)
    return out[r : img.shape[0] - r, r : img.shape[1] - r]


def vif(pred: np.ndarray, gt: np.ndarray, *, channel: str = "y", crop: int = 0) -> float:
    """Visual information fidelity in the pixel domain (Sheikh & Bovik 2006), as piq ``vif_p``.

    Four scales with Gaussian windows of 17, 9, 5, 3 taps (sigma = size / 5), 'valid' filtering
    and dyadic subsampling between scales, visual noise variance 2.0 on the 0-255 scale.
    ``channel="y"``: MATLAB Y; ``"rgb"``: piq's 0.299 R + 0.587 G + 0.114 B luma. Not
    symmetric: ``pred`` is the distorted image, ``gt`` the reference. Images must be at least
    41x41 after ``crop``. Written by hand following piq 0.8.0 (piq needs torchvision).
    """
    x, y = _planes(pred, gt, channel, crop)
    if channel == "rgb":
        w = np.array([0.299, 0.587, 0.114])
        x, y = x @ w, y @ w
    if min(x.shape) < 41:
        raise RTDerainError(f"VIF needs images of at least 41x41 pixels, got {x.shape}")
    eps, sigma_n_sq = 1e-8, 2.0
    num = den = 0.0
    for scale in range(4):
        size = 2 ** (4 - scale) + 1
        g = _gauss_1d(size, size / 5.0)
        if scale > 0:
            x = np.ascontiguousarray(_blur_valid(x, g)[::2, ::2])
            y = np.ascontiguousarray(_blur_valid(y, g)[::2, ::2])
        mu_x, mu_y = _blur_valid(x, g), _blur_valid(y, g)
        var_y = np.maximum(_blur_valid(y * y, g) - mu_y * mu_y, 0.0)  # reference
        var_x = np.maximum(_blur_valid(x * x, g) - mu_x * mu_x, 0.0)  # distorted
        cov = _blur_valid(x * y, g) - mu_x * mu_y
        gain = cov / (var_y + eps)
        var_v = var_x - gain * cov
        flat_ref = var_y < eps
        gain[flat_ref] = 0.0
        var_v[flat_ref] = var_x[flat_ref]
        var_y[flat_ref] = 0.0
        flat_dist = var_x < eps
        gain[flat_dist] = 0.0
        var_v[flat_dist] = 0.0
        neg = gain < 0
        var_v[neg] = var_x[neg]
        gain = np.maximum(gain, 0.0)
        var_v = np.maximum(var_v, eps)
        num += float(np.log10(1.0 + gain**2 * var_y / (var_v + sigma_n_sq)).sum())
        den += float(np.log10(1.0 + var_y / sigma_n_sq).sum())
    return (num + eps) / (den + eps)


def _freq_grid(n: int) -> np.ndarray:
    """piq's centred frequency coordinates along one axis (``get_meshgrid``)."""
    if n % 2:
        return np.arange(-(n - 1) / 2, n / 2, dtype=np.float64) / (n - 1)
    return np.arange(-n / 2, n / 2, dtype=np.float64) / n


def _log_gabor_bank(h: int, w: int, scales: int = 4, orientations: int = 4) -> np.ndarray:
    """Log-Gabor filters ``(orientations, scales, H, W)``, zero frequency at the corner."""
    u, v = np.meshgrid(_freq_grid(h), _freq_grid(w), indexing="ij")
    shift = (-(h // 2), -(w // 2))
    radius = np.roll(np.sqrt(u**2 + v**2), shift, (0, 1))
    theta = np.roll(np.arctan2(-v, u), shift, (0, 1))
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** 30)  # Butterworth, cutoff 0.45, order 15
    radius[0, 0] = 1.0
    radial = []
    for s in range(scales):
        f0 = 1.0 / (6 * 2**s)  # minimum wavelength 6, multiplier 2
        lg = np.exp(-(np.log(radius / f0) ** 2) / (2 * math.log(0.55) ** 2)) * lowpass
        lg[0, 0] = 0.0
        radial.append(lg)
    theta_sigma = math.pi / (orientations * 1.2)
    angular = []
    for o in range(orientations):
        a = o * math.pi / orientations
        ds = np.sin(theta) * math.cos(a) - np.cos(theta) * math.sin(a)
        dc = np.cos(theta) * math.cos(a) + np.sin(theta) * math.sin(a)
        angular.append(np.exp(-(np.arctan2(ds, dc) ** 2) / (2 * theta_sigma**2)))
    return np.stack(angular)[:, None] * np.stack(radial)[None, :]


@functools.lru_cache(maxsize=4)
def _pc_bank(h: int, w: int) -> tuple[np.ndarray, ...]:
    """Per-size constants of phase congruency: the filter bank and its noise-model sums."""
    from scipy import fft

    bank = _log_gabor_bank(h, w)
    em_n = (bank[:, 0] ** 2).sum((-2, -1))
    spatial = fft.ifft2(bank).real * math.sqrt(h * w)
    sum_an2 = (spatial**2).sum((1, 2, 3))
    tail = np.cumsum(spatial[:, ::-1], axis=1)[:, ::-1]  # sum over scales s' >= s
    sum_ai_aj = (spatial[:, :-1] * tail[:, 1:]).sum((1, 2, 3))
    return bank, em_n, sum_an2, sum_ai_aj


def _phase_congruency(img: np.ndarray) -> np.ndarray:
    """Kovesi phase congruency (PC_2 measure, noise threshold k=2) of an (H, W) float64 plane."""
    from scipy import fft

    eps = np.finfo(np.float64).eps
    bank, em_n, sum_an2, sum_ai_aj = _pc_bank(*img.shape)
    # complex64: half the memory traffic of complex128; changes FSIM by ~1e-7.
    eo = fft.ifft2(fft.fft2(img.astype(np.float32)) * bank.astype(np.float32))  # (O, S, H, W)
    even, odd = eo.real, eo.imag
    amp = np.abs(eo)
    sum_e, sum_o = even.sum(1, keepdims=True), odd.sum(1, keepdims=True)
    norm = np.sqrt(sum_e**2 + sum_o**2) + eps
    mean_e, mean_o = sum_e / norm, sum_o / norm
    energy = (even * mean_e + odd * mean_o - np.abs(even * mean_o - odd * mean_e)).sum(1)
    # Noise threshold from the smallest scale's median squared response (Rayleigh model);
    # the lower middle value for an even count, as torch.median in piq.
    e2 = (amp[:, 0] ** 2).reshape(bank.shape[0], -1)
    k = (e2.shape[1] - 1) // 2
    median_e2n = np.partition(e2, k, axis=1)[:, k]
    noise_power = (-median_e2n / math.log(0.5)) / em_n
    tau = np.sqrt((2 * noise_power * sum_an2 + 4 * noise_power * sum_ai_aj) / 2)
    threshold = (tau * math.sqrt(math.pi / 2) + 2.0 * np.sqrt((2 - math.pi / 2) * tau**2)) / 1.7
    energy = np.maximum(energy - threshold[:, None, None], 0.0)
    return (energy.sum(0) + eps) / (amp.sum((0, 1)) + eps)


def _gradient_magnitude(img: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude of an (H, W) plane, zero padding (piq ``gradient_map``)."""
    import cv2

    k = np.array([[-3.0, 0.0, 3.0], [-10.0, 0.0, 10.0], [-3.0, 0.0, 3.0]]) / 16
    gx = cv2.filter2D(img, cv2.CV_64F, k, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.filter2D(img, cv2.CV_64F, k.T, borderType=cv2.BORDER_CONSTANT)
    return np.sqrt(gx**2 + gy**2)


def _similarity(a: np.ndarray, b: np.ndarray, c: float) -> np.ndarray:
    return (2.0 * a * b + c) / (a**2 + b**2 + c)


def _avg_pool(img: np.ndarray, f: int) -> np.ndarray:
    """Non-overlapping f x f mean (torch ``avg_pool2d``: the ragged border is dropped)."""
    if f == 1:
        return img
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    return img[:h, :w].reshape(h // f, f, w // f, f, *img.shape[2:]).mean((1, 3))


def fsim(pred: np.ndarray, gt: np.ndarray, *, channel: str = "y", crop: int = 0) -> float:
    """Feature similarity index (Zhang et al. 2011), as piq ``fsim``; FSIMc for ``channel="rgb"``.

    Both images (0-255 scale) are first average-pooled by ``max(1, round(min(H, W) / 256))``
    (2 for 640x480), as piq and the authors' MATLAB code do. Phase congruency from a log-Gabor
    bank (4 scales, 4 orientations), Scharr gradient magnitude, T1=0.85, T2=160; FSIMc adds
    YIQ chroma similarity (T3=T4=200, lambda=0.03). ``channel="y"`` runs on MATLAB Y. Written
    by hand following piq 0.8.0 (piq needs torchvision).
    """
    a, b = _planes(pred, gt, channel, crop)
    f = max(1, round(min(a.shape[:2]) / 256))
    x, y = _avg_pool(a, f), _avg_pool(b, f)
    if channel == "rgb":
        yiq = np.array(
            [[0.299, 0.587, 0.114], [0.5959, -0.2746, -0.3213], [0.2115, -0.5227, 0.3112]]
        )
        x, y = x @ yiq.T, y @ yiq.T
        lum_x, lum_y = np.ascontiguousarray(x[..., 0]), np.ascontiguousarray(y[..., 0])
    else:
        lum_x, lum_y = x, y
    pc_x, pc_y = _phase_congruency(lum_x), _phase_congruency(lum_y)
    pc_max = np.maximum(pc_x, pc_y)
    score = (
        _similarity(pc_x, pc_y, 0.85)
        * _similarity(_gradient_magnitude(lum_x), _gradient_magnitude(lum_y), 160.0)
        * pc_max
    )
    if channel == "rgb":
        chroma = _similarity(x[..., 1], y[..., 1], 200.0) * _similarity(x[..., 2], y[..., 2], 200.0)
        score = score * np.abs(chroma) ** 0.03
    return float(score.sum() / pc_max.sum())


_FUNCS = {"psnr": psnr, "ssim": ssim, "vif": vif, "fsim": fsim}


def compute(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    channel: str = "y",
    crop: int = 0,
    metrics: tuple[str, ...] = METRICS,
) -> dict[str, float]:
    """All requested metrics of one frame pair: ``{"psnr": ..., "ssim": ..., ...}``."""
    for name in metrics:
        if name not in _FUNCS:
            raise RTDerainError(f"unknown metric {name!r}; use {', '.join(METRICS)}")
    return {name: _FUNCS[name](pred, gt, channel=channel, crop=crop) for name in metrics}
