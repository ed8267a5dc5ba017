"""Eager PyTorch engine (CPU fp32/bf16, CUDA fp16)."""

from __future__ import annotations

import contextlib

import torch

from rtderain.models.mgid import MGID


class TorchEngine:
    """Run an :class:`MGID` in eager PyTorch.

    Args:
        model: the network (any device; moved to ``device``).
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``fp32``; ``bf16`` (autocast, CPU or CUDA); ``fp16`` (CUDA only).
        channels_last: use the channels-last memory format (faster convs on CPU).
    """

    name = "torch"

    def __init__(
        self,
        model: MGID,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
    ) -> None:
        self.device = torch.device(device)
        self.precision = precision
        self.multiple = model.multiple
        self.channels_last = channels_last
        self.model = model.eval().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.description = f"torch eager {precision} on {self.device}"

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self.model(x)
        return out.float().contiguous()
