"""Eager PyTorch engine (CPU fp32/bf16, CUDA fp16/bf16/fp32), optionally ``torch.compile``d."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtderain.backends.base import BackendUnavailable, BuildSpec, luma_io
from rtderain.models.export import LUMA_IO, LumaGraph
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

PRECISIONS = {"cpu": ("fp32", "bf16"), "cuda": ("fp32", "fp16", "bf16")}


@dataclass(frozen=True)
class TorchSettings:
    """Settings of the eager PyTorch backend.

    Tuning: ``channels_last`` is faster for convolutions on CPU (oneDNN) and on tensor-core
    GPUs; leave it on. ``compile=True`` runs ``torch.compile`` (Inductor): the first frames
    take tens of seconds to compile per input shape (needs a C++ compiler on CPU), then it is
    often 1.5-3x faster than eager; worth it for long videos, not for one image.
    ``compile_mode`` is passed to ``torch.compile`` (``default``, ``max-autotune`` ...).
    """

    channels_last: bool = True
    compile: bool = False
    compile_mode: str = "default"


class TorchEngine:
    """Run an :class:`MGID` in PyTorch; any batch size and any (padded) frame size.

    Args:
        model: the network (any device; moved to ``device``).
        device: ``cpu`` or ``cuda[:N]``.
        precision: ``fp32``; ``bf16`` (CPU: autocast; CUDA: weights cast once); ``fp16``
            (CUDA only, weights cast once: autocast would re-cast every weight on every
            call). On CUDA the model is copied before the cast (the caller's stays fp32)
            and ``torch.backends.cudnn.benchmark`` is switched on (the shapes are fixed
            per video, so cuDNN's autotuned kernels are reused).
        channels_last: use the channels-last memory format (faster convs on CPU).
        compile: wrap the model in ``torch.compile``.
        compile_mode: ``torch.compile`` mode.
    """

    selection = ""  # set by create_engine

    name = "torch"

    def __init__(
        self,
        model: MGID,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        channels_last: bool = True,
        compile: bool = False,
        compile_mode: str = "default",
    ) -> None:
        self.device = torch.device(device)
        self.precision = precision
        self.multiple = model.multiple
        self.channels_last = channels_last
        self.dtype = torch.float32
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            if precision != "fp32":
                self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
                model = copy.deepcopy(model)
        self.model = model.eval().to(self.device, self.dtype)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self._run = torch.compile(self.model, mode=compile_mode) if compile else self.model
        self.luma_planes = model.config.luma  # infer_planes: a luma network's Y planes
        self._luma: dict[str, LumaGraph] = {}
        mode = "compiled" if compile else "eager"
        self.description = f"torch {mode} {precision} on {self.device}"

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "fp32" or self.dtype != torch.float32:  # fp32, or cast once
            return contextlib.nullcontext()
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[self.precision]
        return torch.autocast(device_type=self.device.type, dtype=dtype)

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 [-1, 1] RGB on ``device`` -> same shape, float32 [-1, 1].

        The output keeps the convolutions' memory layout (channels-last when that is on):
        the uint8 download wants (N, H, W, 3) next, so an NCHW copy here would be wasted.
        """
        if self.channels_last:  # a no-op for the NHWC uploads of FrameTransfer
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self._run(x.to(self.dtype))
        return out.float()

    @torch.inference_mode()
    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """(N, H, W) uint8 Y planes of a luma network -> same (LumaGraph, eager)."""
        io = luma_io(full_range)
        if io not in self._luma:
            if not self.luma_planes:
                raise RuntimeError("Y planes to the torch engine of a non-luma model (a bug)")
            self._luma[io] = LumaGraph(self.model, *LUMA_IO[io], self.dtype)
        y = torch.from_numpy(np.ascontiguousarray(planes)).to(self.device)
        with self._autocast():
            return self._luma[io](y).cpu().numpy()


class TorchBackend:
    """Backend-table entry for :class:`TorchEngine`: nothing to build, works everywhere."""

    name = "torch"
    suffix = ""
    static = False
    frames_io = False  # eager: the float path is as fast (see media.frames.to_tensor)

    def __init__(self, settings: TorchSettings | None = None) -> None:
        self.settings = settings or TorchSettings()

    def check(self, device: torch.device, precision: str) -> None:
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("torch: CUDA is not available")
        allowed = PRECISIONS.get(device.type)
        if allowed is None:
            raise BackendUnavailable(f"torch: device type {device.type!r} is not supported")
        if precision not in allowed:
            raise BackendUnavailable(
                f"torch: precision {precision} is not supported on {device.type} "
                f"(use {', '.join(allowed)})"
            )

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__}

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def build(self, model: MGID, spec: BuildSpec, path: Path) -> None:
        raise NotImplementedError("the torch backend has nothing to build")

    def load(self, model: MGID, spec: BuildSpec, path: Path | None) -> TorchEngine:
        return TorchEngine(model, spec.device, spec.precision, **dataclasses.asdict(self.settings))
