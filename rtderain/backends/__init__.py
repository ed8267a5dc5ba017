"""Inference engines behind one interface (see :mod:`rtderain.backends.base`)."""

from __future__ import annotations

import torch

from rtderain.backends.base import Engine, IdentityEngine
from rtderain.backends.torch_backend import TorchEngine
from rtderain.models.mgid import MGID


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def create_engine(
    model: MGID,
    engine: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    size: tuple[int, int] | None = None,
    batch: int = 1,
) -> Engine:
    """A ready engine for ``model``.

    Args:
        model: the network (eval mode).
        engine: backend name or ``auto``.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16`` or ``auto``.
        size: padded input (H, W) for static-shape backends.
        batch: batch size for static-shape backends.
    """
    dev = resolve_device(device)
    if precision == "auto":
        precision = "fp16" if dev.type == "cuda" else "fp32"
    return TorchEngine(model, dev, precision)


__all__ = ["Engine", "IdentityEngine", "TorchEngine", "create_engine", "resolve_device"]
