"""Temporal metrics for de-rained video: flow-based warping error and flicker.

Both metrics run frame by frame (accumulators with O(1 frame) memory), so long sequences
never have to be held in memory. Frames are uint8 ``(H, W, 3)`` RGB numpy arrays.

* **Warping error** (W.-S. Lai et al., "Learning Blind Video Temporal Consistency", ECCV
  2018; reference code ``phoenix104104/fast_blind_video_consistency``,
  ``evaluate_WarpError.py``): the output's frame ``t-1`` is warped onto frame ``t`` with the
  optical flow of a *reference* sequence (ground truth when there is one, else the rainy
  input), and the squared RGB difference in ``[0, 1]`` is averaged over channels and
  non-occluded pixels, then over the pairs ``t = 1 .. N-1``.
* **Flicker**: the mean over pixels of the per-pixel temporal standard deviation of luma
  Y (0-255 scale, population std), optionally on a mask such as the static background.

See ``docs/evaluation.md``, section "Temporal metrics".
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import cv2
import numpy as np

from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

#: Pixels whose reference temporal std of Y (0-255 levels) is below this are "static".
DEFAULT_STATIC_THRESHOLD = 2.0

# Forward-backward consistency (Ruder et al., GCPR 2016, as in Lai et al.'s utils).
_FB_REL = 0.01
_FB_ABS = 0.5
# Motion boundary test on the gradients of the flow used for warping.
_MB_REL = 0.01
_MB_ABS = 0.002
# MATLAB rgb2ycbcr's Y row for 0-255 RGB (offset 16 added separately).
_Y_WEIGHTS = np.array([[65.481, 128.553, 24.966]], dtype=np.float32) / 255.0


def _check_frame(frame: object, index: int, name: str) -> np.ndarray:
    """Validate one uint8 ``(H, W, 3)`` RGB frame; raise RTDerainError naming ``index``."""
    if not isinstance(frame, np.ndarray):
        raise RTDerainError(f"{name} frame {index}: expected a numpy array, got {type(frame)!r}")
    if frame.dtype != np.uint8:
        raise RTDerainError(f"{name} frame {index}: expected dtype uint8, got {frame.dtype}")
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 2 or frame.shape[1] < 2:
        raise RTDerainError(
            f"{name} frame {index}: expected shape (H, W, 3) RGB with H, W >= 2, got {frame.shape}"
        )
    return frame


def _check_size(frame: np.ndarray, expected: tuple[int, int], index: int, name: str) -> None:
    """Raise RTDerainError if ``frame``'s (H, W) differs from ``expected``."""
    if frame.shape[:2] != expected:
        raise RTDerainError(
            f"{name} frame {index}: size {frame.shape[1]}x{frame.shape[0]} (WxH) differs from "
            f"{expected[1]}x{expected[0]}"
        )


def _luma(frame: np.ndarray) -> np.ndarray:
    """Y of MATLAB ``rgb2ycbcr`` (BT.601, limited range) as float64 ``(H, W)`` in [16, 235].

    ``frame``: uint8 ``(H, W, 3)`` RGB in 0-255.
    """
    rgb = frame.astype(np.float64)
    return 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0


def _grey(frame: np.ndarray) -> np.ndarray:
    """Luma Y (same formula as :func:`_luma`, float32 maths) rounded to uint8 ``(H, W)``: the
    input DIS needs."""
    y = cv2.transform(frame.astype(np.float32), _Y_WEIGHTS)
    return np.clip(np.rint(y + 16.0), 0, 255).astype(np.uint8)


def _flow_size(h: int, w: int, max_side: int | None) -> tuple[int, int]:
    """(h, w) at which flow is computed: the frame size, or scaled so max(h, w) <= max_side."""
    if max_side is None or max(h, w) <= max_side:
        return h, w
    scale = max_side / max(h, w)
    return max(2, round(h * scale)), max(2, round(w * scale))


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinate grids ``(xx, yy)``, float32 ``(H, W)``."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return xx, yy


def _warp(
    image: np.ndarray, flow: np.ndarray, grid: tuple[np.ndarray, np.ndarray], border: int
) -> np.ndarray:
    """Sample ``image`` at ``x + flow(x)`` (bilinear, ``cv2.remap``) with the given border."""
    xx, yy = grid
    return cv2.remap(
        image,
        xx + flow[..., 0],
        yy + flow[..., 1],
        cv2.INTER_LINEAR,
        borderMode=border,
        borderValue=0,
    )


