"""Alignment of neighbour frames onto a centre frame: DIS flow at reduced resolution.

Conventions: frames are ``(H, W, 3)`` RGB uint8 or uint16 (full scale 65535); flow fields
are ``(h, w, 2)`` float32 (x, y) displacements in pixels of the small grid, defined so that
``a(p) ~ b(p + flow_ab(p))``. Masks are ``(h, w)`` uint8, 1 where an aligned pixel is
trusted, 0 elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

PRESETS = {
    "ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST,
    "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
    "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
}
MIN_FLOW_SIDE = 32  # the small grid keeps at least this many pixels on its short side


def flow_factor(height: int, width: int, flow_scale: int) -> int:
    """The downscale actually used: ``flow_scale``, reduced so the small grid stays usable."""
    return max(1, min(flow_scale, min(height, width) // MIN_FLOW_SIDE))


def luma(frame: np.ndarray) -> np.ndarray:
    """Luma (BT.601 weights, OpenCV ``RGB2GRAY``) of an ``(H, W, 3)`` RGB frame, same dtype;
    an ``(H, W)`` luma plane (a luma network's Y, the YUV-native path) is its own luma."""
    return frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def small_grey(grey: np.ndarray, factor: int) -> np.ndarray:
    """``(H, W)`` luma -> ``(H // factor, W // factor)`` uint8 (area average; uint16 >> 8)."""
    h, w = grey.shape
    small = (
        grey
        if factor == 1
        else cv2.resize(
            grey, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA
        )
    )
    if small.dtype == np.uint16:
        small = (small >> 8).astype(np.uint8)
    return np.ascontiguousarray(small)


def _grid(h: int, w: int) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    return np.dstack([xs, ys])


@dataclass
class PairAlignment:
    """Both flows between two frames and where each direction is trusted (small grid)."""

    flow_ab: np.ndarray
    flow_ba: np.ndarray
    ok_ab: np.ndarray
    ok_ba: np.ndarray

    def bad_fraction(self) -> float:
        """Share of the small grid where ``b`` does not align onto ``a``."""
        return 1.0 - cv2.countNonZero(self.ok_ab) / self.ok_ab.size


class Aligner:
    """DIS flow, forward-backward and photometric checks, and full-resolution warps.

    One instance serves one frame size (the stage makes a new one on a size change); it
    caches the coordinate grids. ``factor`` is the downscale of the flow grid.
    """

    def __init__(
        self,
        height: int,
        width: int,
        factor: int,
        fb_tol: float,
        photo_tol: float,
        photo_grad: float = 0.0,
        preset: str = "ultrafast",
    ) -> None:
        self.height, self.width, self.factor = height, width, factor
        self.small_size = (max(1, width // factor), max(1, height // factor))  # (w, h)
        self.sx = width / self.small_size[0]
        self.sy = height / self.small_size[1]
        self.fb_tol_small = fb_tol / factor
        self.photo_tol = photo_tol
        self.photo_grad = photo_grad
        self._dis = cv2.DISOpticalFlow_create(PRESETS[preset])
        self._grid_small = _grid(self.small_size[1], self.small_size[0])
        self._scale = np.float32([self.sx, self.sy])
        self._kernel = np.ones((3, 3), np.uint8)

    def flow(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow ``a -> b`` on two small uint8 greys (``a(p) ~ b(p + flow(p))``)."""
        return self._dis.calc(a, b, None)

    def _trusted(
        self, a: np.ndarray, b: np.ndarray, f_ab: np.ndarray, f_ba: np.ndarray
    ) -> np.ndarray:
        pos = self._grid_small + f_ab
        # Forward-backward: following f_ab then f_ba should come back to the start.
        back = cv2.remap(f_ba, pos, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        err = np.abs(f_ab + back)
        fb = np.maximum(err[..., 0], err[..., 1])
        # Photometric: b warped onto a should look like a (area-averaged luma, 8-bit scale),
        # compared after a 3x3 erosion of both: that removes bright structures thinner than
        # 3 small pixels (left-over rain, which the median handles) and keeps shifted edges.
        warped = cv2.remap(
            cv2.erode(b, self._kernel),
            pos,
            None,
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        floor = cv2.erode(a, self._kernel)
        photo = cv2.absdiff(floor, warped).astype(np.float32)
        # Textured areas align worse at this scale: their tolerance grows with the gradient.
        grad = cv2.morphologyEx(floor, cv2.MORPH_GRADIENT, self._kernel).astype(np.float32)
        photo -= self.photo_grad * grad
        h, w = a.shape
        # Up to one small pixel outside the frame is fine (the warp replicates the border).
        inside = (pos[..., 0] >= -1) & (pos[..., 0] <= w) & (pos[..., 1] >= -1)
        inside &= pos[..., 1] <= h
        ok = ((fb <= self.fb_tol_small) & (photo <= self.photo_tol) & inside).astype(np.uint8)
        return cv2.erode(ok, self._kernel)  # distrust the border of every failed region

    def align_pair(self, a: np.ndarray, b: np.ndarray) -> PairAlignment:
        """Flows both ways between small greys ``a`` and ``b`` and their trust masks."""
        f_ab = self.flow(a, b)
        f_ba = self.flow(b, a)
        return PairAlignment(
            f_ab,
            f_ba,
            self._trusted(a, b, f_ab, f_ba),
            self._trusted(b, a, f_ba, f_ab),
        )

    def misaligned(self, a: np.ndarray, b: np.ndarray) -> float:
        """Share of the small grid where ``b`` does not align onto ``a`` (the scene-cut
        test: :meth:`PairAlignment.bad_fraction` of :meth:`align_pair`, one trust mask)."""
        ok = self._trusted(a, b, self.flow(a, b), self.flow(b, a))
        return 1.0 - cv2.countNonZero(ok) / ok.size

    def coords(self, flow_small: np.ndarray) -> np.ndarray:
        """``(H, W, 2)`` float32 (x, y) position in the neighbour of every centre pixel,
        from the small-grid flow centre -> neighbour (one bilinear upsampling of the
        absolute positions; pixel centres line up)."""
        pos = (self._grid_small + 0.5) * self._scale - 0.5 + flow_small * self._scale
        return cv2.resize(pos, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def motion(self, flow_small: np.ndarray, reference: float) -> np.ndarray:
        """Small-grid uint8 0-255: local flow magnitude (full-resolution pixels, max over a
        5x5 small-grid neighbourhood) relative to ``reference``, capped at 1 (255)."""
        fx, fy = cv2.split(flow_small)
        mag = cv2.max(cv2.absdiff(fx, 0), cv2.absdiff(fy, 0))
        mag = np.minimum(mag * (max(self.sx, self.sy) * 255.0 / reference), 255.0)
        mag = mag.astype(np.uint8)
        return cv2.dilate(mag, np.ones((5, 5), np.uint8))

    def upsample_mask(self, mask_small: np.ndarray) -> np.ndarray:
        """Small-grid trust mask -> ``(H, W)`` uint8 mask (nearest neighbour)."""
        return cv2.resize(mask_small, (self.width, self.height), interpolation=cv2.INTER_NEAREST)
