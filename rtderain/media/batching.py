"""Running an engine on frames: :func:`derain_frames`, the one place every job calls one,
and :func:`derain_planes`, its YUV-native twin for luma networks.

Frames are numpy ``(N, H, W, 3)`` RGB, ``uint8`` or ``uint16``, or (for
:func:`derain_planes`) a decoder's 8-bit 4:2:0 planes; the conversions to model tensors
and the padding are :mod:`rtderain.media.tensors`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from rtderain.backends.base import Engine, FrameEngine
from rtderain.media.tensors import from_tensor, pad_frames, run_padded, to_tensor


def derain_frames(engine: Engine, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """Run ``engine`` on frames of one size: ``(H, W, 3)`` RGB uint8/uint16 each ->
    ``(N, H, W, 3)`` de-rained, same dtype.

    8-bit frames go to the engine's ``infer_frames`` when it has one (uint8 in and out,
    normalised inside its graph); other frames, and engines without it, go through
    :func:`to_tensor` -> ``engine.infer`` -> :func:`from_tensor`. Both pad to
    ``engine.multiple`` and crop back.
    """
    return submit_frames(engine, frames)()


def submit_frames(
    engine: Engine, frames: np.ndarray | Sequence[np.ndarray]
) -> Callable[[], np.ndarray]:
    """:func:`derain_frames`, split in two: queue the batch now, get it by calling the
    result. An engine with ``submit_frames`` (the CUDA wrapper) returns at once and
    overlaps this batch's upload and compute with the previous batch's download, so a
    caller that submits batch k+1 before collecting batch k keeps the GPU busy; any other
    engine runs here and the call returns the finished frames.
    """
    first = frames[0]
    if first.dtype == np.uint8 and hasattr(engine, "submit_frames"):
        return engine.submit_frames(frames).result
    out = _derain_now(engine, frames)
    return lambda: out


def _derain_now(engine: Engine, frames: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    first = frames[0]
    if first.dtype == np.uint8 and isinstance(engine, FrameEngine):
        batch, (h, w) = pad_frames(frames, engine.multiple)
        out = engine.infer_frames(batch)
        if out.shape[1:3] != (h, w):
            out = np.ascontiguousarray(out[:, :h, :w])
        return out
    x = to_tensor(frames, engine.device)
    with torch.inference_mode():
        y = run_padded(engine.infer, x, engine.multiple)
    return from_tensor(y, first.dtype)


def derain_planes(
    engine: Engine, frames: Sequence[np.ndarray], full_range: bool
) -> Sequence[np.ndarray]:
    """De-rain 8-bit 4:2:0 frames of one size in their own planes, in place: each is an
    I420 array ``(3H/2, W)`` uint8 (Y, then U, then V, as PyAV's ``yuv420p``
    ``to_ndarray``); only its Y rows change. ``engine`` runs a luma network's Y planes
    (``infer_planes``, :class:`rtderain.backends.base.PlaneEngine`); ``full_range``: the
    planes are full range (``yuvj420p``), else limited. Returns ``frames``.

    Grey rain changes Y alone, so the chroma planes are never read: no conversion to RGB
    and back, no rounding of U and V, the frame's colour matrix irrelevant.
    """
    h = frames[0].shape[0] * 2 // 3
    w = frames[0].shape[1]
    batch, _ = pad_frames([f[:h] for f in frames], engine.multiple)
    out = engine.infer_planes(batch, full_range)  # type: ignore[attr-defined]
    for frame, y in zip(frames, out, strict=True):
        frame[:h] = y[:h, :w]
    return frames
