"""Inference engines behind one interface (see :mod:`rtderain.backends.base`).

``create_engine`` picks a backend from :data:`~rtderain.backends.registry.BACKENDS`
(``torch``, ``onnxruntime``, ``openvino``, ``tensorrt``), builds or loads its artifact from the
engine cache (:mod:`rtderain.backends.cache`) and falls back along the device's ordered
list when a backend cannot run. Heavy runtimes are imported only inside their backend.
"""

from __future__ import annotations

from rtderain.backends.base import (
    Backend,
    BackendUnavailable,
    BuildSpec,
    Engine,
    IdentityEngine,
)
from rtderain.backends.registry import (
    BACKENDS,
    FALLBACK,
    CachedEngine,
    create_engine,
    get_backend,
    resolve_device,
    resolve_precision,
)
from rtderain.backends.torch_backend import TorchEngine

__all__ = [
    "BACKENDS",
    "FALLBACK",
    "Backend",
    "BackendUnavailable",
    "BuildSpec",
    "CachedEngine",
    "Engine",
    "IdentityEngine",
    "TorchEngine",
    "create_engine",
    "get_backend",
    "resolve_device",
    "resolve_precision",
]
