"""OpenVINO backend (CPU): fp32, bf16/fp16 inference precision where the CPU has it, and
int8 (NNCF post-training quantisation, held to a quality bound: :mod:`.int8`).

The artifact is OpenVINO's own compiled-model blob (``CompiledModel.export_model``), which
already holds the precision and threading decisions, so loading it skips conversion and
compilation. ``openvino`` is imported only here.

Reduced precision needs hardware support: OpenVINO lists it in the CPU's
``OPTIMIZATION_CAPABILITIES`` (``BF16`` with AVX-512 BF16 or AMX, ``FP16`` with AVX-512 FP16
or ARM fp16). On a CPU without it the hint is silently ignored and fp32 runs, so this
backend refuses ``bf16``/``fp16`` there with that reason instead of pretending. An int8
graph runs its quantised layers in int8 and the rest at bf16 where the CPU has it, else
fp32.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rtderain.backends.base import BackendUnavailable, BuildSpec, luma_io, runtime_errors
from rtderain.backends.int8 import Int8Settings
from rtderain.models.export import export_program
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
_CAPS = {"bf16": "BF16", "fp16": "FP16"}


@dataclass(frozen=True)
class OpenVinoSettings:
    """Settings of the OpenVINO backend.

    Tuning: ``performance_hint`` ``LATENCY`` (default) runs one frame at a time on all
    cores, right for a video pipeline feeding batches in order; ``THROUGHPUT`` runs several
    parallel streams and needs many requests in flight. ``num_threads`` = 0 uses every
    core; lower it to leave a core for decode/encode. ``num_streams`` = 0 lets the hint
    decide. ``int8`` holds how int8 graphs are calibrated and checked; ``int8_auto``: the
    int8 graph must also be faster than the float one (set for precision ``auto``).
    """

    performance_hint: str = "LATENCY"
    num_threads: int = 0
    num_streams: int = 0
    int8: Int8Settings = Int8Settings()
    int8_auto: bool = False


def _import_ov() -> Any:
    try:
        import openvino
    except ImportError as exc:
        raise BackendUnavailable(
            "openvino: not installed (pip install 'rtderain[openvino]')"
        ) from exc
    return openvino


def cpu_capabilities() -> list[str]:
    """OpenVINO's ``OPTIMIZATION_CAPABILITIES`` of the CPU plugin (e.g. FP32, INT8, BF16)."""
    ov = _import_ov()
    return list(ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


class OpenVinoEngine:
    """One compiled OpenVINO model for a fixed input shape on the CPU.

    A ``float`` artifact runs :meth:`infer`, a ``u8`` one :meth:`infer_frames`, a luma one
    :meth:`infer_planes` (``BuildSpec.io``); the other methods refuse, so a mix-up cannot
    pass silently.
    """

    selection = ""  # set by create_engine

    name = "openvino"

    def __init__(self, compiled: Any, spec: BuildSpec, multiple: int) -> None:
        self.compiled = compiled
        self.request = compiled.create_infer_request()
        self.device = torch.device("cpu")
        self.multiple = multiple
        self.batch = spec.batch
        self.io = spec.io
        hint = compiled.get_property("INFERENCE_PRECISION_HINT")
        precision = hint.to_string() if hasattr(hint, "to_string") else str(hint)
        self.description = f"openvino CPU {spec.precision} (runs {precision}, {spec.io} io)"

    def _run(self, array: np.ndarray, io: str) -> np.ndarray:
        if io != self.io:
            raise RuntimeError(f"{io} input to an openvino {self.io} graph (a bug)")
        self.request.infer([np.ascontiguousarray(array)])
        return np.array(self.request.get_output_tensor(0).data, copy=True)

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) float32 [-1, 1] RGB -> same, on the CPU."""
        return torch.from_numpy(self._run(x.numpy(), "float"))

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(batch, H, W, 3) uint8 RGB -> same (normalisation inside the graph)."""
        return self._run(frames, "u8")

    def infer_planes(self, planes: np.ndarray, full_range: bool) -> np.ndarray:
        """(batch, H, W) uint8 Y planes -> same (a luma graph: range inside it)."""
        return self._run(planes, luma_io(full_range))


