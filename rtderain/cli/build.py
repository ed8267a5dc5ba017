"""``rtderain build``: prebuild an engine into the engine cache (``run`` builds on first use)."""

from __future__ import annotations

import click

from rtderain.cli.lazy import PRECISION_CHOICES
from rtderain.util import parse_size


@click.command()
@click.option("--engine", "engine", default="auto", show_default=True,
              help="Backend: auto, torch, onnxruntime, openvino, tensorrt.")
@click.option("--size", "sizes", multiple=True, required=True, metavar="WxH",
              help="Frame size (padded up to the model's multiple); repeat for several.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1),
              help="Frames per inference call.")
@click.option("--precision", default="auto", show_default=True,
              type=click.Choice(PRECISION_CHOICES))
@click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:N or auto.")
@click.option("--model", "model_name", default="mgid-rt", show_default=True,
              help="Registered model name.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file (its model name wins over --model).")
@click.option("--engines-dir", type=click.Path(file_okay=False), default=None,
              help="Engine cache folder (default: $RTDERAIN_ENGINES or <repo>/engines).")
def build(
    engine: str,
    sizes: tuple[str, ...],
    batch: int,
    precision: str,
    device: str,
    model_name: str,
    weights: str | None,
    engines_dir: str | None,
) -> None:
    """Build (or verify) engine artifacts in the engine cache.

    \b
    Examples:
      rtderain build --engine openvino --size 1280x720
      rtderain build --engine tensorrt --size 1920x1080 --batch 4 --precision fp16
    """
    from rtderain.backends.registry import create_engine
    from rtderain.models.checkpoint import load_model

    model = load_model(None if weights else model_name, weights)
    for text in sizes:
        width, height = parse_size(text, "--size")
        eng = create_engine(model, engine, device, precision, size=(height, width),
                            batch=batch, engines_dir=engines_dir)
        click.echo(f"{width}x{height}: {eng.selection}")
        # On CUDA the cached engine is wrapped (CudaFrameEngine), which forwards artifacts().
        artifacts = getattr(eng, "artifacts", None)
        if artifacts is not None:
            for artifact in artifacts():
                click.echo(f"  artifact: {artifact}")
        else:
            click.echo("  nothing to build for this backend (runs the model directly)")
