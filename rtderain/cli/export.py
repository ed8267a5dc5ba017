"""``rtderain export``: a portable file for other video tools (vs-mlrt ONNX, FFmpeg TorchScript)."""

from __future__ import annotations

from pathlib import Path

import click

from rtderain.errors import RTDerainError
from rtderain.util import parse_size


@click.command()
@click.option("--model", "model_name", default="mgid-rt", show_default=True,
              help="Registered model name.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file (its model name wins over --model).")
@click.option("--format", "fmt", required=True, type=click.Choice(["onnx", "torchscript"]),
              help="onnx: for vs-mlrt (VapourSynth); torchscript: for FFmpeg dnn_processing.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="File to write (.onnx or .pt).")
@click.option("--size", default=None, metavar="WxH",
              help="Static frame size (ONNX: the graph takes only this size).")
@click.option("--dynamic", is_flag=True,
              help="Any batch, height and width (the default when --size is not given).")
@click.option("--range", "value_range", default="01", show_default=True,
              type=click.Choice(["01", "11"]),
              help="Pixel range in and out: 01 = [0, 1] (vs-mlrt, FFmpeg), 11 = [-1, 1].")
@click.option("--fp16", is_flag=True,
              help="ONNX only: float16 weights and maths inside, float32 I/O (GPUs).")
@click.option("--opset", default=None, type=click.IntRange(18), help="ONNX opset (default 20).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(
    model_name: str,
    weights: str | None,
    fmt: str,
    output: str,
    size: str | None,
    dynamic: bool,
    value_range: str,
    fp16: bool,
    opset: int | None,
    overwrite: bool,
) -> None:
    """Export a de-raining network as a file other video tools run.

    Frames in and out are planar RGB float (N, 3, H, W); padding to the model's multiple
    happens inside the file, so any frame size works (see docs/exports.md).

    \b
    Examples:
      rtderain export --format onnx -o mgid-rt.onnx --dynamic
      rtderain export --format torchscript -o mgid-rt.pt
      rtderain export --format onnx --size 1920x1080 -o mgid-rt-1080p.onnx
    """
    from rtderain.models.checkpoint import load_model
    from rtderain.models.portable import export_portable

    if size is not None and dynamic:
        raise RTDerainError("--size and --dynamic exclude each other (pick one)")
    frame_size = parse_size(size, "--size") if size is not None else None
    path = Path(output)
    if not path.parent.is_dir():
        raise RTDerainError(f"-o {output}: folder {path.parent} does not exist")
    if path.exists() and not overwrite:
        raise RTDerainError(f"-o {output}: file exists (pass --overwrite to replace it)")
    model = load_model(None if weights else model_name, weights)
    export_portable(model, path, fmt, frame_size, value_range == "01", fp16, opset)
    shape = f"{frame_size[0]}x{frame_size[1]}" if frame_size else "any size"
    low = "0" if value_range == "01" else "-1"
    click.echo(f"{path}: {model.config.name} {fmt}, {shape}, RGB float in [{low}, 1]")