def _occlusion(
    flow: np.ndarray, other: np.ndarray, grid: tuple[np.ndarray, np.ndarray]
) -> np.ndarray:
    """Occlusion mask (bool ``(H, W)``, True = occluded) on the grid of ``flow``.

    ``flow`` maps the current frame to the one being warped (here backward, t -> t-1);
    ``other`` is the opposite flow (t-1 -> t). As Lai et al.'s ``detect_occlusion``
    (after Ruder et al. 2016): ``other`` is warped onto the current grid with zero padding
    (so samples from outside the frame fail the test), then a pixel is occluded when
    ``|flow + other_w|^2 > 0.01 (|flow|^2 + |other_w|^2) + 0.5`` or it is on a motion boundary,
    ``|grad u|^2 + |grad v|^2 > 0.01 |flow|^2 + 0.002`` (forward differences, last row/column
    zero).
    """
    other_w = _warp(other, flow, grid, cv2.BORDER_CONSTANT)
    total = flow + other_w
    mag_total = total[..., 0] ** 2 + total[..., 1] ** 2
    mag_flow = flow[..., 0] ** 2 + flow[..., 1] ** 2
    mag_other = other_w[..., 0] ** 2 + other_w[..., 1] ** 2
    inconsistent = mag_total > _FB_REL * (mag_flow + mag_other) + _FB_ABS

    grad = np.zeros(flow.shape[:2], dtype=np.float32)
    for c in range(2):
        du = np.zeros(flow.shape[:2], dtype=np.float32)
        dv = np.zeros(flow.shape[:2], dtype=np.float32)
        du[:, :-1] = flow[:, :-1, c] - flow[:, 1:, c]
        dv[:-1, :] = flow[:-1, :, c] - flow[1:, :, c]
        grad += du**2 + dv**2
    boundary = grad > _MB_REL * mag_flow + _MB_ABS
    return inconsistent | boundary


def _pair_error(cur: np.ndarray, prev_warped: np.ndarray, valid: np.ndarray, n: int) -> float:
    """Lai et al.'s per-pair error: sum of squared RGB differences in [0, 1] over the ``n``
    valid pixels and the channels, divided by (n x 3); 0 when no pixel is valid (their N = 0
    case: the masked sum is 0 and they divide by H*W*C).
    """
    if n == 0:
        return 0.0
    diff = cur.astype(np.float32) - prev_warped
    np.square(diff, out=diff)
    per_pixel = diff[..., 0] + diff[..., 1] + diff[..., 2]
    total = float(np.dot(per_pixel.ravel().astype(np.float64), valid.ravel()))
    return total / (3.0 * n * 255.0**2)


