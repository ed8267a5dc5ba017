"""``rtderain bench quality``: methods x datasets -> one markdown + JSON table and picture grids.

Datasets (under ``--data-root``, default ``../shared/data`` beside the repository):

- ``nturain_a1``: NTURain synthetic sequence a1 (a video: 168 frames, 640x480),
- ``rain100h_dev``: Rain100H pairs 1-50 (unrelated single images: every image is its own
  one-frame clip, so the temporal baselines would return the input; they are listed as such
  instead of being run),
- ``synthetic``: a deterministic rainy clip rendered by ``rtderain synth`` (seed 0, preset
  ``light``) from the static traffic-camera frames ``clean/wsdot_i5_frames`` (real motion:
  cars), written once into ``--synth-dir`` (default ``bench_out/synthetic``).

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
from pathlib import Path
from typing import Any

import click

from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"
SYNTH_SOURCE = "clean/wsdot_i5_frames"
SYNTH_FRAMES = 48
TILE = 320  # picture-grid tile width


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


def _datasets(data_root: Path, synth: Path, names: tuple[str, ...]) -> list[tuple[str, Path, bool]]:
    """``(name, folder, images)`` per requested dataset."""
    table = {
        "nturain_a1": (lambda: data_root / "nturain_a1", False),
        "rain100h_dev": (lambda: data_root / "rain100h_dev", True),
        "synthetic": (lambda: synthetic_set(synth, data_root), False),
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
def quality(
    methods, datasets, data_root, weight_items, out_dir, max_frames, synth_dir, merge
) -> None:
    """Quality table: PSNR / SSIM / VIF / FSIM and s/frame of methods on benchmark datasets."""
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
    old = _load_previous(out / "quality.json", max_frames) if merge else None
    results, notes, meta = [], list(old["notes"]) if old else [], {}
    command = _command(click.get_current_context())
    commands = (old["commands"] if old else []) + [command]
    previous = old["results"] if old else []
    for ds, folder, images in _datasets(data, Path(synth_dir), tuple(datasets)):
        seqs = find_sequences(folder)
        meta[ds] = {
            "folder": str(folder),
            "kind": "images" if images else "video",
            "sequences": [s.name for s in seqs],
        }
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
                _save_sample(out, r)
                results.append(r)
                # Written after every row: an interrupted run can be resumed with --merge.
                _write(
                    out,
                    previous,
                    results,
                    notes,
                    {**(old or {}).get("datasets", {}), **meta},
                    commands,
                    max_frames,
                    options,
                )
    md = _write(
        out,
        previous,
        results,
        notes,
        {**(old or {}).get("datasets", {}), **meta},
        commands,
        max_frames,
        options,
        grids=True,
    )
    click.echo(md)


def _write(out, previous, results, notes, meta, commands, max_frames, options, grids=False):
    """Merge with earlier rows, sort, write quality.md / quality.json (and the grids)."""
    from rtderain.bench import report
    from rtderain.methods import METHODS

    done = {(r.method, r.sequence) for r in results}
    rows = [r for r in previous if (r.method, r.sequence) not in done] + list(results)
    # Baselines first (registry order), then the networks, as in a paper's table.
    ranked = sorted(METHODS, key=lambda n: METHODS[n].kind == "network")
    order = {name: i for i, name in enumerate(ranked)}
    names = list(meta)
    rows.sort(
        key=lambda r: (
            names.index(r.sequence.split("/")[0]) if r.sequence.split("/")[0] in names else 99,
            order.get(r.method, 99),
        )
    )
    if grids:
        for ds in meta:
            ds_rows = [r for r in rows if r.sequence.split("/")[0] == ds]
            for r in ds_rows:
                _load_sample(out, r)
            if any(r.sample is not None for r in ds_rows):
                report.picture_grid(out / f"grid_{ds}.png", ds_rows, tile_width=TILE)
    notes = list(dict.fromkeys(notes))
    machine = _machine()
    md = _markdown(rows, notes, meta, commands, machine, max_frames)
    (out / "quality.md").write_text(md, encoding="utf-8")
    extra = {
        "commands": commands,
        "machine": machine,
        "datasets": meta,
        "notes": notes,
        "max_frames": max_frames,
    }
    report.write_json(out / "quality.json", rows, options.describe(), extra)
    return md


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


def _sample_dir(out: Path, r) -> Path:
    return out / "samples" / r.sequence.replace("/", "_")


def _save_sample(out: Path, r) -> None:
    """Keep the grid frame of a result on disk at grid-tile size (so --merge can redraw it)."""
    import cv2

    from rtderain.media.images import write_image

    d = _sample_dir(out, r)
    d.mkdir(parents=True, exist_ok=True)
    h, w = r.sample[0].shape[:2]
    size = (TILE, max(1, round(h * TILE / w)))
    rainy, output, gt = (cv2.resize(a, size, interpolation=cv2.INTER_AREA) for a in r.sample)
    r.sample = (rainy, output, gt)
    write_image(d / "input.jpg", rainy)  # JPEG q95: small enough to keep beside the table
    write_image(d / "gt.jpg", gt)
    write_image(d / f"{r.method}.jpg", output)


def _load_sample(out: Path, r) -> None:
    from rtderain.media.images import read_image

    if r.sample is not None:
        return
    d = _sample_dir(out, r)
    files = [d / "input.jpg", d / f"{r.method}.jpg", d / "gt.jpg"]
    if all(f.is_file() for f in files):
        r.sample = tuple(read_image(f) for f in files)


def _load_previous(path: Path, max_frames: int | None) -> dict[str, Any] | None:
    """Results of an earlier run (for --merge); it must have used the same --max-frames."""
    from rtderain.evaluate import SequenceResult

    if not path.is_file():
        return None
    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("max_frames") != max_frames:
        raise RTDerainError(
            f"{path} was made with --max-frames {doc.get('max_frames')}, not {max_frames}; "
            "rerun without --merge"
        )
    results = []
    for d in doc["results"]:
        spf = d.get("seconds_per_frame")
        r = SequenceResult(
            d["sequence"], d["method"], per_frame=d["per_frame"], params=d.get("params", {})
        )
        if spf is not None:
            r.frames_run, r.seconds = d["frames"], spf * d["frames"]
        cpu = d.get("cpu_seconds_per_frame")
        r.cpu_seconds = cpu * d["frames"] if cpu is not None else None
        r.frames_run = r.frames_run or d["frames"]
        results.append(r)
    return {
        "results": results,
        "notes": doc.get("notes", []),
        "datasets": doc.get("datasets", {}),
        "commands": doc.get("commands", []),
    }


def _machine() -> dict[str, Any]:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _markdown(results, notes, meta, commands, machine, max_frames) -> str:
    from rtderain.bench import report

    lines = [
        "Command" + ("s" if len(commands) > 1 else "") + ":",
        "",
        "```",
        *commands,
        "```",
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
