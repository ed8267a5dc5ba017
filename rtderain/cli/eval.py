"""``rtderain eval``: PSNR / SSIM / VIF / FSIM of de-rained frames against clean frames.

Two ways in: ``rtderain eval PRED GT`` (videos, frame folders or images; frame i of PRED
against frame i of GT) and ``rtderain eval --method NAME --dataset FOLDER`` (run a method
of :mod:`rtderain.evaluation.methods` on the dataset's rainy frames and score it). The
scoring is :mod:`rtderain.evaluation.scoring`; this module parses options and prints.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from rtderain.cli.lazy import PRECISION_CHOICES
from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

# The metric names (rtderain.evaluation.metrics.METRICS, which imports numpy).
METRICS = ("psnr", "ssim", "vif", "fsim")


def _parse_metrics(text: str) -> tuple[str, ...]:
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    bad = [n for n in names if n not in METRICS]
    if bad or not names:
        raise RTDerainError(
            f"unknown metric {bad[0] if bad else text!r}; use {','.join(METRICS)}"
        )
    return names


@click.command("eval")
@click.argument("pred", required=False, type=click.Path())
@click.argument("gt", required=False, type=click.Path())
@click.option(
    "--method",
    "methods",
    multiple=True,
    metavar="NAME",
    help="Run this method on --dataset (repeatable). See --list-methods.",
)
@click.option("--dataset", type=click.Path(), help="Folder with rain/ and gt/ (or clean/).")
@click.option("--weights", type=click.Path(), help="Checkpoint for a network --method.")
@click.option(
    "--images",
    is_flag=True,
    help="The dataset frames are unrelated images, each its own clip (e.g. Rain100H).",
)
@click.option("--rgb", is_flag=True, help="RGB PSNR/SSIM and FSIMc instead of luminance Y.")
@click.option("--crop", default=0, show_default=True, help="Border pixels ignored per side.")
@click.option("--skip-first", default=0, show_default=True, help="Ignore the first N frames.")
@click.option("--skip-last", default=0, show_default=True, help="Ignore the last N frames.")
@click.option(
    "--metrics",
    "metric_list",
    default=",".join(METRICS),
    show_default=True,
    help="Comma-separated subset of psnr,ssim,vif,fsim.",
)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write JSON here.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="Write CSV here.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    help="Write a PNG plot of per-frame PSNR and SSIM here.",
)
@click.option("--temporal", type=click.Choice(["off", "window", "causal"]), default="off",
              show_default=True,
              help="Temporal stage after a network --method (reported as NAME+MODE).")
@click.option("--orient", default="auto", show_default=True, metavar="auto|off|DEG",
              help="Streak orientation of a network --method (see rtderain run --help).")
@click.option("--engine", default="auto", show_default=True,
              help="Backend of a network --method: auto, torch, onnxruntime, openvino, tensorrt.")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default="auto",
              show_default=True,
              help="Precision of a network --method (auto: bf16 where the CPU has it; "
                   "fp32 reproduces an AVX2 machine's figures on an AMX one).")
@click.option("--no-temporal-metrics", "no_temporal", is_flag=True,
              help="Skip the warping error and flicker of video sequences (faster).")
@click.option("--list-methods", is_flag=True, help="List the method names and exit.")
def eval_command(
    pred,
    gt,
    methods,
    dataset,
    weights,
    images,
    rgb,
    crop,
    skip_first,
    skip_last,
    metric_list,
    json_path,
    csv_path,
    plot_path,
    temporal,
    orient,
    engine,
    precision,
    no_temporal,
    list_methods,
) -> None:
    """Score de-rained frames against clean ones: PSNR, SSIM, VIF, FSIM, and for videos
    the warping error and flicker (temporal consistency).

    \b
    Examples:
      rtderain eval derained.mp4 clean.mp4 --json scores.json
      rtderain eval out_frames/ ../shared/data/nturain_a1/gt --plot psnr.png
      rtderain eval --method garg-nayar --method identity --dataset ../shared/data/nturain_a1

    Default: luminance Y (MATLAB rgb2ycbcr, BT.601), PSNR peak 255, SSIM as MATLAB
    ssim_index, VIF pixel domain, FSIM as piq. Videos and frame folders (not --images)
    also get: warp err (Lai et al. 2018, along the ground truth's DIS flow; lower is more
    consistent), flicker (mean temporal std of Y, all pixels) and flicker static (over the
    ground truth's static background). Details: docs/evaluation.md.
    """
    from rtderain.evaluation import report
    from rtderain.evaluation.datasets import find_sequences, read_frames
    from rtderain.evaluation.methods import METHODS, create_method
    from rtderain.evaluation.scoring import (
        Options,
        SequenceResult,
        TemporalScores,
        run_method,
        score_frames,
    )

    if list_methods:
        for info in METHODS.values():
            click.echo(f"{info.name:16s} {info.kind:9s} {info.summary}")
        return
    options = Options(
        "rgb" if rgb else "y", crop, skip_first, skip_last, _parse_metrics(metric_list),
        temporal=not no_temporal,
    )
    for name, value in (("--crop", crop), ("--skip-first", skip_first), ("--skip-last", skip_last)):
        if value < 0:
            raise RTDerainError(f"{name} must be >= 0, got {value}")
    report.check_outputs(json_path, csv_path, plot_path)  # before any scoring
    results: list[SequenceResult] = []
    if methods or dataset:
        if pred or gt:
            raise RTDerainError("give either PRED GT or --method/--dataset, not both")
        if not (methods and dataset):
            raise RTDerainError("--method and --dataset go together")
        for name in methods:  # fail on a bad name before any work
            if name not in METHODS:
                raise RTDerainError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
        seqs = find_sequences(dataset)
        for name in methods:
            kw = {"weights": weights} if weights and METHODS[name].kind == "network" else {}
            if METHODS[name].kind == "network":
                kw["temporal"] = temporal
                kw["orient"] = orient
                kw["engine"] = engine
                kw["precision"] = precision
            method = create_method(name, **kw)
            for seq in seqs:
                log.info("running %s on %s", name, seq.name)
                results.append(run_method(method, seq, options, images=images))
    else:
        if not (pred and gt):
            raise RTDerainError(
                "give PRED and GT (frames to score and clean frames), "
                "or --method NAME --dataset FOLDER"
            )
        temporal = TemporalScores() if options.temporal and not images else None
        per_frame = score_frames(
            read_frames(pred), read_frames(gt), options, pred_name=str(pred), gt_name=str(gt),
            temporal=temporal,
        )
        result = SequenceResult(Path(gt).name, Path(pred).name, per_frame)
        if temporal is not None and len(per_frame) > 1:
            result.temporal = temporal.result()
        results.append(result)
    conv = options.describe()
    click.echo(f"space: {conv['space']}; crop {crop}; skip first {skip_first}, last {skip_last}")
    click.echo(report.table(results, timing=any(r.seconds is not None for r in results)))
    if json_path:
        report.write_json(json_path, results, conv)
    if csv_path:
        report.write_csv(csv_path, results)
    if plot_path:
        report.write_plot(plot_path, results)
