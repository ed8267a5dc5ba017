"""``rtderain bench quality``: methods x datasets -> one markdown + JSON table and picture grids.

Datasets (under ``--data-root``, default ``../shared/data`` beside the repository):

- ``nturain_a1``: NTURain synthetic sequence a1 (a video: 168 frames, 640x480),
- ``rain100h_dev``: Rain100H pairs 1-50 (unrelated single images: every image is its own
  one-frame clip, so the temporal baselines would return the input; they are listed as such
  instead of being run),
- ``synthetic``: a deterministic rainy clip rendered by ``rtderain synth`` (seed 0, preset
  ``light``) from the static traffic-camera frames ``clean/wsdot_i5_frames`` (real motion:
  cars), written once into ``OUT/synthetic``.

Metrics on luminance Y (``rtderain.evaluate``); timing is the method alone (frames already
in memory) on this machine, seconds per frame and fps.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SYNTH_SOURCE = "clean/wsdot_i5_frames"
SYNTH_FRAMES = 48


def synthetic_set(out: Path, data_root: Path) -> Path:
    """Render the synthetic sequence into ``out`` once (deterministic); return its folder."""
    if (out / "clip_00000" / "rain").is_dir():
        return out
    src = data_root / SYNTH_SOURCE
    if not src.is_dir():
        raise RTDerainError(f"clean source for the synthetic set not found: {src}")
    try:
        from rtderain.synth.build import build_clips, collect_sources
    except ImportError as exc:
        raise RTDerainError(f"rtderain synth is not available ({exc})") from None
    out.mkdir(parents=True, exist_ok=True)
    build_clips(
        collect_sources([src], sequences=True),
        out,
        frames=SYNTH_FRAMES,
        clips_per_source=1,
        preset="light",
        seed=0,
        write_clean=True,
        max_size=640,
        start_index=0,
    )
    return out


def _datasets(data_root: Path, out: Path, names: tuple[str, ...]) -> list[tuple[str, Path, bool]]:
    """``(name, folder, images)`` per requested dataset."""
    table = {
        "nturain_a1": (lambda: data_root / "nturain_a1", False),
        "rain100h_dev": (lambda: data_root / "rain100h_dev", True),
        "synthetic": (lambda: synthetic_set(out / "synthetic", data_root), False),
    }
    out_list = []
    for name in names:
        folder_fn, images = table[name]
        out_list.append((name, folder_fn(), images))
    return out_list


def _parse_weights(items: tuple[str, ...]) -> dict[str, str]:
    weights = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not path:
            raise RTDerainError(f"--weights wants NAME=PATH, got {item!r}")
        weights[name] = path
    return weights


def _default_methods(weights: dict[str, str]) -> list[str]:
    from rtderain.methods import METHODS
    from rtderain.models import shipped_weights

    names = []
    for info in METHODS.values():
        if info.kind == "network" and info.name not in weights and not shipped_weights(info.name):
            log.warning(
                "skipping %s: no trained weights (pass --weights %s=PATH)", info.name, info.name
            )
            continue
        names.append(info.name)
    return names


@click.command("quality")
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
    default=str(DEFAULT_DATA),
    show_default=True,
    help="Folder holding the benchmark data.",
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
def quality(methods, datasets, data_root, weight_items, out_dir, max_frames) -> None:
    """Quality table: PSNR / SSIM / VIF / FSIM and s/frame of methods on benchmark datasets."""
    from rtderain.bench import report
    from rtderain.evaluate import Options, find_sequences, run_method
    from rtderain.methods import METHODS, create_method

    weights = _parse_weights(weight_items)
    for name in list(methods) + list(weights):
        if name not in METHODS:
            raise RTDerainError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    methods = list(methods) or _default_methods(weights)
    datasets = datasets or ("nturain_a1", "rain100h_dev", "synthetic")
    data = Path(data_root)
    if not data.is_dir():
        raise RTDerainError(f"benchmark data folder not found: {data}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    options = Options()
    built = {}
    for name in methods:
        kw = {"weights": weights[name]} if name in weights else {}
        built[name] = create_method(name, **kw)
    results, notes, meta = [], [], {}
    for ds, folder, images in _datasets(data, out, tuple(datasets)):
        seqs = find_sequences(folder)
        meta[ds] = {
            "folder": str(folder),
            "kind": "images" if images else "video",
            "sequences": [s.name for s in seqs],
        }
        ds_results = []
        for name in methods:
            method = built[name]
            if images and method.temporal and name != "fastderain":
                notes.append(
                    f"{ds}: {name} needs neighbouring frames; on single images it "
                    "returns the input (= identity row)"
                )
                continue
            for seq in seqs:
                click.echo(f"{ds}/{seq.name}: {name} ...", err=True)
                r = run_method(
                    method,
                    seq,
                    options,
                    images=images,
                    limit=max_frames,
                    sample_index=0 if images else -1,
                )
                r.sequence = ds if len(seqs) == 1 else f"{ds}/{seq.name}"
                ds_results.append(r)
        if ds_results:
            report.picture_grid(out / f"grid_{ds}.png", ds_results)
        results += ds_results
    argv = sys.argv[sys.argv.index("quality") + 1 :] if "quality" in sys.argv else []
    command = " ".join(["rtderain bench quality", *map(shlex.quote, argv)])
    machine = _machine()
    md = _markdown(results, notes, meta, command, machine, max_frames)
    (out / "quality.md").write_text(md, encoding="utf-8")
    report.write_json(
        out / "quality.json",
        results,
        options.describe(),
        {
            "command": command,
            "machine": machine,
            "datasets": meta,
            "notes": notes,
            "max_frames": max_frames,
        },
    )
    click.echo(md)


def _machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _markdown(results, notes, meta, command, machine, max_frames) -> str:
    from rtderain.bench import report

    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {machine['cores']} CPU cores ({machine['cpu']}), torch {machine['torch']}, "
        f"{machine['date']}. Metrics on Y (MATLAB rgb2ycbcr), means over frames; "
        "s/frame = method time only.",
        "",
    ]
    if max_frames:
        lines += [f"Only the first {max_frames} frames/images of each dataset.", ""]
    lines += [report.table(results, group="dataset"), ""]
    for ds, info in meta.items():
        lines.append(
            f"- `{ds}`: {info['kind']}, `{Path(info['folder']).name}`; picture grid `grid_{ds}.png`"
        )
    lines += [f"- {n}" for n in dict.fromkeys(notes)]
    params = {r.method: r.params for r in results}
    lines += ["", "Parameters: " + json.dumps(params, sort_keys=True)]
    return "\n".join(lines) + "\n"
