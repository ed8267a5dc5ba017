"""The table of backends, the fallback order per device, and engine selection.

``BACKENDS`` is the one explicit dict of names. ``FALLBACK`` lists, per device type, the
backends from fastest to slowest as measured on this project's reference machines
(``docs/benchmarks.md``): ``auto`` takes the first one that can run, and a backend that
cannot run here (not installed, unsupported precision) or whose runtime fails to build
(:class:`~rtderain.backends.base.EngineBuildError`) hands over to the next one with the
reason logged. A backend named explicitly never falls back: it runs or the reason is an
error. Any other exception is a bug and propagates with its traceback. Heavy runtimes are
imported only when their backend is tried.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtderain import util
from rtderain.backends.base import (
    BackendUnavailable,
    BuildSpec,
    Engine,
    EngineBuildError,
    luma_io,
    run_fixed_batch,
)
from rtderain.backends.cache import (
    ArtifactKey,
    EngineCache,
    device_name,
    device_versions,
    normalise_device,
)
from rtderain.errors import RTDerainError
from rtderain.media.tensors import from_tensor, to_tensor
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

# name -> "module:class" (imported on first use).
BACKENDS: dict[str, str] = {
    "torch": "rtderain.backends.torch_backend:TorchBackend",
    "onnxruntime": "rtderain.backends.onnxruntime_backend:OrtBackend",
    "openvino": "rtderain.backends.openvino_backend:OpenVinoBackend",
    "tensorrt": "rtderain.backends.tensorrt_backend:TensorRTBackend",
}

# Fastest first (docs/benchmarks.md, "Speed (engines)"); eager torch always ends the list.
FALLBACK: dict[str, tuple[str, ...]] = {
    "cpu": ("openvino", "onnxruntime", "torch"),
    "cuda": ("tensorrt", "onnxruntime", "torch"),
}

PRECISIONS = ("fp32", "bf16", "fp16", "int8")
# Precision auto tries these (backend, precision) first where the backend is a candidate:
# kept only if the build's own check passes (int8: within its quality bound and faster).
# The trial is one build per model, shape and machine, its verdict cached; $RTDERAIN_AUTO_INT8=0
# skips it (the test suite does, except the int8 tests).
AUTO_FIRST: dict[str, tuple[tuple[str, str], ...]] = {"cpu": (("openvino", "int8"),)}
AUTO_INT8_ENV = "RTDERAIN_AUTO_INT8"


def get_backend(name: str, settings: Any = None) -> Any:
    """A backend instance by table name, with optional settings (its settings dataclass)."""
    try:
        module_name, attr = BACKENDS[name].split(":")
    except KeyError:
        raise RTDerainError(
            f"unknown engine {name!r} (known: auto, {', '.join(BACKENDS)})"
        ) from None
    cls = getattr(importlib.import_module(module_name), attr)
    return cls(settings) if settings is not None else cls()


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; anything else as given. ``cuda`` becomes
    ``cuda:N`` (the current GPU), so "cuda" and "cuda:0" are one engine and one cache key."""
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        return normalise_device(device)
    except RuntimeError:
        raise RTDerainError(f"unknown device {device!r} (use cpu, cuda, cuda:N or auto)") from None


