"""Host <-> GPU frame transfers for the CUDA path: uint8 over the bus, maths on the device,
upload, compute and download of consecutive batches overlapped.

Frames cross PCIe as uint8 (4x less than float32). Each batch is padded straight into one
of two pinned (page-locked) host buffers, uploaded on an upload stream, normalised,
de-rained, rounded and clamped on the compute stream (torch's current one), and copied
back as uint8 into a pinned download buffer on a download stream; CUDA events order the
three streams, so the host waits once per batch, for that batch's download, and only
when the caller asks for it (:meth:`Pending.result`). Two slots make it a double buffer:
while the caller collects batch k, batch k+1 is already uploading and computing.

Host copies per frame: the pad into pinned memory and the crop out of it (the decoded
frame itself is the source's). On a CPU device the same class runs eagerly, unpinned,
with identical numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from rtderain.media.tensors import pad_frames


class CudaOps:
    """The CUDA calls :class:`FrameTransfer` makes, in one place (tests pass a fake that
    counts host synchronisations on the CPU)."""

    pinned = True

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def stream(self) -> Any:
        return torch.cuda.Stream(self.device)

    def event(self) -> Any:
        return torch.cuda.Event()

    def current(self) -> Any:
        return torch.cuda.current_stream(self.device)

    def use(self, stream: Any) -> Any:
        return torch.cuda.stream(stream)

    def record_stream(self, tensor: torch.Tensor, stream: Any) -> None:
        tensor.record_stream(stream)


class _Slot:
    """One half of the double buffer: pinned upload/download buffers, the batch's event."""

    def __init__(self) -> None:
        self.up: torch.Tensor | None = None
        self.down: torch.Tensor | None = None
        self.done: Any = None  # event recorded after the download
        self.busy = False
        self.generation = 0  # bumped when a slot is reused: a stale Pending cannot read it


class Pending:
    """A submitted batch; :meth:`result` waits for its download (the one host sync)."""

    def __init__(self, slot: _Slot, shape: tuple[int, ...], size: tuple[int, int]) -> None:
        self._slot, self._shape, self._size = slot, shape, size
        self._generation = slot.generation

    def result(self) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, cropped to the frames' own size (a copy)."""
        slot = self._slot
        if slot.generation != self._generation:
            raise RuntimeError("batch collected after two newer ones were submitted (a bug)")
        if slot.done is not None:
            slot.done.synchronize()
        n, hp, wp, _ = self._shape
        assert slot.down is not None
        out = slot.down[: n * hp * wp * 3].view(self._shape).numpy()
        h, w = self._size
        result = np.array(out[:, :h, :w], order="C")
        slot.busy = False
        return result


def _flat(current: torch.Tensor | None, size: int, pinned: bool) -> torch.Tensor:
    """A flat uint8 host buffer of at least ``size`` bytes (grown, never shrunk)."""
    if current is None or current.numel() < size:
        current = torch.empty(size, dtype=torch.uint8, pin_memory=pinned)
    return current


def quantise(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) float [-1, 1] -> (N, H, W, 3) uint8, rounded half to even, clamped."""
    y = ((x.float() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)
    return y.permute(0, 2, 3, 1).contiguous()


def normalise(frames: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 in [-1, 1] (a channels-last view)."""
    return frames.permute(0, 3, 1, 2).float().mul_(2.0 / 255.0).sub_(1.0)


