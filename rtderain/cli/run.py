"""``rtderain run`` (the default command) and ``rtderain models``."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import click
from tqdm import tqdm

from rtderain.cli.lazy import PRECISION_CHOICES, PRECISION_HELP, memory_options

log = logging.getLogger(__name__)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("inputs", nargs=-1, type=click.Path(), metavar="INPUT...")
@click.option(
    "-o", "--output", type=click.Path(), help="Output file (or folder for a folder input)."
)
@click.option(
    "--out-dir",
    type=click.Path(file_okay=False),
    help="Output folder for several inputs (same names).",
)
@click.option(
    "-m", "--model", default=None,
    help="Model: mgid (paper, default), mgid-rt or mgid-lite (real time; 1080p: "
    "-c configs/realtime.yaml)."
)
@click.option(
    "-w",
    "--weights",
    type=click.Path(dir_okay=False),
    default=None,
    help="Checkpoint file instead of the shipped weights.",
)
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="YAML config with a `run:` section (see configs/run.yaml).",
)
@click.option(
    "--engine",
    default=None,
    help="Backend: auto (default), torch, onnxruntime, openvino, tensorrt.",
)
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto (default).")
@click.option(
    "--precision",
    type=click.Choice(PRECISION_CHOICES),
    default=None,
    help=PRECISION_HELP,
)
@click.option(
    "-b",
    "--batch",
    type=click.IntRange(1, 256),
    default=None,
    help="Frames per inference call (default 4).",
)
@click.option(
    "--codec",
    default=None,
    help="Video encoder: h264 (default), hevc, av1, vp9, ffv1, h264_nvenc, ...",
)
@click.option(
    "--crf",
    type=click.IntRange(0, 63),
    default=None,
    help="Constant rate factor (default 18; lower is better).",
)
@click.option("--preset", default=None, help="Encoder preset (default fast).")
@click.option("--pix-fmt", default=None, help="Output pixel format (default: the source's).")
@click.option(
    "--temporal",
    type=click.Choice(["off", "window", "causal"]),
    default=None,
    help="Temporal stage after the network for videos and frame folders: window (default: "
    "a still camera's static background from the frames around; elsewhere aligned "
    "neighbours replace rain the network left; at or above per frame on static and "
    "moving clips, docs/temporal.md), causal (past frames only) or off (per frame).",
)
@click.option(
    "--temporal-radius",
    type=click.IntRange(1, 8),
    default=None,
    help="Neighbours on each side (window) or in the past (causal); default 4 for window "
    "(the still-camera rule uses all of them, the flow rule aligns the nearest 2), 4 for "
    "causal (the still-camera rule only).",
)
@memory_options
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@click.option("--strict", is_flag=True,
              help="Any input stream the output cannot keep (a data track, an attachment "
              "outside .mkv, ...) is an error before any work, not a warning.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar and no summary.")
def run(
    inputs,
    output,
    out_dir,
    model,
    weights,
    config_path,
    engine,
    device,
    precision,
    batch,
    codec,
    crf,
    preset,
    pix_fmt,
    temporal,
    temporal_radius,
    max_memory,
    tile,
    orient,
    overwrite,
    strict,
    quiet,
) -> None:
    """De-rain videos, images or folders of images.

    \b
    A video keeps every frame and its timestamp, its resolution, colour matrix and range,
    its audio and subtitle streams and extra video tracks (copied as packets), Matroska
    attachments (to .mkv) and a timecode track (to .mov/.mp4); any other stream is
    dropped with a warning naming it (--strict: an error). The output is written under
    a temporary name and renamed when complete; Ctrl-C leaves nothing at OUTPUT.

    \b
    Examples:
      rtderain rainy.mp4 -o clean.mp4
      rtderain rainy.mp4 -o clean.mkv --model mgid-rt --codec hevc --crf 20
      rtderain a.mp4 b.mp4 --out-dir clean/
      rtderain photo.jpg -o photo_clean.png
      rtderain frames/ -o clean_frames/
    """
    from rtderain.jobs import load_run_settings, plan_jobs
    from rtderain.media.writer import check_container

    cfg = load_run_settings(config_path)
    enc = cfg.encode
    enc = replace(
        enc,
        codec=codec or enc.codec,
        crf=enc.crf if crf is None else crf,
        preset=preset or enc.preset,
        pix_fmt=pix_fmt or enc.pix_fmt,
    )
    cfg = replace(
        cfg,
        model=model or cfg.model,
        weights=weights or cfg.weights,
        engine=engine or cfg.engine,
        device=device or cfg.device,
        precision=precision or cfg.precision,
        batch=batch or cfg.batch,
        max_memory=max_memory or cfg.max_memory,
        tile=tile or cfg.tile,
        orient=cfg.orient if orient is None else orient,
        encode=enc,
        temporal=replace(
            cfg.temporal,
            mode=temporal or cfg.temporal.mode,
            radius=temporal_radius or cfg.temporal.radius,
        ),
    )
    if model is not None and cfg.weights:  # an explicit --model must match the weights
        from rtderain.models.checkpoint import check_weights_model

        check_weights_model(model, cfg.weights)
    jobs = plan_jobs(inputs, output, out_dir, overwrite)
    for job in jobs:  # an unknown codec, or one the container cannot hold: before any work
        if job.kind == "video":
            check_container(cfg.encode, job.target)
    if strict:
        from rtderain.media.streams import check_strict

        for job in jobs:
            if job.kind == "video":
                check_strict(job.source, job.target)  # every input, before any work
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    from rtderain.api import Derainer  # heavy imports (torch) only when there is work

    derainer = Derainer.from_settings(
        cfg, notify=None if quiet else lambda line: click.echo(line, err=True)
    )
    for job in jobs:
        unit = "image" if job.kind == "folder" else "frame"
        with tqdm(unit=unit, desc=job.source.name, disable=quiet, dynamic_ncols=True,
                  leave=False) as bar:

            def progress(done: int, total: int, bar=bar) -> None:
                bar.total = total or None
                bar.update(done - bar.n)

            line = derainer.run(job, overwrite=overwrite, progress=progress,
                                encode=cfg.encode, queue_frames=cfg.queue_frames,
                                strict=strict)
        if not quiet:
            click.echo(line, err=True)


@click.command()
def models() -> None:
    """List the models, their size and their shipped weights."""
    from rtderain.models import MODELS, build_model, count_parameters, shipped_weights
    from rtderain.models.checkpoint import read_checkpoint

    click.echo(f"{'model':<10} {'params':>9} {'pad':>4}  weights")
    for name, cfg in MODELS.items():
        params = count_parameters(build_model(cfg))
        path = shipped_weights(name)
        if path is None:
            info = "none shipped (untrained network = identity)"
        else:
            meta = read_checkpoint(path).get("meta", {})
            steps = meta.get("step", "?")
            minutes = meta.get("train_minutes")
            trained = f"{steps} training steps" + (f", {minutes:.0f} min" if minutes else "")
            before = meta.get("init")  # continued from earlier weights (run.init)
            if isinstance(before, dict) and "step" in before:
                trained += (f", after {before['step']} steps"
                            f" ({before.get('train_minutes', 0):.0f} min) of earlier training")
            info = f"{path.name} ({path.stat().st_size / 1e6:.1f} MB, {trained})"
        click.echo(f"{name:<10} {params / 1e6:>8.3f}M {cfg.multiple:>4}  {info}")
