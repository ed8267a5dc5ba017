"""rtderain: remove rain streaks from video with a memory-guided de-raining network.

The Python API (imported lazily: ``import rtderain`` does not import torch until used)::

    import rtderain
    derainer = rtderain.Derainer("mgid-rt")          # or "mgid", the paper model
    clean = derainer(frame)                          # (H, W, 3) uint8 RGB -> same
    for out in derainer.frames(frames): ...          # a stream of frames, in order
    summary = derainer.video("rain.mp4", "clean.mp4", crf=20)
    rtderain.list_models(), rtderain.list_engines()

See ``docs/python.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it (imported on first attribute access)
_LAZY = {
    "Derainer": "rtderain.api",
    "ModelInfo": "rtderain.catalog",
    "EngineInfo": "rtderain.catalog",
    "list_models": "rtderain.catalog",
    "list_engines": "rtderain.catalog",
    "Summary": "rtderain.media.transcode",
    "EncodeOptions": "rtderain.media.writer",
    "RTDerainError": "rtderain.errors",
}

__all__ = [
    "Derainer",
    "EncodeOptions",
    "EngineInfo",
    "ModelInfo",
    "RTDerainError",
    "Summary",
    "__version__",
    "list_engines",
    "list_models",
]

if TYPE_CHECKING:
    from rtderain.api import Derainer
    from rtderain.catalog import EngineInfo, ModelInfo, list_engines, list_models
    from rtderain.errors import RTDerainError
    from rtderain.media.transcode import Summary
    from rtderain.media.writer import EncodeOptions


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rtderain' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
