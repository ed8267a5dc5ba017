"""The one small interface every inference engine implements.

An engine runs a de-raining network on batches of frames. The pipeline does not know which
engine runs: it pads frames to ``engine.multiple``, calls :meth:`Engine.infer`, crops back.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch


@runtime_checkable
class Engine(Protocol):
    """A loaded, ready-to-run de-raining engine.

    Attributes:
        name: backend name (``torch``, ``onnxruntime``, ``openvino``, ``tensorrt``, ...).
        device: torch device the pipeline should place input tensors on.
        multiple: input H and W must be multiples of this.
        description: one line saying what runs (backend, precision, device), for logs.
    """

    name: str
    device: torch.device
    multiple: int
    description: str

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """De-rain a batch.

        Args:
            x: (N, 3, H, W) float32 in [-1, 1], RGB, on ``device``; H, W multiples of
                ``multiple``. N may vary between calls unless the engine says otherwise.
        Returns:
            background (N, 3, H, W) float32 in [-1, 1], RGB, on ``device``.
        """
        ...


class IdentityEngine:
    """Returns its input: measures the pipeline's own overhead, and a baseline for tests."""

    name = "identity"
    multiple = 1
    description = "identity (no model)"

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return x
