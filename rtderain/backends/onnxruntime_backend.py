"""ONNX Runtime backend: CPU, plus the CUDA and TensorRT execution providers when installed.

The artifact is the model exported to ONNX (fp32, static shape, memory items inside).
``onnxruntime`` is imported only here.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtderain.backends.base import BackendUnavailable, BuildSpec, luma_io, runtime_errors
from rtderain.models.export import export_onnx
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrtSettings:
    """Settings of the ONNX Runtime backend.

    Tuning: ``intra_op_threads`` = 0 lets ONNX Runtime use one thread per physical core; set
    it lower when decode/encode threads compete for the same cores. ``graph_optimization``
    ``all`` (default) enables layout transforms and conv fusions; ``basic`` builds faster.
    On CUDA, ``cuda_providers`` order decides which execution provider runs: ``tensorrt``
    first builds a TensorRT engine (fp16 when the precision is fp16; cached beside the
    artifact), ``cuda`` after it runs what TensorRT does not take (cuDNN kernels, fp32).
    fp16 needs the TensorRT provider (the CUDA provider runs the fp32 graph as it is).
    """

    intra_op_threads: int = 0
    graph_optimization: str = "all"
    cuda_providers: tuple[str, ...] = ("tensorrt", "cuda")


_OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}
_PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def _import_ort() -> Any:
    try:
        import onnxruntime
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            "onnxruntime: not installed (pip install 'rtderain[onnx]')"
        ) from exc
    except Exception as exc:  # a broken install (a missing shared library is an OSError)
        raise BackendUnavailable(
            f"onnxruntime: cannot load ({type(exc).__name__}: {exc})".splitlines()[0]
        ) from exc
    return onnxruntime


def _torch_stream(device: torch.device) -> Any:
    """A CUDA stream of torch's for ORT to run on (a seam for the CPU tests)."""
    return torch.cuda.Stream(device)


def check_session(session: Any, providers: list[Any], precision: str) -> None:
    """ONNX Runtime drops a provider that fails to load (a CUDA/cuDNN mismatch, a missing
    TensorRT library) with a log line only, and runs on the CPU. Raise
    :class:`BackendUnavailable` when the session lacks what this build needs: a GPU
    provider at all, or the TensorRT provider for fp16."""
    wanted = [p[0] if isinstance(p, tuple) else p for p in providers]
    got = list(session.get_providers())
    gpu = [p for p in wanted if p != _PROVIDERS["cpu"]]
    dropped = [p for p in gpu if p not in got]
    if not gpu or not dropped:
        return
    need_trt = precision == "fp16"
    if not any(p in got for p in gpu) or (need_trt and _PROVIDERS["tensorrt"] in dropped):
        raise BackendUnavailable(
            f"onnxruntime: {', '.join(dropped)} did not load (the session has "
            f"{', '.join(got)}; check that onnxruntime-gpu matches this CUDA and cuDNN)"
        )
    log.warning("onnxruntime: %s did not load; running on %s", ", ".join(dropped), got[0])


class OrtEngine:
    """One ONNX Runtime session for a fixed input shape: (N, 3, H, W) float32 for a
    ``float`` artifact (:meth:`infer`), (N, H, W, 3) uint8 for a ``u8`` one
    (:meth:`infer_frames`, CPU)."""

    selection = ""  # set by create_engine

    name = "onnxruntime"

    def __init__(
        self, session: Any, spec: BuildSpec, multiple: int, stream: Any = None
    ) -> None:
        self.session = session
        self.stream = stream  # CUDA: the torch stream ORT runs on (user_compute_stream)
        self.device = torch.device(spec.device)
        self.multiple = multiple
        self.batch = spec.batch
        self.input_name = session.get_inputs()[0].name
        self.io = spec.io
        provider = session.get_providers()[0].replace("ExecutionProvider", "")
        self.description = f"onnxruntime {provider} {spec.precision} on {self.device}"

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) float32 [-1, 1] RGB -> same, on ``device``."""
        if self.device.type == "cpu":
            out = self.session.run(None, {self.input_name: x.contiguous().numpy()})[0]
            return torch.from_numpy(out)
        # CUDA: bind device tensors directly, no host round trip. ORT runs on its own
        # stream: it reads x only after torch's work that wrote it, and torch reads y
        # only after ORT wrote it.
        x = x.contiguous()
        y = torch.empty_like(x)
        current = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(current)
        x.record_stream(self.stream)
        y.record_stream(self.stream)
        binding = self.session.io_binding()
        index = self.device.index or 0
        binding.bind_input(
            self.input_name, "cuda", index, np.float32, tuple(x.shape), x.data_ptr()
        )
        out_name = self.session.get_outputs()[0].name
        binding.bind_output(out_name, "cuda", index, np.float32, tuple(y.shape), y.data_ptr())
        self.session.run_with_iobinding(binding)
        current.wait_stream(self.stream)
        return y

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(batch, H, W, 3) uint8 RGB -> same (normalisation inside the graph), CPU."""
        if self.io != "u8":
            raise RuntimeError(f"uint8 frames to an onnxruntime {self.io} graph (a bug)")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(frames)})[0]

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """(batch, H, W) uint8 Y planes -> same (a luma graph: range inside it), CPU."""
        if self.io != luma_io(full_range):
            raise RuntimeError(f"{luma_io(full_range)} planes to an onnxruntime {self.io} "
                               "graph (a bug)")
        return self.session.run(None, {self.input_name: np.ascontiguousarray(planes)})[0]


