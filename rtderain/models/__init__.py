"""Model registry: the de-raining networks rtderain knows, declared where they are built.

``MODELS`` is the one explicit table of names. Each entry is a :class:`ModelConfig`; the
shipped weights for a name live in ``rtderain/weights/<name>.pt``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from rtderain.errors import RTDerainError
from rtderain.models.mgid import MGID, ModelConfig, count_parameters

MODELS: dict[str, ModelConfig] = {
    # The paper's network (Table I): 64 channels, full resolution, ~0.81 M parameters.
    "mgid": ModelConfig(name="mgid", channels=64, space_to_depth=1),
    # Real-time variant: 16 channels on a 2x space-to-depth input, pixel-shuffle rain output.
    "mgid-rt": ModelConfig(name="mgid-rt", channels=16, space_to_depth=2),
    # 1080p real-time variant: luma in, grey rain out, 16 channels on a 4x space-to-depth
    # input, two pooling levels (the bottleneck at 1/16 scale, as mgid-rt's). It can run on
    # a decoder's Y plane, never converting to RGB (docs/realtime.md).
    "mgid-lite": ModelConfig(name="mgid-lite", channels=16, space_to_depth=4, levels=2, luma=True),
}

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


def get_config(name: str) -> ModelConfig:
    """The registered config of model ``name``; unknown names are a clear error."""
    try:
        return MODELS[name]
    except KeyError:
        raise RTDerainError(
            f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})"
        ) from None


def build_model(name_or_config: str | ModelConfig) -> MGID:
    """A freshly initialised (untrained: identity) network.

    Initialisation is seeded from ``config.memory_seed`` without touching the global RNG,
    so the same config always gives the same weights (and the same engine cache key).
    """
    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.memory_seed)
        return MGID(cfg)


def shipped_weights(name: str) -> Path | None:
    """Path of the weights shipped for ``name`` inside the package, or None."""
    path = WEIGHTS_DIR / f"{name}.pt"
    return path if path.is_file() else None


__all__ = [
    "MGID",
    "MODELS",
    "ModelConfig",
    "build_model",
    "count_parameters",
    "get_config",
    "shipped_weights",
]
