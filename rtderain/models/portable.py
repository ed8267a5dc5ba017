"""Portable exports for video tools: ONNX for vs-mlrt (VapourSynth) and TorchScript for FFmpeg.

Both files wrap the network in :class:`PortableGraph`, which follows the convention of the
host tool rather than ours:

* input and output: (N, 3, H, W) float32 planar RGB in [0, 1] (``range01=True``, the
  convention of vs-mlrt's ``inference()`` and of FFmpeg's ``dnn_processing`` torch backend),
  or our native [-1, 1] (``range01=False``);
* any H and W: the graph pads the frame up to ``model.multiple`` on the bottom/right itself,
  from the input's runtime shape, and crops the result back, so the host never has to;
* the memory items are a buffer of the model and become a constant of the graph (no extra
  input); the output is clamped to the input's range.

Padding is the same as :func:`rtderain.media.tensors.pad_to_multiple` (what ``rtderain run``
does): reflect, so an exported file gives the same pixels as our torch engine. Reflect
padding needs the pad to be smaller than the frame, which holds for every frame of at least
``multiple`` pixels per side; the TorchScript graph falls back to replicate padding for
smaller frames (as ``pad_to_multiple`` does), a dynamic ONNX graph needs H, W >= ``multiple``
(a static one picks the padding mode for its size at export).

``size`` given: a static (1, 3, H, W) graph for that frame size only (ONNX runtimes reject
other shapes; the TorchScript file still pads whatever it gets, see :func:`export_torchscript`).
"""

from __future__ import annotations

import copy
import logging
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from rtderain import __version__, util
from rtderain.errors import RTDerainError
from rtderain.models.checkpoint import weights_digest
from rtderain.models.export import _quiet_exporter
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

FORMATS = ("onnx", "torchscript")
DEFAULT_OPSET = 20


class PortableGraph(torch.nn.Module):
    """Host-convention wrapper: any-size frames in the host's range, padding inside.

    ``forward``: (N, 3, H, W) float32 planar RGB in [0, 1] (``range01``) or [-1, 1] ->
    the de-rained frame, same shape, float32 and range, clamped to it. The frame is
    reflect-padded on the bottom/right to multiples of ``multiple`` and cropped back after
    the network. ``reflect_only=False`` falls back to replicate padding for frames too small
    to reflect (as :func:`rtderain.media.tensors.pad_to_multiple`); ``torch.export`` needs
    ``reflect_only=True``, since that test depends on the runtime shape. ``fp16``: the
    network runs in float16 (its weights must be float16), I/O stays float32.
    """

    def __init__(
        self,
        net: torch.nn.Module,
        multiple: int,
        range01: bool = True,
        reflect_only: bool = False,
        fp16: bool = False,
    ) -> None:
        super().__init__()
        self.net = net
        self.multiple = multiple
        self.range01 = range01
        self.reflect_only = reflect_only
        self.fp16 = fp16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.shape[2]
        w = x.shape[3]
        m = self.multiple
        # Ceil-to-multiple, written so a symbolic shape stays provably divisible by m.
        ph = (h + m - 1) // m * m - h
        pw = (w + m - 1) // m * m - w
        if self.range01:
            x = x * 2.0 - 1.0
        if self.reflect_only or (ph < h and pw < w):
            x = F.pad(x, [0, pw, 0, ph], mode="reflect")
        else:
            x = F.pad(x, [0, pw, 0, ph], mode="replicate")
        if self.fp16:
            x = x.half()
        y = self.net(x)[:, :, :h, :w].float()
        if self.range01:
            return torch.clamp(y * 0.5 + 0.5, 0.0, 1.0)
        return torch.clamp(y, -1.0, 1.0)


def portable_graph(
    model: MGID, range01: bool = True, reflect_only: bool = False, fp16: bool = False
) -> PortableGraph:
    """A :class:`PortableGraph` around an eval-mode copy of ``model`` (float16 with ``fp16``;
    the caller's model is not modified)."""
    net = copy.deepcopy(model).eval().to(dtype=torch.float16 if fp16 else torch.float32)
    return PortableGraph(net, model.multiple, range01, reflect_only, fp16).eval()


def check_size(model: MGID, size: tuple[int, int] | None) -> None:
    """Reject a static ``size`` = (width, height) the graph cannot take."""
    if size is None:
        return
    width, height = size
    if width < 1 or height < 1:
        raise RTDerainError(f"size {width}x{height}: width and height must be >= 1")


def metadata(model: MGID, range01: bool, size: tuple[int, int] | None, fp16: bool) -> dict:
    """The ``rtderain.*`` metadata written into every portable export (all values str)."""
    return {
        "rtderain.model": model.config.name,
        "rtderain.weights_digest": weights_digest(model),
        "rtderain.weights_file": model.weights_path.name if model.weights_path else "",
        "rtderain.range": "0..1" if range01 else "-1..1",
        "rtderain.layout": "NCHW float planar RGB",
        "rtderain.multiple": str(model.multiple),
        "rtderain.size": f"{size[0]}x{size[1]}" if size else "dynamic",
        "rtderain.precision": "fp16" if fp16 else "fp32",
        "rtderain.version": __version__,
    }


