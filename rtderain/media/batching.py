"""Running an engine on frames: :func:`derain_frames`, the one place every job calls one.

Frames are numpy ``(N, H, W, 3)`` RGB, ``uint8`` or ``uint16``; the conversions to model
tensors and the padding are :mod:`rtderain.media.tensors`.
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
