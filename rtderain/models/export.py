"""Export a de-raining network with ``torch.export`` and to ONNX, on the CPU.

Both exports trace :meth:`MGID.forward` (the inference graph: frame in, background out) at
one static shape. The memory items are a buffer of the model, so they travel inside the
exported artifact as a constant: a state-dict buffer of the ``ExportedProgram`` and an
initializer of the ONNX graph, never an extra input. The only graph input is the frame.

Two graph interfaces (``io``):

* ``float``: (N, 3, H, W) float in [-1, 1], RGB in, the background out, same layout;
* ``u8``: (N, H, W, 3) uint8 RGB in and out (:class:`FrameGraph`): the normalisation,
  layout change, rounding and clamping run inside the graph, where the runtime fuses them
  with the first and last convolutions instead of the pipeline paying two passes over
  every frame in Python;
* ``luma-tv`` / ``luma-pc`` (luma networks only): (N, H, W) uint8, a decoder's Y plane in
  limited (16-235) or full range, in and out (:class:`LumaGraph`). The chroma planes never
  reach the engine: grey rain changes Y alone, so a YUV frame is de-rained without any
  conversion to RGB and back (docs/realtime.md).

H and W are multiples of ``model.multiple`` in both.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from rtderain.errors import RTDerainError
from rtderain.models.mgid import MGID

log = logging.getLogger(__name__)

_NOISY_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
IO_KINDS = ("float", "u8", "luma-tv", "luma-pc")
LUMA_IO = {"luma-tv": (16.0, 219.0), "luma-pc": (0.0, 255.0)}  # io -> (black level, span)


class FrameGraph(torch.nn.Module):
    """uint8 frames in, uint8 frames out around a float network.

    ``forward``: (N, H, W, 3) uint8 RGB -> (N, H, W, 3) uint8 RGB. Inside: scale to
    [-1, 1] in the network's dtype, run it, then ``round((y + 1) * 127.5)`` clamped to
    [0, 255] in float32 (ties to even, as OpenCV's ``saturate_cast`` in
    :func:`rtderain.media.tensors.from_tensor`), so both interfaces quantise alike.
    """

    def __init__(self, net: torch.nn.Module, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        x = frames.permute(0, 3, 1, 2).to(self.dtype) * (2.0 / 255.0) - 1.0
        y = self.net(x).float()
        y = torch.round(y * 127.5 + 127.5).clamp(0.0, 255.0).to(torch.uint8)
        return y.permute(0, 2, 3, 1)


class LumaGraph(torch.nn.Module):
    """A luma network on a decoder's Y plane: (N, H, W) uint8 -> (N, H, W) uint8.

    ``black`` and ``span`` are the plane's range (16 and 219 for limited range, 0 and 255
    for full): the network sees ``(Y - black) / span`` scaled to [-1, 1], and its grey rain
    layer, back in the plane's levels, is subtracted from Y itself, rounded (ties to even)
    and clamped to [0, 255]. A pixel with no rain keeps its exact level, super-black and
    super-white included, which is the RGB path's ``B = I - R`` on the same frame.
    """

    def __init__(
        self, net: MGID, black: float, span: float, dtype: torch.dtype = torch.float32
    ) -> None:
        super().__init__()
        self.net = net
        self.black, self.span, self.dtype = black, span, dtype

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        y = planes[:, None].float()
        x = (y - self.black) * (2.0 / self.span) - 1.0
        rain = self.net.forward_luma(x.to(self.dtype)).float()
        out = torch.round(y - rain * (self.span / 2.0)).clamp(0.0, 255.0)
        return out.to(torch.uint8)[:, 0]


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the ONNX exporter's progress prints, warnings and INFO logs."""
    loggers = [logging.getLogger(name) for name in _NOISY_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def check_shape(model: MGID, shape: tuple[int, int, int, int]) -> None:
    """Reject a shape the model cannot take (wrong channels or H/W not a padded multiple)."""
    n, c, h, w = shape
    m = model.multiple
    if n < 1 or c != 3 or h < m or w < m or h % m or w % m:
        raise RTDerainError(
            f"input shape {tuple(shape)} is not (N>=1, 3, H, W) with H and W positive "
            f"multiples of {m} (model {model.config.name}); pad the frame first"
        )


def example_input(
    model: MGID,
    shape: tuple[int, int, int, int],
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    seed: int = 0,
    io: str = "float",
) -> torch.Tensor:
    """A random frame batch for ``shape`` = (N, 3, H, W) (the tracing example).

    ``io="float"``: (N, 3, H, W) in [-1, 1] in ``precision``; ``io="u8"``: (N, H, W, 3)
    uint8; a luma io: (N, H, W) uint8 (the precision is then the network's, inside the
    graph).
    """
    check_shape(model, shape)
    gen = torch.Generator().manual_seed(seed)
    n, _, h, w = shape
    if io == "u8":
        x = torch.randint(0, 256, (n, h, w, 3), generator=gen, dtype=torch.uint8)
        return x.to(device=device)
    if io in LUMA_IO:
        if not model.config.luma:
            raise RTDerainError(f"model {model.config.name} is not a luma network: no {io} io")
        return torch.randint(0, 256, (n, h, w), generator=gen, dtype=torch.uint8).to(device)
    if io != "float":
        raise RTDerainError(f"unknown graph interface {io!r} (use {', '.join(IO_KINDS)})")
    x = torch.rand(shape, generator=gen) * 2 - 1
    return x.to(device=device, dtype=DTYPES[precision])


def graph_module(
    model: MGID, precision: str = "fp32", device: str | torch.device = "cpu", io: str = "float"
) -> torch.nn.Module:
    """A copy of ``model`` in eval mode, cast to ``precision`` on ``device``, wrapped in
    :class:`FrameGraph` for ``io="u8"`` and :class:`LumaGraph` for a luma io (the
    caller's model is not modified)."""
    net = copy.deepcopy(model).eval().to(device=device, dtype=DTYPES[precision])
    if io in LUMA_IO:
        return LumaGraph(net, *LUMA_IO[io], DTYPES[precision])
    return FrameGraph(net, DTYPES[precision]) if io == "u8" else net


def export_program(
    model: MGID,
    shape: tuple[int, int, int, int],
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    io: str = "float",
) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model.forward`` at a static ``shape``.

    Args:
        shape: (N, 3, H, W), H and W multiples of ``model.multiple``.
        precision: the model and example are cast to this dtype first (``fp16`` for
            TensorRT); the caller's model is not modified.
        device: where the traced weights and example live (``cuda`` for TensorRT).
        io: graph interface, ``float`` or ``u8`` (see the module docstring).
    """
    example = example_input(model, shape, precision, device, io=io)
    net = graph_module(model, precision, device, io)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracing internals' deprecation notices
        return torch.export.export(net, (example,), strict=False)


def export_onnx(
    model: MGID,
    path: str | Path,
    shape: tuple[int, int, int, int],
    opset: int = 20,
    io: str = "float",
) -> Path:
    """Write ``model.forward`` as a self-contained ONNX file (fp32, static ``shape``).

    The torch.export-based exporter (``dynamo=True``) is used; weights and memory items are
    stored inside the file (no external data). Input ``frames``, output ``background``;
    ``io`` as in :func:`export_program`.
    """
    check_shape(model, shape)
    path = Path(path)
    example = example_input(model, shape, io=io)
    net = graph_module(model, io=io)
    with torch.no_grad(), _quiet_exporter():
        program = torch.onnx.export(
            net,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=["frames"],
            output_names=["background"],
            external_data=False,
            verbose=False,
        )
        if program is None:  # pragma: no cover - very old torch wrote the file itself
            raise RTDerainError("torch.onnx.export returned no program (torch too old?)")
        program.save(str(path), external_data=False)
    log.debug("exported %s %s to %s", model.config.name, shape, path)
    return path