class OpenVinoBackend:
    """Backend-table entry: compiled blob as the artifact."""

    name = "openvino"
    suffix = ".blob"
    static = True
    frames_io = True

    def __init__(self, settings: OpenVinoSettings | None = None) -> None:
        self.settings = settings or OpenVinoSettings()

    def _config(self, precision: str) -> dict[str, str]:
        if precision == "int8":  # the layers left in floating point
            precision = "bf16" if "BF16" in cpu_capabilities() else "fp32"
        cfg = {
            "INFERENCE_PRECISION_HINT": _HINTS[precision],
            "PERFORMANCE_HINT": self.settings.performance_hint,
        }
        if self.settings.num_threads:
            cfg["INFERENCE_NUM_THREADS"] = str(self.settings.num_threads)
        if self.settings.num_streams:
            cfg["NUM_STREAMS"] = str(self.settings.num_streams)
        return cfg

    def check(self, device: torch.device, precision: str) -> None:
        _import_ov()
        if device.type != "cpu":
            raise BackendUnavailable(f"openvino: runs on the CPU only, not {device}")
        if precision in _CAPS:
            caps = cpu_capabilities()
            if _CAPS[precision] not in caps:
                raise BackendUnavailable(
                    f"openvino: this CPU has no {_CAPS[precision]} inference "
                    f"(OPTIMIZATION_CAPABILITIES: {', '.join(caps)})"
                )
        elif precision == "int8":
            from rtderain.backends.int8 import _import_nncf

            _import_nncf()
            if "INT8" not in cpu_capabilities():
                raise BackendUnavailable("openvino: this CPU has no INT8 inference")
        elif precision != "fp32":
            raise BackendUnavailable(f"openvino: unknown precision {precision!r}")

    def versions(self) -> dict[str, str]:
        found = {"openvino": _import_ov().__version__, "torch": torch.__version__}
        try:
            import nncf  # the int8 graphs depend on it (its version is part of their key)

            found["nncf"] = nncf.__version__
        except ImportError:
            pass
        return found

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def build(self, model: MGID, spec: BuildSpec, path: Path) -> None:
        ov = _import_ov()
        # torch.export -> OpenVINO is about twice as fast as OpenVINO's own TorchScript trace.
        program = export_program(model, spec.shape, io=spec.io)
        with runtime_errors("openvino", "model conversion and compilation"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch pytree notices
                converted = ov.convert_model(program)
            converted.reshape(list(spec.input_shape))  # static shape: the fastest kernels
            core = ov.Core()
            config = self._config(spec.precision)
            if spec.precision == "int8":  # compiled once, the graph its checks measured
                compiled = self._quantize(core, converted, spec, config)
            else:
                compiled = core.compile_model(converted, "CPU", config)
            buf = io.BytesIO()
            compiled.export_model(buf)
        path.write_bytes(buf.getvalue())

    def _quantize(self, core: Any, converted: Any, spec: BuildSpec, config: dict) -> Any:
        from rtderain.backends.int8 import quantize

        compiled, _ = quantize(
            converted,
            lambda m: core.compile_model(m, "CPU", config),
            spec.batch,
            spec.height,
            spec.width,
            self.settings.int8,
            io=spec.io,
            require_faster=self.settings.int8_auto,
        )
        return compiled

    def load(self, model: MGID, spec: BuildSpec, path: Path | None) -> OpenVinoEngine:
        ov = _import_ov()
        assert path is not None
        data = path.read_bytes()
        with runtime_errors("openvino", f"loading {path.name}"):
            compiled = ov.Core().import_model(io.BytesIO(data), "CPU", self._config(spec.precision))
        return OpenVinoEngine(compiled, spec, model.multiple)
