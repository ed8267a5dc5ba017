"""TensorRT backend through torch-tensorrt (NVIDIA GPUs), following its documented AOT path:

``torch.export.export`` (fp16 weights and example, static shape)
-> ``torch_tensorrt.dynamo.compile(exported_program, arg_inputs=[...])``
-> ``torch_tensorrt.save(trt_gm, path, arg_inputs=[...])`` (an ExportedProgram ``.ep``)
-> ``torch.export.load(path).module()`` on later runs, from the engine cache.

Everything before the compile call is plain torch and runs (and is tested) on the CPU; the
compile itself needs CUDA and ``torch_tensorrt``, imported only here.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rtderain.backends.base import BackendUnavailable, BuildSpec, runtime_errors
from rtderain.models.export import DTYPES, example_input, export_program
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "fp32")


@dataclass(frozen=True)
class TensorRTSettings:
    """Settings of the torch-tensorrt backend.

    Tuning: ``optimization_level`` 0-5 (TensorRT builder effort; 3 is TensorRT's default,
    5 builds slowest and may run a few percent faster). ``workspace_gb`` caps the builder's
    scratch memory (0 = TensorRT decides). ``min_block_size`` is the smallest subgraph sent to
    TensorRT; the whole network converts, so the default keeps everything in one engine.
    """

    optimization_level: int = 3
    workspace_gb: float = 0.0
    min_block_size: int = 5


def _import_trt() -> Any:
    """``torch_tensorrt``, or :class:`BackendUnavailable` with the reason.

    A broken install does not raise ImportError only: a missing ``libnvinfer.so`` is an
    OSError, a torch ABI mismatch an undefined-symbol ImportError or a RuntimeError from
    op registration; any of them means "cannot run here", with the runtime's words.
    """
    try:
        import torch_tensorrt
    except ModuleNotFoundError as exc:
        if exc.name != "torch_tensorrt":  # a dependency of it is missing: a broken install
            raise BackendUnavailable(f"tensorrt: torch_tensorrt cannot load ({exc})") from exc
        raise BackendUnavailable(
            "tensorrt: torch_tensorrt is not installed (pip install 'rtderain[tensorrt]', "
            "see docs/engines.md for the torch / torch-tensorrt pairs)"
        ) from exc
    except Exception as exc:  # a third-party import: anything it raises means "broken"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise BackendUnavailable(
            f"tensorrt: torch_tensorrt cannot load ({type(exc).__name__}: {first})"
        ) from exc
    return torch_tensorrt


def _minor(version: str) -> tuple[int, ...]:
    """``2.9.0+cu128`` -> (2, 9); unparsable parts are dropped."""
    parts = []
    for part in version.split("+")[0].split(".")[:2]:
        digits = "".join(ch for ch in part if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def check_pair(torch_version: str, trt_version: str) -> None:
    """Each torch-tensorrt release is built against one torch minor (2.9.x for torch 2.9):
    another pair fails to load its ops or crashes. Raise :class:`BackendUnavailable`
    naming the release to install."""
    want = _minor(torch_version)
    if _minor(trt_version) != want:
        fix = ".".join(map(str, want))
        raise BackendUnavailable(
            f"tensorrt: torch-tensorrt {trt_version} is built for torch "
            f"{'.'.join(map(str, _minor(trt_version)))}, this is torch {torch_version} "
            f"(pip install 'torch-tensorrt=={fix}.*')"
        )


def compile_kwargs(
    compile_fn: Any,
    example: torch.Tensor,
    precision: str,
    settings: TensorRTSettings,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``torch_tensorrt.dynamo.compile`` (version-aware).

    Newer torch-tensorrt types the engine from the graph (``use_explicit_typing``, the graph
    is already fp16); older releases take ``enabled_precisions`` instead. ``device`` is the
    GPU the engine is built for (without it torch-tensorrt builds for GPU 0, whatever
    ``cuda:N`` was asked). ``fp32`` is fp32: TF32 is disabled (``disable_tf32``), as
    TensorRT would otherwise run the fp32 engine's convolutions in TF32.
    """
    params = inspect.signature(compile_fn).parameters
    kwargs: dict[str, Any] = {
        "arg_inputs" if "arg_inputs" in params else "inputs": [example],
        "min_block_size": settings.min_block_size,
        "optimization_level": settings.optimization_level,
    }
    if device is not None:
        kwargs["device"] = device
    if precision == "fp32":
        kwargs["disable_tf32"] = True
    if settings.workspace_gb:
        kwargs["workspace_size"] = int(settings.workspace_gb * (1 << 30))
    if "use_explicit_typing" in params:
        kwargs["use_explicit_typing"] = True
    else:
        kwargs["enabled_precisions"] = {DTYPES[precision]}
    return {k: v for k, v in kwargs.items() if k in params or k in ("arg_inputs", "inputs")}