def cpu_has_native_bf16() -> bool:
    """True if the CPU executes bf16 in hardware (AVX-512 BF16 or AMX)."""
    with contextlib.suppress(OSError):
        flags = Path("/proc/cpuinfo").read_text()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: fp16 on CUDA; bf16 on a CPU with native bf16; else fp32."""
    if precision == "auto":
        if device.type == "cuda":
            return "fp16"
        return "bf16" if cpu_has_native_bf16() else "fp32"
    if precision not in PRECISIONS:
        raise RTDerainError(
            f"unknown precision {precision!r} (use auto, {', '.join(PRECISIONS)})"
        )
    return precision


def _precision_reason(precision: str, device: torch.device) -> str:
    if device.type == "cuda":
        return f"{precision} on CUDA"
    if precision == "bf16":
        return "bf16, the CPU has native bf16 (AVX-512 BF16 / AMX)"
    return f"{precision}, the CPU has no native bf16"


def candidates(engine: str, device: torch.device) -> list[str]:
    """Backends to try in order: ``auto`` -> the device's fallback list; a named engine ->
    that engine alone (it runs or the run fails with the reason)."""
    if engine == "auto":
        return list(FALLBACK.get(device.type, ("torch",)))
    get_backend(engine)  # unknown name -> clear error
    return [engine]


def backend_status(name: str, device: str = "auto") -> tuple[bool, str, tuple[str, ...]]:
    """(available, reason if not, device types it runs on) of backend ``name`` here, at
    fp32 on ``device`` (``auto``: CUDA if present, else CPU)."""
    dev = resolve_device(device)
    devices = tuple(d for d, names in FALLBACK.items() if name in names)
    try:
        get_backend(name).check(dev, "fp32")
    except BackendUnavailable as exc:
        return False, str(exc), devices
    return True, "", devices


class CachedEngine:
    """A static-shape backend behind the :class:`Engine` interface for any N, H, W.

    Builds (or loads from the engine cache) one artifact per padded frame size and graph
    interface on first use, pads the last batch to the built batch size and trims it
    (``run_fixed_batch``). ``infer`` takes float tensors; ``infer_frames`` takes 8-bit
    frames and runs a ``u8`` graph where the backend builds one on this device
    (``frames_io``), else converts and calls ``infer``.
    """

    def __init__(
        self,
        backend: Any,
        model: MGID,
        device: torch.device,
        precision: str,
        batch: int,
        cache: EngineCache,
    ) -> None:
        from rtderain.models.checkpoint import weights_digest

        self.backend = backend
        self.model = model
        self.name = backend.name
        self.device = normalise_device(device)
        self.precision = precision
        self.batch = batch
        self.multiple = model.multiple
        self.cache = cache
        self.digest = weights_digest(model)
        # u8 graphs on the CPU only: on a GPU, create_engine's CudaFrameEngine uploads the
        # uint8 frames and normalises them there, around the float graph.
        self.frames_io = backend.frames_io and self.device.type == "cpu"
        self.luma_planes = self.frames_io and model.config.luma  # infer_planes
        self._engines: dict[tuple[int, int, str], Any] = {}
        self.selection = ""
        self.description = f"{self.name} {precision} on {device} (built on first frame)"

    @property
    def default_io(self) -> str:
        """The graph interface 8-bit video runs: a luma network's limited-range Y planes
        (``luma-tv``, the YUV-native path of most video), else ``u8`` where available,
        else ``float``."""
        if self.luma_planes:
            return luma_io(full_range=False)
        return "u8" if self.frames_io else "float"

    def key(self, height: int, width: int, io: str = "float") -> ArtifactKey:
        """The cache key of the artifact for one padded frame size and graph interface."""
        spec = BuildSpec(
            model=self.model.config.name,
            digest=self.digest,
            batch=self.batch,
            height=height,
            width=width,
            precision=self.precision,
            device=str(self.device),
            io=io,
        )
        return ArtifactKey(
            spec=spec,
            backend=self.name,
            device_name=device_name(self.device),
            versions={**self.backend.versions(), **device_versions(self.device)},
            settings=self.backend.settings_dict(),
        )

    def prepare(self, height: int, width: int, io: str = "float") -> Any:
        """Build or load the engine for a padded (H, W) and ``io``; returns it (kept)."""
        if (height, width, io) not in self._engines:
            key = self.key(height, width, io)
            engine = self.cache.get_or_build(
                key,
                self.backend.suffix,
                build=lambda path: self.backend.build(self.model, key.spec, path),
                load=lambda path: self.backend.load(self.model, key.spec, path),
            )
            self._engines[(height, width, io)] = engine
            self.description = f"{engine.description}, batch {self.batch}"
        return self._engines[(height, width, io)]

    def artifacts(self) -> list[Path]:
        """Cache paths of the artifacts built or loaded so far."""
        return [
            self.cache.paths(self.key(h, w, io), self.backend.suffix)[0]
            for h, w, io in self._engines
        ]

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 [-1, 1] RGB on ``device`` -> same shape and range."""
        engine = self.prepare(x.shape[2], x.shape[3])
        return run_fixed_batch(engine.infer, x, self.batch)

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 RGB, H and W padded -> de-rained, same shape and dtype."""
        if not self.frames_io:
            with torch.inference_mode():
                return from_tensor(self.infer(to_tensor(frames, self.device)))
        engine = self.prepare(frames.shape[1], frames.shape[2], "u8")
        return run_fixed_batch(engine.infer_frames, frames, self.batch)

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """(N, H, W) uint8 Y planes of a luma network, H and W padded -> de-rained, same
        shape (a luma graph per range; :class:`rtderain.backends.base.PlaneEngine`)."""
        if not self.luma_planes:
            raise RuntimeError(f"Y planes to a {self.name} engine without luma graphs (a bug)")
        engine = self.prepare(planes.shape[1], planes.shape[2], luma_io(full_range))
        return run_fixed_batch(lambda p: engine.infer_planes(p, full_range), planes, self.batch)


def thread_settings(threads: int | None) -> dict[str, Any] | None:
    """Per-backend settings that cap the inference threads at ``threads`` (ONNX Runtime's
    intra-op pool, OpenVINO's ``INFERENCE_NUM_THREADS``); None: the backends' defaults.
    torch's pool is process-wide: callers that own the process set it themselves."""
    if threads is None:
        return None
    from rtderain.backends.onnxruntime_backend import OrtSettings
    from rtderain.backends.openvino_backend import OpenVinoSettings

    return {"onnxruntime": OrtSettings(intra_op_threads=threads),
            "openvino": OpenVinoSettings(num_threads=threads)}


def _auto_settings(name: str, given: Any, optional: bool) -> Any:
    """The backend settings for one try: precision auto's int8 try must also be faster."""
    if not optional or name != "openvino":
        return given
    import dataclasses

    from rtderain.backends.openvino_backend import OpenVinoSettings

    return dataclasses.replace(given or OpenVinoSettings(), int8_auto=True)


def _padded(size: tuple[int, int], multiple: int) -> tuple[int, int]:
    h, w = size
    return util.padded_size(h, w, multiple)


def create_engine(
    model: MGID,
    engine: str = "auto",
    device: str = "auto",
    precision: str = "auto",
    size: tuple[int, int] | None = None,
    batch: int = 1,
    *,
    engines_dir: str | Path | None = None,
    settings: dict[str, Any] | None = None,
    try_int8: bool = True,
) -> Engine:
    """A ready engine for ``model``, choosing and falling back as described above.

    Args:
        model: the network (eval mode).
        engine: backend name or ``auto``.
        device: ``cpu``, ``cuda[:N]`` or ``auto``.
        precision: ``fp32``, ``bf16``, ``fp16``, ``int8`` or ``auto``.
        size: frame (H, W) (padded up to the model's multiple here); given, static-shape
            backends build now (the graph 8-bit video runs, ``default_io``), so a failing
            build falls back right away. ``None``: they build on the first frame.
        batch: frames per call for static-shape backends.
        engines_dir: engine cache folder (default: see :mod:`rtderain.backends.cache`).
        settings: per-backend settings dataclasses, e.g. ``{"torch": TorchSettings(...)}``.
        try_int8: whether precision ``auto`` may try int8 first (False where its build
            would not fit the memory budget, :mod:`rtderain.resources`).
    Returns:
        an :class:`Engine`; its ``selection`` attribute says which backend and why.
    """
    if batch < 1:
        raise RTDerainError(f"batch must be >= 1, got {batch}")
    dev = resolve_device(device)
    prec = resolve_precision(precision, dev)
    cache = EngineCache(engines_dir)
    settings = settings or {}
    tried: list[str] = []
    names = candidates(engine, dev)
    plan = [(name, prec, False) for name in names]
    if (precision == "auto" and size is not None and try_int8
            and os.environ.get(AUTO_INT8_ENV) != "0"):
        # (size None: a lazy build could not fall back)
        first = [(n, p, True) for n, p in AUTO_FIRST.get(dev.type, ()) if n in names]
        plan = first + plan
    for name, prec, optional in plan:
        try:
            backend = get_backend(name, _auto_settings(name, settings.get(name), optional))
            backend.check(dev, prec)
            if backend.static:
                result: Any = CachedEngine(backend, model, dev, prec, batch, cache)
                if size is not None:
                    result.prepare(*_padded(size, model.multiple), result.default_io)
            else:
                spec = BuildSpec(model.config.name, "", batch, 0, 0, prec, str(dev))
                result = backend.load(model, spec, None)
        except (BackendUnavailable, EngineBuildError) as exc:
            if optional:  # precision auto's first try: never fatal, never a warning
                log.info("engine %s %s not used: %s", name, prec, exc)
                continue
            if engine != "auto":
                raise RTDerainError(f"--engine {engine} cannot run: {exc}") from exc
            tried.append(str(exc))
            level = logging.INFO if isinstance(exc, BackendUnavailable) else logging.WARNING
            log.log(level, "engine %s skipped: %s", name, exc)
            continue
        if dev.type == "cuda":  # uint8 over the bus, pinned staging, maths on the GPU
            from rtderain.backends.transfer import CudaFrameEngine

            result = CudaFrameEngine(result)
        why = "forced with --engine" if name == engine else (
            f"first available for {dev.type} in {' > '.join(FALLBACK.get(dev.type, ()))}"
        )
        if precision == "auto":
            why += "; precision auto: " + (
                "int8 within its quality bound and faster" if optional
                else _precision_reason(prec, dev))
        if tried:
            why += f"; skipped: {'; '.join(tried)}"
        result.selection = f"{name} {prec} on {dev} ({why})"
        log.info("engine: %s", result.selection)
        return result
    raise RTDerainError(f"no engine can run on {dev} {prec}: {'; '.join(tried)}")