def _example(size: tuple[int, int] | None, multiple: int) -> torch.Tensor:
    """A (1, 3, H, W) tracing example in [0, 1]: ``size`` = (width, height), or an odd size."""
    width, height = size if size else (2 * multiple + 3, 2 * multiple + 5)
    gen = torch.Generator().manual_seed(0)
    return torch.rand((1, 3, height, width), generator=gen)


def export_vsmlrt_onnx(
    model: MGID,
    path: str | Path,
    size: tuple[int, int] | None = None,
    range01: bool = True,
    fp16: bool = False,
    opset: int | None = None,
) -> Path:
    """Write ``model`` as a self-contained ONNX file for vs-mlrt's ``inference()``.

    Input ``input``, output ``output``: (N, 3, H, W) float32 planar RGB in [0, 1] (or
    [-1, 1] with ``range01=False``). ``fp16``: float16 weights and arithmetic inside, I/O
    still float32 (an ``RGBS`` clip either way). ``size`` = (width, height) gives a static
    (1, 3, H, W) graph (runtimes reject other shapes); without it N, H and W are dynamic
    axes (H, W >= the model's multiple, where reflect padding is always possible). Padding
    to the multiple and the crop back run inside the graph; the memory items are an
    initializer. The file is written atomically and checked with
    ``onnx.checker``; metadata props carry :func:`metadata`.

    Returns ``path``.
    """
    import onnx

    check_size(model, size)
    path = Path(path)
    net = portable_graph(model, range01, reflect_only=size is None, fp16=fp16)
    example = _example(size, model.multiple)
    dynamic_shapes = None
    if size is None:
        m = model.multiple
        dims = (
            torch.export.Dim("batch", min=1, max=1024),
            torch.export.Dim("height", min=m, max=16384),
            torch.export.Dim("width", min=m, max=16384),
        )
        dynamic_shapes = {"x": {0: dims[0], 2: dims[1], 3: dims[2]}}
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            opset_version=opset or DEFAULT_OPSET,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
    if program is None:  # pragma: no cover - very old torch wrote the file itself
        raise RTDerainError("torch.onnx.export returned no program (torch too old?)")
    proto = program.model_proto
    for key, value in metadata(model, range01, size, fp16).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(proto)
    util.atomic_write(path, lambda tmp: onnx.save_model(proto, str(tmp)))
    log.info("exported %s to %s (ONNX, fp16=%s)", model.config.name, path, fp16)
    return path


def export_torchscript(
    model: MGID, path: str | Path, size: tuple[int, int] | None = None, range01: bool = True
) -> Path:
    """Write ``model`` as a TorchScript file for FFmpeg's ``dnn_processing`` torch backend.

    ``forward``: (N, 3, H, W) float32 planar RGB in [0, 1] (FFmpeg feeds RGB24 frames like
    that, N = 1) or [-1, 1] with ``range01=False`` -> the same. The wrapper is scripted
    (``torch.jit.script``), not traced, so the padding to the model's multiple follows the
    runtime shape: any frame size works. ``size`` = (width, height) only validates the
    size and is recorded in the metadata (a scripted graph has no static shape to fix);
    the file runs on any size. Metadata (:func:`metadata`) is stored as the extra file
    ``rtderain.json``. Written atomically; returns ``path``.
    """
    import json

    check_size(model, size)
    path = Path(path)
    graph = portable_graph(model, range01)
    m = model.multiple
    padded = torch.rand((1, 3, 2 * m, 3 * m), generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The network has no shape arithmetic of its own (convs, pools, pixel (un)shuffle,
        # concat), so a trace at one padded size runs at every padded size; the wrapper,
        # which does the shape arithmetic, is scripted so its padding stays dynamic.
        graph.net = torch.jit.trace(graph.net, (padded * 2 - 1,), check_trace=False)
        scripted = torch.jit.script(graph)
    extra = {"rtderain.json": json.dumps(metadata(model, range01, size, False), indent=1)}
    example = _example(size, model.multiple)
    with torch.no_grad():
        scripted(example)  # fail here, not in FFmpeg, if the graph cannot run

    def write(tmp: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is what FFmpeg loads
            torch.jit.save(scripted, str(tmp), _extra_files=extra)

    util.atomic_write(path, write)
    log.info("exported %s to %s (TorchScript)", model.config.name, path)
    return path


def export_portable(
    model: MGID,
    path: str | Path,
    fmt: str,
    size: tuple[int, int] | None = None,
    range01: bool = True,
    fp16: bool = False,
    opset: int | None = None,
) -> Path:
    """Dispatch to :func:`export_vsmlrt_onnx` (``fmt="onnx"``) or :func:`export_torchscript`."""
    if fmt == "onnx":
        return export_vsmlrt_onnx(model, path, size, range01, fp16, opset)
    if fmt == "torchscript":
        if fp16:
            raise RTDerainError("--fp16 is for --format onnx (FFmpeg feeds float32 frames)")
        if opset is not None:
            raise RTDerainError("--opset is for --format onnx")
        return export_torchscript(model, path, size, range01)
    raise RTDerainError(f"unknown export format {fmt!r} (use {', '.join(FORMATS)})")
