"""Zhang, Li, Qi, Leow and Ng, "Rain removal in video by combining temporal and chromatic
properties", ICME 2006.

Temporal property: over a window of frames, each pixel's intensity history is clustered by
K-means (K = 2) into a background cluster and a brighter rain cluster; the rain cluster is
the brighter one and must be rare (at most ``max_rain_fraction`` of the window: rain passes,
the background stays, and a slow lighting ramp splits about half-half), and the two
centres must be at least ``min_gap`` grey levels apart. Chromatic property: rain changes R, G
and B by nearly the same amount, so a rain candidate's change against the background
estimate must be positive and each channel's change within ``chroma_tol`` of their mean.
Removal: rain pixels take the background estimate (per-channel mean of the frames in the
background cluster), blended through a soft mask (the rain mask dilated by ``dilate`` pixels
and Gaussian-blurred with ``blur_sigma``), as the paper's final step.

The paper clusters the whole (static-camera) video; here a centred sliding window of
``window`` frames (clip ends: the window slides inward, see ``baselines.window``), so a
moving camera or changing light only mixes nearby frames. A single frame is returned
unchanged (one sample cannot be clustered).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage

from rtderain.evaluation.baselines.window import luma, sliding_windows


class ZhangChromatic:
    """Temporal K-means plus chromatic constraint (see module doc)."""

    name = "zhang2006"
    temporal = True

    def __init__(
        self,
        window: int = 9,
        iterations: int = 6,
        min_gap: float = 6.0,
        chroma_tol: float = 6.0,
        dilate: int = 1,
        blur_sigma: float = 0.8,
        max_rain_fraction: float = 1 / 3,
    ) -> None:
        self.max_rain_fraction = max_rain_fraction
        self.window, self.iterations = window, iterations
        self.min_gap, self.chroma_tol = min_gap, chroma_tol
        self.dilate, self.blur_sigma = dilate, blur_sigma

    def params(self) -> dict:
        return {
            "window": self.window,
            "iterations": self.iterations,
            "min_gap": self.min_gap,
            "chroma_tol": self.chroma_tol,
            "dilate": self.dilate,
            "blur_sigma": self.blur_sigma,
            "max_rain_fraction": self.max_rain_fraction,
        }

    def derain(self, window: np.ndarray, centre: int) -> np.ndarray:
        """De-rain ``window[centre]``; ``window`` is uint8 ``(K, H, W, 3)`` RGB, K >= 2."""
        y = luma(window)  # (K, H, W)
        lo, hi = y.min(0), y.max(0)
        rain = np.zeros_like(y, dtype=bool)
        for _ in range(self.iterations):
            # A constant history (lo == hi up to rounding) has no rain cluster.
            rain = (y > 0.5 * (lo + hi)) & (hi - lo > 0.5)
            n_rain = rain.sum(0)
            n_bg = len(y) - n_rain
            hi = np.where(n_rain > 0, (y * rain).sum(0) / np.maximum(n_rain, 1), hi)
            lo = np.where(n_bg > 0, (y * ~rain).sum(0) / np.maximum(n_bg, 1), lo)
        n_rain = rain.sum(0)
        bg_weight = (~rain).astype(np.float32)[..., None]  # >= 1 frame: rain is the minority
        background = (window * bg_weight).sum(0) / np.maximum(bg_weight.sum(0), 1.0)
        frame = window[centre].astype(np.float32)
        delta = frame - background
        mean_delta = delta.mean(-1)
        chroma_ok = np.abs(delta - mean_delta[..., None]).max(-1) <= self.chroma_tol
        mask = (
            rain[centre]
            & (n_rain <= self.max_rain_fraction * len(y))
            & (hi - lo >= self.min_gap)
            & (mean_delta > 0)
            & chroma_ok
        )
        if self.dilate > 0:
            mask = ndimage.binary_dilation(mask, iterations=self.dilate)
        alpha = mask.astype(np.float32)
        if self.blur_sigma > 0:
            alpha = np.maximum(alpha, ndimage.gaussian_filter(alpha, self.blur_sigma))
        out = frame + alpha[..., None] * (np.minimum(background, frame) - frame)
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for window, c in sliding_windows(frames, self.window):
            yield window[c] if len(window) < 2 else self.derain(window, c)
