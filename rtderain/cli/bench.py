"""``rtderain bench``: quality (methods x datasets), engine speed, pipeline overhead.

The measurements live in :mod:`rtderain.evaluation.quality`, :mod:`rtderain.bench.speed`
and :mod:`rtderain.bench.overhead`; this module only parses options and prints.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import click

from rtderain.errors import RTDerainError
from rtderain.util import parse_size

DEFAULT_SIZES = "640x360,1280x720,1920x1080"


@click.group("bench")
def bench() -> None:
    """Benchmarks: quality table, engine speed, pipeline overhead."""


def _parse_weights(items: tuple[str, ...]) -> dict[str, str]:
    weights = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise RTDerainError(f"--weights wants NAME=PATH, got {item!r}")
        weights[name] = path
    return weights



def _command(ctx: click.Context) -> str:
    """The command line that reproduces this run (options given explicitly, not defaults)."""
    words = ["rtderain", "bench", "quality"]
    for param in ctx.command.params:
        value = ctx.params.get(param.name)
        source = ctx.get_parameter_source(param.name)
        if source is not None and source.name == "DEFAULT":
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words += [flag] if value else []
        elif isinstance(value, tuple):
            for v in value:
                words += [flag, str(v)]
        elif value is not None:
            words += [flag, str(value)]
    return " ".join(shlex.quote(w) for w in words)




@bench.command("quality")
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="NAME",
    help="Method to run (repeatable); default: every baseline, plus each network "
    "that has shipped or --weights weights.",
)
@click.option(
    "--dataset",
    "datasets",
    multiple=True,
    type=click.Choice(["nturain_a1", "rain100h_dev", "synthetic"]),
    help="Dataset (repeatable); default: all three.",
)
@click.option(
    "--data-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder holding the benchmark data (default: $RTDERAIN_DATA).",
)
@click.option(
    "--weights",
    "weight_items",
    multiple=True,
    metavar="NAME=PATH",
    help="Checkpoint for a network method, e.g. mgid=ckpt/mgid.pt.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="bench_out/quality",
    show_default=True,
    help="Output folder: quality.md, quality.json, grid_*.png.",
)
@click.option(
    "--max-frames",
    type=int,
    default=None,
    help="Use only the first N frames/images of each dataset (quick runs).",
)
@click.option(
    "--synth-dir",
    type=click.Path(file_okay=False),
    default="bench_out/synthetic",
    show_default=True,
    help="Where the synthetic set is rendered (once; reused when present).",
)
@click.option(
    "--merge",
    is_flag=True,
    help="Keep the rows of OUT/quality.json for (method, dataset) pairs not run now "
    "(e.g. add network rows to a baseline table without rerunning the baselines).",
)

@click.option("--temporal", "temporal_modes", multiple=True,
              type=click.Choice(["off", "window", "causal"]),
              help="Temporal modes of the network methods (repeatable; default off): one row "
                   "per network and mode, named NAME+MODE.")
def quality(
    methods, datasets, data_root, weight_items, out_dir, max_frames, synth_dir, merge,
    temporal_modes,
) -> None:
    """Quality table: PSNR / SSIM / VIF / FSIM and s/frame of methods on benchmark datasets.

    \b
    Datasets under --data-root (or $RTDERAIN_DATA): nturain_a1 (a video), rain100h_dev
    (single images), synthetic (rendered once from clean/wsdot_i5_frames into --synth-dir).
    """
    from rtderain.evaluation.quality import run_quality
    from rtderain.util import data_root as resolve_data_root

    md = run_quality(
        list(methods),
        tuple(datasets),
        resolve_data_root(data_root, "--data-root"),
        _parse_weights(weight_items),
        out_dir,
        max_frames,
        synth_dir,
        merge,
        _command(click.get_current_context()),
        echo=lambda line: click.echo(line, err=True),
        temporal_modes=tuple(temporal_modes) or ("off",),
    )
    click.echo(md)


@bench.command("speed")
@click.option("--backends", default="torch,onnxruntime,openvino", show_default=True,
              help="Comma-separated backends.")
@click.option("--precisions", default="fp32,bf16", show_default=True,
              help="Comma-separated precisions (combinations a backend lacks are listed).")
@click.option("--models", default="mgid-rt,mgid", show_default=True,
              help="Comma-separated model names.")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True,
              help="Comma-separated WxH frame sizes.")
@click.option("--batch", default=1, show_default=True, type=click.IntRange(1))
@click.option("--device", default="cpu", show_default=True)
@click.option("--iters", default=10, show_default=True, type=click.IntRange(1),
              help="Timed model-only calls (fewer if --budget runs out).")
@click.option("--warmup", default=2, show_default=True, type=click.IntRange(0))
@click.option("--budget", default=20.0, show_default=True,
              help="Seconds of timed model-only calls per combination (about twice that "
                   "end to end).")
@click.option("--e2e-frames", default=60, show_default=True, type=click.IntRange(0),
              help="Frames of the generated H.264 clip for end-to-end fps, at most (fewer "
                   "for slow combinations, at least 8; 0: skip).")
@click.option("--engines-dir", type=click.Path(file_okay=False), default=None,
              help="Engine cache folder (default: $RTDERAIN_ENGINES or <repo>/engines).")
@click.option("--torch-compile", is_flag=True,
              help="Run the torch rows with torch.compile (compiles during warm-up).")
@click.option("--format", "fmt", type=click.Choice(["md", "json"]), default="md",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Also write the result to this file.")
@click.option("--synthetic-clip", is_flag=True,
              help="End to end on a synthetic clip instead of real rainy scenery (the sample).")
@click.option("--temporal", default="off", show_default=True,
              help="Comma-separated temporal modes (off, causal, window): one end-to-end row "
                   "each, with the stage's own ms/frame beside it.")
@click.option("--preset", default="fast", show_default=True,
              help="libx264 preset of the end-to-end runs and their decode+encode ceiling "
                   "(configs/realtime.yaml: ultrafast).")
@click.option("--crf", default=18, show_default=True, type=click.IntRange(0, 51),
              help="libx264 crf of the end-to-end runs (configs/realtime.yaml: 20).")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="Inference threads (OpenVINO, ONNX Runtime, torch; default: theirs).")
@click.option("--encode-threads", type=click.IntRange(min=1), default=None,
              help="libx264 threads of the end-to-end runs (default: x264's, all cores).")
@click.option("--io", "io", default="rgb,yuv", show_default=True,
              help="Row kinds: rgb (frames through RGB) and yuv (the YUV-native path: luma "
                   "networks such as mgid-lite only).")
def speed(backends: str, precisions: str, models: str, sizes: str, batch: int, device: str,
          iters: int, warmup: int, budget: float, e2e_frames: int, engines_dir: str | None,
          torch_compile: bool, fmt: str, output: str | None, synthetic_clip: bool,
          temporal: str, preset: str, crf: int, threads: int | None,
          encode_threads: int | None, io: str) -> None:
    """Engine speed: model-only ms/frame and end-to-end fps per combination.

    \b
    Examples:
      rtderain bench speed
      rtderain bench speed --models mgid --sizes 1000x1000 --e2e-frames 0
      rtderain bench speed --backends openvino --sizes 640x360 --format json -o speed.json
      rtderain bench speed --models mgid-rt --sizes 1280x720 --temporal off,causal
      rtderain bench speed --models mgid-lite --precisions bf16,int8 --preset superfast
    """
    from rtderain.bench.speed import io_kinds, run_speed, temporal_modes
    from rtderain.media.writer import EncodeOptions

    if threads:
        import torch

        torch.set_num_threads(threads)  # torch's pool is process-wide

    for text in sizes.split(","):
        if text.strip():
            parse_size(text.strip(), "--sizes")  # fail early on a bad size
    try:
        temporal_modes(temporal)  # fail early on a bad mode
    except RTDerainError as exc:
        raise click.BadParameter(str(exc), param_hint="--temporal") from None
    try:
        io_kinds(io)
    except RTDerainError as exc:
        raise click.BadParameter(str(exc), param_hint="--io") from None
    text = run_speed(backends, precisions, models, sizes, batch, device, iters, warmup, budget,
                     e2e_frames, engines_dir, torch_compile, fmt,
                     echo=lambda line: click.echo(line, err=True), synthetic_clip=synthetic_clip,
                     temporal=temporal, threads=threads, io=io,
                     encode=EncodeOptions(crf=crf, preset=preset, options=(
                         {"threads": str(encode_threads)} if encode_threads else {})))
    click.echo(text, nl=False)
    if output:
        Path(output).write_text(text)


@bench.command("pipeline")
@click.argument("clip", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--size", default="1280x720", show_default=True, help="WxH of the synthetic clip.")
@click.option("--frames", default=150, show_default=True, help="Frames of the synthetic clip.")
@click.option("--batch", default=4, show_default=True, help="Pipeline batch size.")
@click.option("--repeat", default=3, show_default=True, help="Runs of each; the best counts.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON.")
@click.option("--synthetic-clip", is_flag=True,
              help="Without CLIP: a synthetic clip instead of real rainy scenery.")
def pipeline(clip, size, frames, batch, repeat, json_path, synthetic_clip) -> None:
    """Pipeline fps with an identity model next to plain PyAV decode+encode fps.

    Without CLIP, an H.264 clip of --size and --frames is made first from the shipped
    sample (real scenery with rain; --synthetic-clip for a synthetic one).
    """
    from rtderain.bench.overhead import measure_overhead

    r = measure_overhead(clip, parse_size(size, "--size"), frames, batch, repeat,
                         synthetic=synthetic_clip)
    click.echo(f"clip: {r['clip']}; encoder {r['encoder']}; {r['machine']}")
    for name, row in r["results"].items():
        click.echo(f"  {name:<30} {row['fps']:7.1f} fps  ({row['seconds']:.2f} s)")
    click.echo(
        f"pipeline overhead vs plain PyAV with the same RGB conversion: {r['overhead']:+.1%}"
    )
    if json_path:
        Path(json_path).write_text(json.dumps(r, indent=2))
