"""The one small interface every inference engine implements.

An engine runs a de-raining network on batches of frames. The pipeline does not know which
engine runs: it pads frames to ``engine.multiple``, calls the engine, crops back
(:func:`rtderain.media.batching.derain_frames`). Every engine has :meth:`Engine.infer` on
float tensors; an engine may also have ``infer_frames`` on uint8 frames (see
:class:`FrameEngine`), which 8-bit video then takes: the normalisation runs inside the
engine's graph instead of in two Python passes over every frame.

A :class:`Backend` is the runtime behind an engine (check / build / load); the table of
backends and the selection logic are in :mod:`rtderain.backends.registry`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import torch

from rtderain.errors import RTDerainError

if TYPE_CHECKING:
    from rtderain.models.mgid import MGID


@runtime_checkable
class Engine(Protocol):
    """A loaded, ready-to-run de-raining engine.

    Attributes:
        name: backend name (``torch``, ``onnxruntime``, ``openvino``, ``tensorrt``, ...).
        device: torch device the pipeline should place input tensors on.
        multiple: input H and W must be multiples of this.
        description: one line saying what runs (backend, precision, device), for logs.
        selection: which backend was chosen and why (set by
            :func:`rtderain.backends.create_engine`; empty for engines made directly).
    """

    name: str
    device: torch.device
    multiple: int
    description: str
    selection: str

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """De-rain a batch.

        Args:
            x: (N, 3, H, W) float32 in [-1, 1], RGB, on ``device``; H, W multiples of
                ``multiple``. N may vary between calls unless the engine says otherwise.
        Returns:
            background (N, 3, H, W) float32 in [-1, 1], RGB, on ``device``.
        """
        ...


@runtime_checkable
class FrameEngine(Engine, Protocol):
    """An engine that also takes 8-bit frames directly (normalisation inside its graph)."""

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """De-rain a batch of 8-bit frames.

        Args:
            frames: (N, H, W, 3) uint8 RGB, C-contiguous; H, W multiples of ``multiple``.
        Returns:
            (N, H, W, 3) uint8 RGB: the background, rounded and clipped.
        """
        ...


def luma_io(full_range: bool) -> str:
    """The graph interface of Y planes in full (``luma-pc``) or limited (``luma-tv``) range."""
    return "luma-pc" if full_range else "luma-tv"


@runtime_checkable
class PlaneEngine(Engine, Protocol):
    """An engine of a luma network that also takes a decoder's Y planes directly
    (:class:`rtderain.models.export.LumaGraph`): a YUV frame is de-rained without leaving
    YUV, its chroma untouched. ``luma_planes`` says whether this engine can (its network
    is a luma one and it builds luma graphs); :func:`takes_planes` is the check."""

    luma_planes: bool

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """De-rain a batch of 8-bit Y planes.

        Args:
            planes: (N, H, W) uint8, C-contiguous; H, W multiples of ``multiple``.
            full_range: the planes are full range (0-255), else limited (16-235).
        Returns:
            (N, H, W) uint8: the Y planes minus the rain, rounded and clipped.
        """
        ...


def takes_planes(engine: Engine) -> bool:
    """Whether ``engine`` de-rains Y planes (:class:`PlaneEngine` with ``luma_planes``)."""
    return bool(getattr(engine, "luma_planes", False))


class IdentityEngine:
    """Returns its input: measures the pipeline's own overhead, and a baseline for tests."""

    name = "identity"
    multiple = 1
    description = "identity (no model)"
    selection = ""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        return frames

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        return planes


class BackendUnavailable(RTDerainError):
    """A backend cannot run here (runtime not installed, no GPU, precision unsupported).

    The message is the reason, logged when ``auto`` or a fallback skips the backend.
    """


class EngineBuildError(RTDerainError):
    """The runtime itself failed to build or load an engine (an unsupported operator, a
    compiler error, a corrupt artifact). ``auto`` falls back to the next backend on it; a
    forced ``--engine`` reports it. Any other exception is a bug and propagates."""


class BuildRejected(EngineBuildError):
    """The build worked but its result is refused by a check of ours (an int8 graph over
    its quality bound). The engine cache remembers the verdict for the same key, so later
    runs skip straight to the next choice instead of building again."""


