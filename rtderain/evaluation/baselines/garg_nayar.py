"""Garg & Nayar, "Detection and removal of rain from videos", CVPR 2004 (section 5).

Detection: a pixel is a rain candidate in frame n when it is brighter than both temporal
neighbours by at least ``c`` and by about the same amount (the paper's
``dI = I_n - I_{n-1} = I_n - I_{n+1} >= c``; "about" = within ``equal_tol``, since real video
has noise). The linear photometric constraint then checks each candidate streak (an
8-connected component): a drop on a background of brightness ``I_b`` changes it by
``dI = -beta * I_b + alpha`` with ``0 <= beta <= 0.039``; ``beta`` is fitted by least squares
over the streak's pixels and streaks outside ``[-beta_tol, 0.039 + beta_tol]`` are rejected
(streaks under ``min_fit_pixels`` pixels or on a flat background cannot be fitted and are
kept). Removal: a rain pixel takes the mean of its two temporal neighbours (RGB).

Not implemented: the paper's directional-correlation step (streak orientation consistency).
Edges: the neighbours are the two nearest other frames (frames 1 and 2 for the first frame,
N-2 and N-3 for the last); a two-frame clip uses its other frame twice; a single frame is
returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
from scipy import ndimage

from rtderain.evaluation.baselines.window import luma, sliding_windows

BETA_MAX = 0.039  # the paper's bound on beta (drop exposure time / frame exposure time)


class GargNayar:
    """Photometric-constraint rain detection and temporal-mean replacement (see module doc)."""

    name = "garg-nayar"
    temporal = True

    def __init__(
        self,
        c: float = 3.0,
        equal_tol: float = 8.0,
        beta_tol: float = 0.02,
        min_fit_pixels: int = 4,
    ) -> None:
        self.c, self.equal_tol = c, equal_tol
        self.beta_tol, self.min_fit_pixels = beta_tol, min_fit_pixels

    def params(self) -> dict:
        return {
            "c": self.c,
            "equal_tol": self.equal_tol,
            "beta_max": BETA_MAX,
            "beta_tol": self.beta_tol,
            "min_fit_pixels": self.min_fit_pixels,
        }

    def detect(self, frame: np.ndarray, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """Rain mask ``(H, W)`` bool of ``frame`` given its two temporal neighbours (uint8 RGB)."""
        y, ya, yb = luma(frame), luma(prev), luma(nxt)
        da, db = y - ya, y - yb
        cand = (da >= self.c) & (db >= self.c) & (np.abs(da - db) <= self.equal_tol)
        labels, count = ndimage.label(cand, structure=np.ones((3, 3), bool))
        if count == 0:
            return cand
        # Least-squares slope of dI against the background brightness, per streak.
        d = 0.5 * (da + db)
        bg = 0.5 * (ya + yb)
        idx = np.arange(1, count + 1)
        n = ndimage.sum_labels(np.ones_like(d), labels, idx)
        sx, sy = ndimage.sum_labels(bg, labels, idx), ndimage.sum_labels(d, labels, idx)
        sxx = ndimage.sum_labels(bg * bg, labels, idx)
        sxy = ndimage.sum_labels(bg * d, labels, idx)
        var = n * sxx - sx * sx
        fittable = (n >= self.min_fit_pixels) & (var > 1e-3 * np.maximum(n, 1) ** 2)
        slope = np.where(fittable, (n * sxy - sx * sy) / np.where(fittable, var, 1.0), 0.0)
        beta = -slope
        ok = ~fittable | ((beta >= -self.beta_tol) & (beta <= BETA_MAX + self.beta_tol))
        keep = np.concatenate([[False], ok])
        return keep[labels]

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for window, c in sliding_windows(frames, 3):
            frame = window[c]
            others = [window[i] for i in range(len(window)) if i != c]
            if not others:
                yield frame
                continue
            prev, nxt = others[0], others[-1]
            mask = self.detect(frame, prev, nxt)
            out = frame.copy()
            mean = (prev[mask].astype(np.uint16) + nxt[mask] + 1) // 2
            out[mask] = mean.astype(np.uint8)
            yield out
