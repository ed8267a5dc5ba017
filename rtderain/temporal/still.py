"""Still-camera fusion: where the camera does not move, rain is removed by a temporal minimum.

Rain only brightens and falls independently in every frame, so on a still camera the
minimum over a few frames of the *rainy* input at one pixel is the clean background (the
second-model held-out clips: 5-frame minimum ~46 dB against ~28 dB per frame). Moving
objects (and a camera that moves a little after all) break that. The guard: split the
neighbours into two disjoint groups (window: past and future) and take the minimum rainy
luma of each; rain is independent per frame, so on static background both minima are the
background and agree; where something moved, they differ. Pixels where they differ by more
than ``tol`` (thin specks of coincident rain ignored, the rest dilated) keep the per-frame
result; the others take the per-channel minimum of all the rainy frames.

Frames are ``(H, W, 3)`` RGB of one dtype (uint8 or uint16), or ``(H, W)`` luma planes (a
luma network's Y: grey rain changes Y alone); lumas ``(H, W)`` same dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import cv2
import numpy as np

from rtderain.temporal.align import luma

_KERNEL = np.ones((3, 3), np.uint8)


@lru_cache(maxsize=4)
def _window(size: tuple[int, int]) -> np.ndarray:
    return cv2.createHanningWindow(size, cv2.CV_32F)


PROBE = 360  # phase correlation runs on at most a centred PROBE x PROBE half-res crop


def global_shift(a: np.ndarray, b: np.ndarray) -> float:
    """Largest component (full-resolution pixels) of the global translation between two
    ``(H, W)`` lumas, by phase correlation at half resolution (Hanning window) over at most
    a centred :data:`PROBE` square of it (the whole half-res frame up to 720x720 pixels;
    at 1280x720 a crop gives the same estimates within 0.03 px at half the cost; a
    coarser grid would not: at quarter resolution a 0.25 px shift reads 0.02-0.27)."""
    h, w = a.shape
    f = 2 if min(h, w) >= 64 else 1
    size = (max(1, w // f), max(1, h // f))
    cw, ch = min(size[0], PROBE), min(size[1], PROBE)
    x0, y0 = (size[0] - cw) // 2, (size[1] - ch) // 2
    if f == 1 or (h % 2 == 0 and w % 2 == 0):
        # An exact 2x area reduction averages aligned 2x2 blocks, so the probe's crop of
        # the reduced frame is the reduction of the crop at twice the offset: reduce only
        # that (at 1080p a 720x720 square, not the whole frame). Same values to the bit.
        sa, sb = (cv2.resize(x[f * y0:f * (y0 + ch), f * x0:f * (x0 + cw)], (cw, ch),
                             interpolation=cv2.INTER_AREA).astype(np.float32) for x in (a, b))
    else:  # an odd side: the reduction is not blockwise, reduce the whole frame first
        sa, sb = (np.ascontiguousarray(cv2.resize(x, size, interpolation=cv2.INTER_AREA)[
            y0:y0 + ch, x0:x0 + cw]).astype(np.float32) for x in (a, b))
    (dx, dy), _ = cv2.phaseCorrelate(sa, sb, _window((cw, ch)))
    return max(abs(dx), abs(dy)) * f


def fuse_still(
    centre: np.ndarray,
    rainy: np.ndarray,
    groups: Sequence[Sequence[tuple[np.ndarray, np.ndarray]]],
    *,
    tol: float,
    blob: int,
    guard: int,
    max_shift: float,
    centre_luma: np.ndarray | None = None,
    agree: bool = False,
) -> np.ndarray | None:
    """Fused frame for one centre of a still camera; ``None`` if the camera moved.

    Args:
        centre: per-frame de-rained frame ``(H, W, 3)``; ``rainy`` its rainy input.
        groups: two disjoint groups of neighbours (window: the past and the future), each a
            list of ``(rainy, rainy_luma)``, unaligned (the camera is still).
        tol: largest difference (frame's own scale) between the two groups' minimum rainy
            luma for a pixel to count as static background.
        blob: disagreement specks thinner than this square are ignored (rain falling on
            the same pixel in every frame of a group); 1 = off.
        guard: disagreement is dilated by a square of this side (edges of moving objects).
        max_shift: the camera counts as still when the global shift between the two
            group minima (rain mostly gone there, so phase correlation is not misled by
            it; :func:`global_shift`) is at most this many pixels.
        centre_luma: the centre's rainy luma: when given, the camera counts as still only
            if it also lies within ``max_shift`` of the first group's minimum (causal
            mode and a window's ends, where both groups lie on one side of the centre: a
            camera that has just started or stopped moving shows between them only by a
            fraction of a pixel).
        agree: where the two group minima differ but ``centre`` (the de-rained frame)
            matches the darker of them within ``tol``, the difference was rain left in one
            group's minimum, not something that moved: the pixel counts as static
            (window mode; dense rain leaves such specks almost everywhere).
    Returns:
        the layout and dtype of ``centre``: per channel, the minimum of the rainy values
        of the centre and of every neighbour where the two group minima agree, else
        ``centre``.
    """
    if len(groups) != 2 or not all(groups):
        return centre
    mins = [_minimum([luma for _, luma in group]) for group in groups]
    if global_shift(mins[0], mins[1]) > max_shift:
        return None
    if centre_luma is not None and global_shift(centre_luma, mins[0]) > max_shift:
        return None
    differ = (cv2.absdiff(mins[0], mins[1]) > tol).astype(np.uint8)
    if agree:
        centre_y = luma(centre)
        rain_only = cv2.absdiff(centre_y, cv2.min(mins[0], mins[1])) <= tol
        differ[rain_only] = 0
    if blob > 1:  # coincident rain makes thin specks; moving objects make blobs
        differ = cv2.morphologyEx(differ, cv2.MORPH_OPEN, np.ones((blob, blob), np.uint8))
    if guard > 1:
        differ = cv2.dilate(differ, np.ones((guard, guard), np.uint8))
    use = cv2.compare(differ, 0, cv2.CMP_EQ)  # 255 on static background
    if cv2.countNonZero(use) == 0:
        return centre
    low = _minimum([rainy] + [nb_rainy for group in groups for nb_rainy, _ in group])
    cv2.copyTo(centre, cv2.bitwise_not(use), low)  # low is new: the output, in place
    return low


def _minimum(planes: Sequence[np.ndarray]) -> np.ndarray:
    """Per-element minimum of one or more same-shape arrays, as a new array."""
    if len(planes) == 1:
        return planes[0].copy()
    low = cv2.min(planes[0], planes[1])
    for plane in planes[2:]:
        cv2.min(low, plane, dst=low)
    return low