class FrameTransfer:
    """Double-buffered uint8 batches through a float engine on ``device``.

    Args:
        device: the engine's device (``cuda:N``: pinned buffers and three streams).
        ops: the CUDA calls (default :class:`CudaOps` on a CUDA device, none on a CPU).
    """

    def __init__(self, device: str | torch.device, ops: Any = None) -> None:
        self.device = torch.device(device)
        if ops is None and self.device.type == "cuda":
            ops = CudaOps(self.device)
        self.ops = ops
        self.pinned = bool(ops is not None and ops.pinned)
        self._slots = [_Slot(), _Slot()]
        self._next = 0
        if ops is not None:
            self._up_stream, self._down_stream = ops.stream(), ops.stream()

    def submit(
        self,
        frames: np.ndarray | Sequence[np.ndarray],
        run: Callable[[torch.Tensor], torch.Tensor],
        multiple: int = 1,
    ) -> Pending:
        """Queue a batch: ``(H, W, 3)`` uint8 RGB frames of one size are padded to
        ``multiple``, uploaded and passed to ``run`` ((N, 3, H', W') float32 [-1, 1] ->
        same); returns at once on a GPU. At most two batches are pending: a third reuses
        the slot of the first, whose result is then dropped (a caller that stopped, e.g.
        on an error, never blocks the next video)."""
        first = frames[0]
        if first.dtype != np.uint8 or first.ndim != 3 or first.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) uint8 frames, got {first.dtype} {first.shape}")
        slot = self._slots[self._next % 2]
        self._next += 1
        if slot.busy and slot.done is not None:  # abandoned: wait until its copies are done
            slot.done.synchronize()
        slot.generation += 1
        slot.busy = True
        h, w = first.shape[:2]
        shape = (len(frames), h + (-h) % multiple, w + (-w) % multiple, 3)
        count = int(np.prod(shape))
        slot.up = _flat(slot.up, count, self.pinned)  # free: its last batch was collected
        staging = slot.up[:count].view(shape)
        pad_frames(frames, multiple, out=staging.numpy())
        slot.down = _flat(slot.down, count, self.pinned)
        down = slot.down[:count].view(shape)
        with torch.inference_mode():
            if self.ops is None:
                down.copy_(quantise(run(normalise(staging))))
                slot.done = None
            else:
                self._enqueue(slot, staging, down, run)
        return Pending(slot, shape, (h, w))

    def _enqueue(self, slot: _Slot, staging: torch.Tensor, down: torch.Tensor,
                 run: Callable[[torch.Tensor], torch.Tensor]) -> None:
        ops, compute = self.ops, self.ops.current()
        uploaded, computed, slot.done = ops.event(), ops.event(), ops.event()
        with ops.use(self._up_stream):
            x8 = staging.to(self.device, non_blocking=True)
            uploaded.record(self._up_stream)
        compute.wait_event(uploaded)
        ops.record_stream(x8, compute)
        y8 = quantise(run(normalise(x8)))
        computed.record(compute)
        self._down_stream.wait_event(computed)
        with ops.use(self._down_stream):
            down.copy_(y8, non_blocking=True)
            slot.done.record(self._down_stream)
        ops.record_stream(y8, self._down_stream)


class CudaFrameEngine:
    """Gives a GPU engine ``infer_frames`` and ``submit_frames``: 8-bit frames go up as
    uint8 from pinned memory, are normalised, de-rained and quantised on the GPU, and come
    back as uint8, with consecutive batches overlapped (:class:`FrameTransfer`).

    Wraps any :class:`rtderain.backends.base.Engine` (``create_engine`` wraps every CUDA
    engine); other attributes (``selection``, ``artifacts``, ...) are the wrapped engine's.
    On a CPU engine it works too, eagerly and without pinning, with the same numbers.
    """

    def __init__(self, engine: Any, ops: Any = None) -> None:
        self.engine = engine
        self.transfer = FrameTransfer(engine.device, ops)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.engine, name)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return self.engine.infer(x)

    def submit_frames(self, frames: np.ndarray | Sequence[np.ndarray]) -> Pending:
        """Queue ``(H, W, 3)`` uint8 RGB frames of one size (any size: padded to the
        engine's multiple here, cropped back by :meth:`Pending.result`)."""
        return self.transfer.submit(frames, self.engine.infer, self.engine.multiple)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, H and W padded -> de-rained, same shape and dtype."""
        return self.submit_frames(frames).result()
