"""Bounded sliding windows over a clip, and the luminance helpers the baselines share.

Edge policy (documented for every windowed baseline): the window of ``size`` frames is
centred on the current frame and *slides inward* at the clip ends, so frame 0 sees frames
``0 .. size-1`` and the last frame the last ``size`` frames; clips shorter than ``size``
give every frame the whole clip. Only ``size + size // 2`` frames are held at once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from rtderain.errors import RTDerainError

# MATLAB rgb2ycbcr luma weights (see rtderain.evaluation.metrics.rgb_to_y), without the +16 offset.
Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float32) / 255.0


def luma(frames: np.ndarray) -> np.ndarray:
    """``(..., 3)`` RGB (0-255) -> ``(...)`` float32 luminance on the 0-255 RGB scale.

    BT.601 weights 0.299/0.587/0.114 (``rgb2ycbcr``'s Y without offset and studio scaling).
    """
    return frames.astype(np.float32) @ (Y_WEIGHTS * (255.0 / 219.0))


def check_frame(frame: np.ndarray, index: int, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    """Validate one input frame (uint8 (H, W, 3), same shape as the clip's first)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3:
        raise RTDerainError(
            f"frame {index}: expected a uint8 (H, W, 3) RGB array, got "
            f"{getattr(frame, 'dtype', type(frame).__name__)} {getattr(frame, 'shape', '')}"
        )
    if frame.shape[2] != 3:
        raise RTDerainError(f"frame {index}: expected 3 channels, got shape {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise RTDerainError(
            f"frame {index}: size {frame.shape[1]}x{frame.shape[0]} differs from the clip's "
            f"{shape[1]}x{shape[0]} (a video baseline needs one frame size per clip)"
        )
    return frame.shape


def sliding_windows(frames: Iterable[np.ndarray], size: int) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(window, centre)`` per input frame, in order.

    ``window``: uint8 ``(K, H, W, 3)`` stack of consecutive frames, ``K = min(size, N)``;
    ``centre``: position of the current frame in ``window``. Edge policy in the module doc.
    """
    if size < 1:
        raise RTDerainError(f"window size must be >= 1, got {size}")
    radius = size // 2
    buf: deque[tuple[int, np.ndarray]] = deque()
    shape = None
    nxt = 0  # next frame index to emit

    def emit(n: int, total: int | None) -> tuple[np.ndarray, int]:
        start = max(0, n - radius)
        if total is not None:
            start = max(0, min(start, total - size))
        end = start + size if total is None else min(total, start + size)
        while buf and buf[0][0] < min(start, n - 2 * radius):
            buf.popleft()
        window = [f for i, f in buf if start <= i < end]
        return np.stack(window), n - start

    count = 0
    for count, frame in enumerate(frames, start=1):
        shape = check_frame(frame, count - 1, shape)
        buf.append((count - 1, frame))
        idx = count - 1
        # Frame n is ready once frames up to its window end (n + radius, or size-1 early) exist.
        while nxt <= idx and idx >= max(nxt + radius, size - 1):
            yield emit(nxt, None)
            nxt += 1
    while nxt < count:
        yield emit(nxt, count)
        nxt += 1
