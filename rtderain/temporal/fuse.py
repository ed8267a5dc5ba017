"""Per-pixel fusion of a de-rained centre frame with its aligned neighbours.

The rule (``docs/temporal.md``): rain only brightens, so a pixel of the rainy centre that is
brighter than the rainy input of *every* trusted aligned neighbour, by more than a margin
that grows with the local gradient (misalignment at edges also makes differences), is
rain. There, and only there, the per-frame output is replaced by the median of the
trusted neighbours' per-frame outputs (capped by the rainy value: the clean scene is never
brighter than the rainy one), with a soft weight. Pixels with fewer than
``min_neighbours`` trusted neighbours, or whose trusted neighbours disagree on the
background by more than ``fill_spread``, keep the per-frame result (motion, occlusion,
cuts).

Detection is dense on luma; the colour fill is computed on the detected pixels only, so
the cost is a few full-resolution single-channel passes per neighbour.

Frames are ``(H, W, 3)`` RGB of one dtype (uint8 or uint16, full scale 65535), or ``(H, W)``
luma planes (a luma network's Y plane: its rain is grey, so Y alone changes); luma planes
``(H, W)`` of the same dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from rtderain.temporal.align import luma

ROW = 1024  # points per packed row (cv2.remap wants sides below 32767)
_KERNEL = np.ones((3, 3), np.uint8)
_GRAD_KERNEL = np.ones((5, 5), np.uint8)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Neighbour:
    """One neighbour aligned onto the centre.

    ``derained``: its per-frame output (the centre's layout); ``rainy_luma``: luma of its rainy
    input ``(H, W)``; ``coords``: ``(H, W, 2)`` float32 (x, y) position in the neighbour of
    every centre pixel; ``ok``: ``(H, W)`` uint8 0/1, where that position is trusted;
    ``side``: -1 past, +1 future (0: unknown).
    """

    derained: np.ndarray
    rainy_luma: np.ndarray
    coords: np.ndarray
    ok: np.ndarray
    side: int = 0


def trusted_median(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Median over axis 0 of ``values`` ``(K, N, C)`` using only entries where ``ok``
    ``(K, N)`` is true (even count: mean of the two middle ones); float32 ``(N, C)``.
    Columns with no trusted entry give NaN."""
    k = values.shape[0]
    v = np.where(ok[..., None], values.astype(np.float32), np.inf)
    v.sort(axis=0)
    count = ok.sum(axis=0)
    lo = np.clip((count - 1) // 2, 0, k - 1)[None, :, None]
    hi = np.clip(count // 2, 0, k - 1)[None, :, None]
    lo_v = np.take_along_axis(v, np.broadcast_to(lo, (1, *v.shape[1:])), axis=0)[0]
    hi_v = np.take_along_axis(v, np.broadcast_to(hi, (1, *v.shape[1:])), axis=0)[0]
    out = 0.5 * (lo_v + hi_v)
    out[count == 0] = np.nan
    return out


def _sample(image: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``image`` at ``coords`` ``(N, 2)`` float32 -> ``(N, C)``."""
    n = len(coords)
    rows = -(-n // ROW)
    packed = np.zeros((rows * ROW, 2), np.float32)
    packed[:n] = coords
    got = cv2.remap(
        image,
        packed.reshape(rows, ROW, 2),
        None,
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return got.reshape(rows * ROW, -1)[:n]


def rain_evidence(
    rainy_luma: np.ndarray,
    derained_luma: np.ndarray,
    neighbours: Sequence[Neighbour],
    grad_weight: float,
    motion: np.ndarray | None = None,
    both_sides: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """``(evidence, count)``: how far the rainy centre luma stands above the brightest
    trusted aligned rainy neighbour, minus ``grad_weight`` x the local (3x3 morphological)
    gradient of the de-rained centre, saturated at 0, same dtype; and the number of trusted
    neighbours per pixel, ``(H, W)`` uint8. ``motion`` (``(H, W)`` uint8, 0-255 = 0-1)
    scales the gradient term per pixel: where nothing moves, alignment cannot err.
    ``both_sides``: where neighbours lie on both sides of the centre, a pixel counts only
    where at least one past and one future neighbour are trusted (count 0 elsewhere)."""
    brightest = np.zeros_like(rainy_luma)
    count = np.zeros(rainy_luma.shape, np.uint8)
    sides = {nb.side for nb in neighbours}
    if both_sides and {-1, 1} <= sides:
        past = [nb for nb in neighbours if nb.side < 0]
        future = [nb for nb in neighbours if nb.side > 0]
        # Either side with no trusted neighbour at a pixel zeroes the count there.
        for group in (past, future):
            seen = group[0].ok.copy()
            for nb in group[1:]:
                cv2.max(seen, nb.ok, dst=seen)
            count = seen if group is past else cv2.min(count, seen)
        both = count
        count = np.zeros(rainy_luma.shape, np.uint8)
    else:
        both = None
    for nb in neighbours:
        warped = cv2.remap(
            nb.rainy_luma, nb.coords, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        ok = nb.ok if warped.dtype == np.uint8 else nb.ok.astype(warped.dtype)
        brightest = cv2.max(brightest, cv2.multiply(warped, ok))
        count = cv2.add(count, nb.ok)
    grad = cv2.morphologyEx(derained_luma, cv2.MORPH_GRADIENT, _GRAD_KERNEL)
    if motion is None:
        margin = cv2.multiply(grad, grad_weight)
    else:
        margin = cv2.multiply(grad, motion.astype(grad.dtype), scale=grad_weight / 255.0)
    evidence = cv2.subtract(cv2.subtract(rainy_luma, brightest), margin)
    if both is not None:
        count = cv2.multiply(count, both)
    return evidence, count


def fuse(
    centre: np.ndarray,
    rainy: np.ndarray,
    neighbours: Sequence[Neighbour],
    *,
    rain_lo: float,
    rain_hi: float,
    grad_weight: float,
    min_neighbours: int,
    streak_width: int,
    motion: np.ndarray | None = None,
    both_sides: bool = False,
    fill_spread: float = 0.0,
) -> np.ndarray:
    """Fused frame for one centre.

    Args:
        centre: the per-frame de-rained frame ``(H, W, 3)`` RGB or ``(H, W)`` luma.
        rainy: its rainy input, same layout and dtype.
        neighbours: the aligned neighbours.
        rain_lo, rain_hi: soft ramp on the evidence (:func:`rain_evidence`), in levels of
            the frame's own scale (the caller scales 8-bit thresholds for uint16): no change
            at or below ``rain_lo``, full replacement from ``rain_hi``.
        grad_weight: see :func:`rain_evidence`.
        min_neighbours: pixels with fewer trusted neighbours are left alone.
        streak_width: detected regions at least this wide (a ``streak_width`` square fits)
            are not rain but something that moved (occlusion): they keep the per-frame
            result, and so does a 1-pixel ring around them.
        motion, both_sides: see :func:`rain_evidence`.
        fill_spread: where the trusted neighbours' de-rained lumas at a detected pixel
            spread over more than this (same scale as ``rain_lo``), they do not show one
            background (a moving edge, an occlusion one neighbour missed): the pixel keeps
            the per-frame result. 0 = no such check.
    Returns:
        ``centre``'s layout and dtype; ``centre`` itself when nothing is detected.
    """
    if len(neighbours) < min_neighbours or not neighbours:
        return centre
    rainy_luma = luma(rainy)
    evidence, count = rain_evidence(
        rainy_luma,
        luma(centre),
        neighbours,
        grad_weight,
        motion,
        both_sides,
    )
    mask = ((evidence > rain_lo) & (count >= min_neighbours)).astype(np.uint8)
    blobs = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((streak_width, streak_width), np.uint8))
    mask[cv2.dilate(blobs, _KERNEL) > 0] = 0
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return centre
    planes = 1 if centre.ndim == 2 else centre.shape[2]
    own = centre.reshape(-1, planes).take(idx, axis=0)
    values, oks = [], []
    for nb in neighbours:
        values.append(_sample(nb.derained, nb.coords.reshape(-1, 2).take(idx, axis=0)))
        oks.append(nb.ok.reshape(-1).take(idx) > 0)
    ok, values = np.stack(oks), np.stack(values)
    enough = ok.sum(axis=0) >= min_neighbours
    if fill_spread > 0:
        lum = values[..., 0].astype(np.float32) if planes == 1 else values.astype(
            np.float32) @ _LUMA
        spread = np.where(ok, lum, -np.inf).max(axis=0) - np.where(ok, lum, np.inf).min(axis=0)
        enough &= spread <= fill_spread
    if not enough.any():
        return centre
    idx, own, ok = idx[enough], own[enough], ok[:, enough]
    fill = trusted_median(values[:, enough], ok)
    own = own.astype(np.float32)
    cap = rainy.reshape(-1, planes).take(idx, axis=0).astype(np.float32)
    fill = np.minimum(fill, cap)  # the clean scene is never brighter than the rainy one
    e = evidence.reshape(-1).take(idx).astype(np.float32)
    weight = np.clip((e - rain_lo) / (rain_hi - rain_lo), 0.0, 1.0)[:, None]
    peak = 65535.0 if centre.dtype == np.uint16 else 255.0
    new = np.clip(np.rint(own + weight * (fill - own)), 0, peak).astype(centre.dtype)
    out = centre.copy()
    out.reshape(-1, planes)[idx] = new
    return out