@contextlib.contextmanager
def runtime_errors(backend: str, what: str) -> Iterator[None]:
    """Turn an exception raised inside a runtime's own call into :class:`EngineBuildError`.

    Wrap only the calls into the runtime (``compile_model``, ``InferenceSession``,
    ``torch_tensorrt.compile``, an exporter), so that our own bugs keep their traceback.
    """
    try:
        yield
    except RTDerainError:
        raise
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EngineBuildError(f"{backend}: {what} failed ({type(exc).__name__}: {first})") from exc


@dataclass(frozen=True)
class BuildSpec:
    """Everything a static-shape build depends on, besides the backend's own settings.

    Attributes:
        model: registry name of the network (``mgid``, ``mgid-rt``).
        digest: :func:`rtderain.models.checkpoint.weights_digest` of the weights.
        batch, height, width: the static input shape (N, 3, H, W); H, W are already padded
            to the model's multiple.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        device: torch device string (``cpu``, ``cuda:0``).
        io: graph interface: ``float`` ((N, 3, H, W) float32 in [-1, 1]), ``u8``
            ((N, H, W, 3) uint8, see :class:`rtderain.models.export.FrameGraph`), or
            ``luma-tv`` / ``luma-pc`` ((N, H, W) uint8 Y planes of a luma network, see
            :class:`rtderain.models.export.LumaGraph`).
    """

    model: str
    digest: str
    batch: int
    height: int
    width: int
    precision: str
    device: str
    io: str = "float"

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, 3, H, W), the network's input shape whatever ``io``."""
        return (self.batch, 3, self.height, self.width)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The graph input's shape: (N, 3, H, W) for ``float``, (N, H, W, 3) for ``u8``,
        (N, H, W) for a luma io."""
        if self.io == "u8":
            return (self.batch, self.height, self.width, 3)
        if self.io.startswith("luma-"):
            return (self.batch, self.height, self.width)
        return self.shape


class Backend(Protocol):
    """One runtime: says whether it can run, builds an artifact, loads it as an :class:`Engine`.

    Attributes:
        name: key in :data:`rtderain.backends.registry.BACKENDS`.
        suffix: artifact file suffix (``.onnx``, ``.blob``, ``.ep``); ``""`` when there is
            nothing to build or cache (eager torch).
        static: True if a loaded engine runs one fixed (N, 3, H, W) shape only.
        frames_io: True if it builds ``io="u8"`` graphs (engines with ``infer_frames``).
    """

    name: str
    suffix: str
    static: bool
    frames_io: bool

    def check(self, device: torch.device, precision: str) -> None:
        """Raise :class:`BackendUnavailable` (the reason) if this cannot run here."""
        ...

    def versions(self) -> dict[str, str]:
        """Runtime versions an artifact depends on (part of the cache key)."""
        ...

    def settings_dict(self) -> dict[str, Any]:
        """The backend settings that change the artifact (part of the cache key)."""
        ...

    def build(self, model: MGID, spec: BuildSpec, path: Path) -> None:
        """Write the artifact for ``spec`` to ``path`` (a temporary name; the cache renames)."""
        ...

    def load(self, model: MGID, spec: BuildSpec, path: Path | None) -> Engine:
        """A ready engine from the artifact at ``path`` (``None`` when ``suffix`` is empty)."""
        ...


Batch = TypeVar("Batch", torch.Tensor, np.ndarray)


def concat_batches(parts: list[Batch]) -> Batch:
    """Frames of the same kind (torch tensors or numpy arrays) joined along the batch axis."""
    return torch.cat(parts) if isinstance(parts[0], torch.Tensor) else np.concatenate(parts)


def run_fixed_batch(fn: Callable[[Batch], Batch], x: Batch, batch: int) -> Batch:
    """Run a fixed-batch engine on any N: pad the last chunk by repeating its final frame,
    then trim the padding from the output.

    Args:
        fn: runs exactly ``batch`` frames (batch first: (batch, 3, H, W) float tensors or
            (batch, H, W, 3) uint8 arrays) and returns as many.
        x: N >= 1 frames of the same kind.
    """
    outs = []
    for start in range(0, x.shape[0], batch):
        chunk = x[start : start + batch]
        n = chunk.shape[0]
        if n < batch:
            chunk = concat_batches([chunk] + [chunk[-1:]] * (batch - n))
        outs.append(fn(chunk)[:n])
    return outs[0] if len(outs) == 1 else concat_batches(outs)