def prepare(
    model: MGID, spec: BuildSpec, device: str | torch.device | None = None
) -> tuple[torch.export.ExportedProgram, torch.Tensor]:
    """The exported program and example input the compile step takes (fp16/fp32, static).

    ``device`` defaults to ``spec.device``; tests pass ``cpu`` to check the export here.
    """
    device = device or spec.device
    program = export_program(model, spec.shape, spec.precision, device)
    example = example_input(model, spec.shape, spec.precision, device)
    return program, example


class TensorRTEngine:
    """A loaded torch-tensorrt module for a fixed (N, 3, H, W) input on one GPU."""

    selection = ""  # set by create_engine

    name = "tensorrt"

    def __init__(self, module: Any, spec: BuildSpec, multiple: int) -> None:
        self.module = module
        self.device = torch.device(spec.device)
        self.dtype = DTYPES[spec.precision]
        self.multiple = multiple
        self.batch = spec.batch
        self.description = f"tensorrt {spec.precision} on {torch.cuda.get_device_name(self.device)}"

    @torch.inference_mode()
    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 3, H, W) float32 [-1, 1] RGB on the GPU -> same, float32."""
        return self.module(x.to(self.dtype).contiguous()).float()


class TensorRTBackend:
    """Backend-table entry: a saved torch-tensorrt ExportedProgram as the artifact."""

    name = "tensorrt"
    suffix = ".ep"
    static = True
    frames_io = False  # CudaFrameEngine uploads uint8 frames and normalises on the GPU

    def __init__(self, settings: TensorRTSettings | None = None) -> None:
        self.settings = settings or TensorRTSettings()

    def check(self, device: torch.device, precision: str) -> None:
        if device.type != "cuda":
            raise BackendUnavailable(f"tensorrt: needs an NVIDIA GPU, device is {device}")
        if not torch.cuda.is_available():
            raise BackendUnavailable("tensorrt: CUDA is not available")
        if precision not in PRECISIONS:
            raise BackendUnavailable(
                f"tensorrt: precision {precision} not supported (use {', '.join(PRECISIONS)})"
            )
        check_pair(torch.__version__, _import_trt().__version__)

    def versions(self) -> dict[str, str]:
        trt = _import_trt()
        versions = {"torch": torch.__version__, "torch_tensorrt": trt.__version__}
        try:
            import tensorrt

            versions["tensorrt"] = tensorrt.__version__
        except ImportError:
            pass
        return versions

    def settings_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.settings)

    def build(self, model: MGID, spec: BuildSpec, path: Path) -> None:
        trt = _import_trt()
        device = torch.device(spec.device)
        program, example = prepare(model, spec)
        kwargs = compile_kwargs(trt.dynamo.compile, example, spec.precision, self.settings,
                                device)
        save_params = inspect.signature(trt.save).parameters
        key = "arg_inputs" if "arg_inputs" in save_params else "inputs"
        with runtime_errors("tensorrt", "compilation"), torch.cuda.device(device):
            trt_gm = trt.dynamo.compile(program, **kwargs)
            trt.save(trt_gm, str(path), **{key: [example]})

    def load(self, model: MGID, spec: BuildSpec, path: Path | None) -> TensorRTEngine:
        _import_trt()  # registers the TensorRT ops the saved program calls
        assert path is not None
        with runtime_errors("tensorrt", f"loading {path.name}"), torch.cuda.device(spec.device):
            module = torch.export.load(str(path)).module()
        return TensorRTEngine(module, spec, model.multiple)
