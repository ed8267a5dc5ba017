"""Host <-> GPU frame transfers for the CUDA path: uint8 over the bus, maths on the device.

Frames cross PCIe as uint8 (4x less than float32) from a reused pinned (page-locked) host
buffer, with a non-blocking copy on a side stream; the conversion to float [-1, 1] runs on
the GPU. Downloads do the reverse: round and clamp on the GPU, copy uint8 into pinned memory.
On a CPU device the same class works without pinning (identical numbers).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


class FrameTransfer:
    """Reusable pinned staging buffers for batches of RGB frames.

    Args:
        device: the engine's device (``cuda:N`` uses pinned memory; ``cpu`` does not).
    """

    def __init__(self, device: str | torch.device) -> None:
        self.device = torch.device(device)
        self.pinned = self.device.type == "cuda"
        self._up: torch.Tensor | None = None
        self._down: torch.Tensor | None = None
        self._stream = torch.cuda.Stream(self.device) if self.pinned else None

    def _flat(self, current: torch.Tensor | None, size: int) -> torch.Tensor:
        """A flat uint8 host buffer of at least ``size`` bytes (grown, never shrunk)."""
        if current is None or current.numel() < size:
            current = torch.empty(size, dtype=torch.uint8, pin_memory=self.pinned)
        return current

    def upload(self, frames: np.ndarray) -> torch.Tensor:
        """(N, H, W, 3) uint8 RGB -> (N, 3, H, W) float32 in [-1, 1] on ``device``."""
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3:
            raise ValueError(
                f"expected (N, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}"
            )
        if self._stream is not None:
            self._stream.synchronize()  # the previous upload has left the staging buffer
        self._up = self._flat(self._up, frames.size)
        staging = self._up[: frames.size].view(frames.shape)
        staging.numpy()[...] = frames
        if self._stream is None:
            x = staging
        else:
            with torch.cuda.stream(self._stream):
                x = staging.to(self.device, non_blocking=True)
            torch.cuda.current_stream(self.device).wait_stream(self._stream)
            x.record_stream(torch.cuda.current_stream(self.device))
        return x.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)

    def download(self, x: torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) float in [-1, 1] on ``device`` -> (N, H, W, 3) uint8 RGB (a copy)."""
        y = ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
        y = y.permute(0, 2, 3, 1).contiguous()
        self._down = self._flat(self._down, y.numel())
        staging = self._down[: y.numel()].view(tuple(y.shape))
        staging.copy_(y, non_blocking=self.pinned)
        if self.pinned:
            torch.cuda.current_stream(self.device).synchronize()
        return staging.numpy().copy()


class CudaFrameEngine:
    """Gives a GPU engine ``infer_frames``: 8-bit frames go up as uint8 from pinned memory,
    are normalised, de-rained and quantised on the GPU, and come back as uint8.

    Wraps any :class:`rtderain.backends.base.Engine` (``create_engine`` wraps every CUDA
    engine); other attributes (``selection``, ``artifacts``, ...) are the wrapped engine's.
    On a CPU engine it works too, without pinning, with the same numbers.
    """

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.transfer = FrameTransfer(engine.device)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.infer(x)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, H and W padded -> de-rained, same shape and dtype."""
        with torch.inference_mode():
            return self.transfer.download(self.engine.infer(self.transfer.upload(frames)))
