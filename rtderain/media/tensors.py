"""Frame arrays <-> model tensors and padding to the model's multiple.

Frames are numpy ``(N, H, W, 3)`` RGB, ``uint8`` (8-bit sources) or ``uint16`` (deeper
sources, full 16-bit scale). Model tensors are ``(N, 3, H, W)`` float32 in [-1, 1], RGB.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def _peak(dtype: np.dtype | torch.dtype) -> float:
    return 65535.0 if dtype in (np.uint16, torch.uint16, np.dtype(np.uint16)) else 255.0


def to_tensor(
    frames: np.ndarray | Sequence[np.ndarray], device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8/uint16 RGB -> ``(N, 3, H, W)`` float32 in [-1, 1] on ``device``.

    ``frames`` is one array or a sequence of ``(H, W, 3)`` arrays of one size and dtype
    (converted straight into the batch: no stacking copy). The result is a channels-last
    view (no transpose copy), which convolutions prefer. On the CPU one OpenCV pass per
    frame converts and scales; elsewhere the integer frames are moved first and normalised
    on the device (small transfers).
    """
    device = torch.device(device)
    first = frames[0]
    n, (h, w, _) = len(frames), first.shape
    peak = _peak(first.dtype)
    if device.type == "cpu":
        out = np.empty((n, h, w, 3), np.float32)
        for i, frame in enumerate(frames):
            flat = np.ascontiguousarray(frame).reshape(h, w * 3)
            cv2.addWeighted(
                flat, 2.0 / peak, flat, 0.0, -1.0, dst=out[i].reshape(h, w * 3), dtype=cv2.CV_32F
            )
        return torch.from_numpy(out).permute(0, 3, 1, 2)
    batch = np.stack(frames) if not isinstance(frames, np.ndarray) else frames
    if batch.dtype == np.uint16:
        batch = batch.astype(np.int32)  # torch has limited uint16 support
    x = torch.from_numpy(np.ascontiguousarray(batch)).to(device, non_blocking=True)
    return x.permute(0, 3, 1, 2).to(torch.float32).mul_(2.0 / peak).sub_(1.0)


def from_tensor(x: torch.Tensor, dtype: np.dtype | type = np.uint8) -> np.ndarray:
    """``(N, 3, H, W)`` float in [-1, 1] -> ``(N, H, W, 3)`` ``dtype`` RGB, rounded and clipped.

    Values must lie in [-1, 1] (every engine's contract); quantisation is one OpenCV pass
    on the CPU, and happens on the tensor's device elsewhere (small transfers back).
    """
    peak = _peak(np.dtype(dtype))
    n, _, h, w = x.shape
    if x.device.type != "cpu":
        y = x.float().mul(peak / 2.0).add_(peak / 2.0 + 0.5).clamp_(0.0, peak)
        y = y.permute(0, 2, 3, 1).to(torch.int32 if dtype == np.uint16 else torch.uint8).cpu()
        return np.ascontiguousarray(y.numpy().astype(dtype, copy=False))
    nhwc = x.float().permute(0, 2, 3, 1).contiguous().numpy().reshape(n * h, w * 3)
    if dtype == np.uint16:
        out = np.clip(nhwc * (peak / 2.0) + (peak / 2.0 + 0.5), 0.0, peak).astype(np.uint16)
    else:  # saturating, rounding; |.| is a no-op for in-range values
        out = cv2.convertScaleAbs(nhwc, alpha=peak / 2.0, beta=peak / 2.0)
    return out.reshape(n, h, w, 3)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Reflect-pad (N, C, H, W) on the bottom/right so H and W are multiples of ``multiple``.

    Returns the padded tensor and the original (H, W) for :func:`crop`. Frames smaller than
    the padding fall back to replicate padding (reflect needs pad < size).
    """
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Undo :func:`pad_to_multiple`."""
    return x[..., : size[0], : size[1]]


def run_padded(infer, x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Pad ``x`` to ``multiple``, run ``infer`` on it, crop the result back."""
    padded, size = pad_to_multiple(x, multiple)
    return crop(infer(padded), size)


def pad_frames(
    frames: np.ndarray | Sequence[np.ndarray], multiple: int, out: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """Stack ``(H, W, 3)`` frames (or ``(H, W)`` planes) into one C-contiguous
    ``(N, H', W', 3)`` (``(N, H', W')``) batch,
    reflect-padded on the bottom/right to multiples of ``multiple`` (as
    :func:`pad_to_multiple`: the edge row/column is not repeated; replicate padding for
    frames smaller than the padding). Returns the batch and the original (H, W).
    ``out``: write into this C-contiguous array of that shape (a pinned staging buffer).
    """
    first = frames[0]
    h, w = first.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    shape = (len(frames), h + ph, w + pw, *first.shape[2:])
    if out is None:
        out = np.empty(shape, first.dtype)
    elif out.shape != shape or out.dtype != first.dtype:
        raise ValueError(f"pad_frames: out is {out.dtype} {out.shape}, needs {shape}")
    border = cv2.BORDER_REFLECT_101 if ph < h and pw < w else cv2.BORDER_REPLICATE
    for i, frame in enumerate(frames):
        if ph or pw:
            cv2.copyMakeBorder(frame, 0, ph, 0, pw, border, dst=out[i])
        else:
            out[i] = frame
    return out, (h, w)
