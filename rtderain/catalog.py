"""What this installation offers: the registered networks and the inference backends."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelInfo:
    """A registered network: ``name``, ``parameters``, pad ``multiple``, shipped ``weights``
    (None: none ship, the network is untrained and returns its input)."""

    name: str
    parameters: int
    multiple: int
    weights: Path | None


@dataclass(frozen=True)
class EngineInfo:
    """An inference backend: ``name``, whether it can run here (``available``) and why not
    (``reason``), and the devices it targets."""

    name: str
    available: bool
    reason: str
    devices: tuple[str, ...]


def list_models() -> list[ModelInfo]:
    """The registered networks (see ``rtderain models``)."""
    from rtderain.models import MODELS, build_model, count_parameters, shipped_weights

    return [
        ModelInfo(name, count_parameters(build_model(cfg)), cfg.multiple, shipped_weights(name))
        for name, cfg in MODELS.items()
    ]


def list_engines() -> list[EngineInfo]:
    """The inference backends and whether each can run on this machine."""
    from rtderain.backends.registry import BACKENDS, backend_status

    return [EngineInfo(name, *backend_status(name)) for name in BACKENDS]