class WarpingError:
    """Streaming warping error (Lai et al., ECCV 2018) of an output against a reference's flow.

    Call :meth:`update` once per frame, in order, with the output (``pred_frame``) and the
    reference (``ref_frame``: the ground truth when there is one, else the rainy input), both
    uint8 ``(H, W, 3)`` RGB, all of one size. For each pair ``(t-1, t)``:

    * flow: OpenCV DIS (``cv2.DISOpticalFlow_create(preset)``, default
      ``DISOPTICAL_FLOW_PRESET_MEDIUM``, OpenCV's other parameters unchanged) on the luma Y of
      the reference rounded to uint8; backward flow ``t -> t-1`` and forward ``t-1 -> t``;
    * with ``flow_max_side`` set and the frame's longer side above it, the reference Y is
      shrunk (``cv2.INTER_AREA``) so its longer side is ``flow_max_side``, and the flows are
      resized back (``cv2.INTER_LINEAR``) and their x/y components scaled by ``W/w``, ``H/h``;
    * the output's frame ``t-1`` is warped onto frame ``t`` with the backward flow
      (``cv2.remap``, bilinear, ``BORDER_REPLICATE``); the occlusion mask is that of
      :func:`_occlusion` (forward-backward check plus motion boundaries);
    * error = sum over non-occluded pixels and the 3 channels of the squared difference of RGB
      in ``[0, 1]``, divided by 3 x the non-occluded count (a mean over channels, as the
      reference code); 0 for a pair with every pixel occluded (as the reference code).

    Lai et al. warp frame ``t`` back onto ``t-1`` with the forward flow; this is the mirror
    image (same definition with time reversed), which needs only the previous frame.

    The reference's own warping error (same flow, same mask) is accumulated too, so
    ``relative_warping_error = warping_error - reference_warping_error`` (a difference, in the
    same units; 0 means "as temporally consistent as the reference", negative is smoother than
    the reference). With a rainy-input reference it compares the output with the input.

    Memory: one previous output frame, reference frame and reference Y. One frame in total
    gives no pair: every error is NaN.
    """

    def __init__(
        self,
        flow_max_side: int | None = None,
        preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM,
    ) -> None:
        if flow_max_side is not None and flow_max_side < 8:
            raise RTDerainError(f"flow_max_side must be >= 8 or None, got {flow_max_side}")
        self.flow_max_side = flow_max_side
        self._dis = cv2.DISOpticalFlow_create(preset)
        self._size: tuple[int, int] | None = None
        self._grid: tuple[np.ndarray, np.ndarray] | None = None
        self._prev_pred: np.ndarray | None = None
        self._prev_ref: np.ndarray | None = None
        self._prev_grey: np.ndarray | None = None
        self._frames = 0
        self._sum_pred = 0.0
        self._sum_ref = 0.0
        self._sum_valid = 0.0

    def _flows(self, prev_grey: np.ndarray, cur_grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(backward t -> t-1, forward t-1 -> t) flows, float32 ``(H, W, 2)`` in pixels (x, y)."""
        h, w = cur_grey.shape
        fh, fw = _flow_size(h, w, self.flow_max_side)
        if (fh, fw) != (h, w):
            prev_grey = cv2.resize(prev_grey, (fw, fh), interpolation=cv2.INTER_AREA)
            cur_grey = cv2.resize(cur_grey, (fw, fh), interpolation=cv2.INTER_AREA)
        backward = self._dis.calc(cur_grey, prev_grey, None)
        forward = self._dis.calc(prev_grey, cur_grey, None)
        if (fh, fw) != (h, w):
            scale = np.array([w / fw, h / fh], dtype=np.float32)
            backward = cv2.resize(backward, (w, h), interpolation=cv2.INTER_LINEAR) * scale
            forward = cv2.resize(forward, (w, h), interpolation=cv2.INTER_LINEAR) * scale
        return backward, forward

    def update(self, pred_frame: np.ndarray, ref_frame: np.ndarray) -> None:
        """Add frame ``t``: output and reference, uint8 ``(H, W, 3)`` RGB of one size."""
        index = self._frames
        pred = _check_frame(pred_frame, index, "output")
        ref = _check_frame(ref_frame, index, "reference")
        if self._size is None:
            self._size = pred.shape[:2]
            self._grid = _grid(*self._size)
        _check_size(pred, self._size, index, "output")
        _check_size(ref, self._size, index, "reference")
        grey = _grey(ref)
        if self._prev_grey is not None:
            backward, forward = self._flows(self._prev_grey, grey)
            valid = ~_occlusion(backward, forward, self._grid)
            warped_pred = _warp(
                self._prev_pred.astype(np.float32), backward, self._grid, cv2.BORDER_REPLICATE
            )
            warped_ref = _warp(
                self._prev_ref.astype(np.float32), backward, self._grid, cv2.BORDER_REPLICATE
            )
            n = int(np.count_nonzero(valid))
            self._sum_pred += _pair_error(pred, warped_pred, valid, n)
            self._sum_ref += _pair_error(ref, warped_ref, valid, n)
            self._sum_valid += n / valid.size
        self._prev_pred = pred.copy()
        self._prev_ref = ref.copy()
        self._prev_grey = grey
        self._frames += 1

    def result(self) -> dict[str, float | int]:
        """Averages over the pairs so far.

        Keys: ``warping_error`` (output), ``reference_warping_error`` (reference, same flow
        and mask), ``relative_warping_error`` (their difference), all mean squared RGB
        differences in ``[0, 1]`` units; ``non_occluded_fraction`` (mean share of pixels
        used); ``pairs`` and ``frames`` (ints). Floats are NaN when there is no pair yet.
        """
        pairs = max(self._frames - 1, 0)
        if pairs == 0:
            nan = float("nan")
            pred = ref = valid = nan
        else:
            pred, ref, valid = (
                self._sum_pred / pairs,
                self._sum_ref / pairs,
                self._sum_valid / pairs,
            )
        return {
            "warping_error": pred,
            "reference_warping_error": ref,
            "relative_warping_error": pred - ref,
            "non_occluded_fraction": valid,
            "pairs": pairs,
            "frames": self._frames,
        }


def warping_error(
    pred_frames: Iterable[np.ndarray],
    ref_frames: Iterable[np.ndarray],
    flow_max_side: int | None = None,
) -> float:
    """Warping error of ``pred_frames`` with the flow of ``ref_frames`` (see WarpingError).

    Both are iterables of uint8 ``(H, W, 3)`` RGB frames (or ``(N, H, W, 3)`` arrays) of the
    same length. Returns the mean squared RGB difference in ``[0, 1]`` units; NaN for a
    single frame.
    """
    acc = WarpingError(flow_max_side=flow_max_side)
    preds, refs = iter(pred_frames), iter(ref_frames)
    index = 0
    sentinel = object()
    while True:
        pred, ref = next(preds, sentinel), next(refs, sentinel)
        if pred is sentinel and ref is sentinel:
            break
        if pred is sentinel or ref is sentinel:
            short = "output" if pred is sentinel else "reference"
            raise RTDerainError(f"{short} sequence ended at frame {index}, the other did not")
        acc.update(pred, ref)
        index += 1
    if index == 0:
        raise RTDerainError("warping_error: empty sequences")
    return float(acc.result()["warping_error"])


class Flicker:
    """Streaming per-pixel temporal mean/variance of luma Y (Welford), O(1 frame) memory.

    :meth:`update` takes uint8 ``(H, W, 3)`` RGB frames of one size; Y is MATLAB
    ``rgb2ycbcr``'s (0-255 scale, 16-235 for in-range RGB). Flicker = mean over the pixels of
    ``mask`` (bool ``(H, W)``, default all) of the population standard deviation of Y over the
    frames seen. A mask can be given here or to :meth:`result` (which wins).
    """

    def __init__(self, mask: np.ndarray | None = None) -> None:
        self.mask = mask
        self._n = 0
        self._mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    def update(self, frame: np.ndarray) -> None:
        """Add one uint8 ``(H, W, 3)`` RGB frame."""
        _check_frame(frame, self._n, "flicker")
        y = _luma(frame)
        if self._mean is None:
            self._mean = np.zeros_like(y)
            self._m2 = np.zeros_like(y)
        _check_size(frame, self._mean.shape, self._n, "flicker")
        self._n += 1
        delta = y - self._mean
        self._mean += delta / self._n
        self._m2 += delta * (y - self._mean)

    @property
    def frames(self) -> int:
        """Number of frames added."""
        return self._n

    def std_map(self) -> np.ndarray:
        """Per-pixel population std of Y over the frames, float64 ``(H, W)`` in Y levels."""
        if self._m2 is None:
            raise RTDerainError("flicker: no frames were added")
        return np.sqrt(np.maximum(self._m2, 0.0) / self._n)

    def static_mask(self, threshold: float = DEFAULT_STATIC_THRESHOLD) -> np.ndarray:
        """Bool ``(H, W)``: pixels whose temporal std of Y is below ``threshold`` levels.

        Feed the *reference* (ground truth, else rainy input) to get its static background.
        """
        return self.std_map() < threshold

    def result(self, mask: np.ndarray | None = None) -> dict[str, float | int]:
        """Keys: ``flicker`` (mean std of Y in 0-255 levels over the mask; NaN if the mask is
        empty), ``pixels`` (pixels in the mask) and ``frames``."""
        std = self.std_map()
        mask = self.mask if mask is None else mask
        if mask is not None:
            mask = np.asarray(mask)
            if mask.dtype != np.bool_ or mask.shape != std.shape:
                raise RTDerainError(
                    f"flicker mask: expected bool {std.shape}, got {mask.dtype} {mask.shape}"
                )
            values = std[mask]
        else:
            values = std.ravel()
        if values.size == 0:
            log.warning("flicker: the mask selects no pixel; flicker is NaN")
            value = float("nan")
        else:
            value = float(values.mean())
        return {"flicker": value, "pixels": int(values.size), "frames": self._n}


def flicker(frames: Iterable[np.ndarray], mask: np.ndarray | None = None) -> float:
    """Mean temporal std of Y (0-255 levels) of uint8 ``(H, W, 3)`` RGB frames (see Flicker)."""
    acc = Flicker(mask)
    for frame in frames:
        acc.update(frame)
    return float(acc.result()["flicker"])


def static_background_mask(
    frames: Iterable[np.ndarray], threshold: float = DEFAULT_STATIC_THRESHOLD
) -> np.ndarray:
    """Bool ``(H, W)`` static-background mask of a reference clip (uint8 RGB frames).

    True where the reference's temporal population std of Y is below ``threshold`` levels
    (default 2). In one streaming pass, use ``Flicker.static_mask`` on a reference
    accumulator instead.
    """
    acc = Flicker()
    for frame in frames:
        acc.update(frame)
    if acc.frames == 0:
        raise RTDerainError("static_background_mask: no frames")
    if math.isnan(threshold) or threshold <= 0:
        raise RTDerainError(f"static_background_mask: threshold must be > 0, got {threshold}")
    return acc.static_mask(threshold)