class OrtBackend:
    """Backend-table entry: ONNX export as the artifact, an ORT session as the engine."""

    name = "onnxruntime"
    suffix = ".onnx"
    static = True
    frames_io = True

    def __init__(self, settings: OrtSettings | None = None) -> None:
        self.settings = settings or OrtSettings()

    def _providers(self, device: torch.device, precision: str) -> list[Any]:
        ort = _import_ort()
        available = set(ort.get_available_providers())
        if device.type == "cpu":
            return ["CPUExecutionProvider"]
        index = device.index or 0
        chosen: list[Any] = []
        for short in self.settings.cuda_providers:
            full = _PROVIDERS[short]
            if full not in available:
                continue
            if short == "tensorrt":
                chosen.append((full, {"device_id": index, "trt_fp16_enable": precision == "fp16"}))
            elif short == "cuda":  # after TensorRT: what it does not take runs here (fp32)
                chosen.append((full, {"device_id": index}))
        if precision == "fp16" and not any(p[0] == _PROVIDERS["tensorrt"] for p in chosen):
            chosen = []  # the CUDA EP alone would run the fp32 graph and call it fp16
        if not chosen:
            raise BackendUnavailable(
                f"onnxruntime: no execution provider for {device} {precision} "
                f"(installed: {', '.join(sorted(available))})"
            )
        return [*chosen, "CPUExecutionProvider"]

    def check(self, device: torch.device, precision: str) -> None:
        _import_ort()
        if device.type == "cpu" and precision != "fp32":
            raise BackendUnavailable(f"onnxruntime: only fp32 on CPU, not {precision}")
        if device.type not in ("cpu", "cuda"):
            raise BackendUnavailable(f"onnxruntime: device {device} is not supported")
        if device.type == "cuda" and not torch.cuda.is_available():
            raise BackendUnavailable("onnxruntime: CUDA is not available to torch")
        self._providers(device, precision)

    def versions(self) -> dict[str, str]:
        return {"onnxruntime": _import_ort().__version__, "torch": torch.__version__}

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def build(self, model: MGID, spec: BuildSpec, path: Path) -> None:
        with runtime_errors("onnxruntime", "ONNX export"):
            export_onnx(model, path, spec.shape, io=spec.io)

    def load(self, model: MGID, spec: BuildSpec, path: Path | None) -> OrtEngine:
        ort = _import_ort()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.settings.intra_op_threads
        try:
            level = _OPT_LEVELS[self.settings.graph_optimization]
        except KeyError:
            raise BackendUnavailable(
                f"onnxruntime: unknown graph_optimization {self.settings.graph_optimization!r}"
            ) from None
        opts.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
        device = torch.device(spec.device)
        providers = self._providers(device, spec.precision)
        stream = _torch_stream(device) if device.type == "cuda" else None
        for p in providers:
            if not isinstance(p, tuple):
                continue
            # ORT enqueues on a stream of torch's, which OrtEngine.infer orders against.
            p[1]["user_compute_stream"] = str(stream.cuda_stream)
            if p[0] == _PROVIDERS["tensorrt"] and path is not None:
                p[1].update(  # let the TensorRT EP cache its own engine beside ours
                    trt_engine_cache_enable=True,
                    trt_engine_cache_path=str(path.parent / "ort-trt"),
                )
        with runtime_errors("onnxruntime", f"session for {path}"):
            session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
        check_session(session, providers, spec.precision)
        return OrtEngine(session, spec, model.multiple, stream)
