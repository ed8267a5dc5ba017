"""``rtderain bench quality``: methods x datasets -> one markdown + JSON table and picture grids.

Datasets (under ``--data-root``, else ``$RTDERAIN_DATA``):

- ``nturain_a1``: NTURain synthetic sequence a1 (a video: 168 frames, 640x480),
- ``rain100h_dev``: Rain100H pairs 1-50 (unrelated single images: every image is its own
  one-frame clip, so the temporal baselines would return the input; they are listed as such
  instead of being run),
- ``synthetic``: a deterministic rainy clip rendered by ``rtderain synth`` (seed 0, preset
  ``light``) from the static traffic-camera frames ``clean/wsdot_i5_frames`` (real motion:
  cars), written once into ``--synth-dir`` (default ``bench_out/synthetic``).

Metrics on luminance Y (``rtderain.evaluation.scoring``); timing is the method alone (frames already
in memory) on this machine, seconds per frame and fps.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtderain import util
from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

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


def _default_methods(weights: dict[str, str]) -> list[str]:
    from rtderain.evaluation.methods import METHODS
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


def run_quality(
    methods: list[str],
    datasets: tuple[str, ...],
    data_root: str | Path,
    weights: dict[str, str],
    out_dir: str | Path,
    max_frames: int | None,
    synth_dir: str | Path,
    merge: bool,
    command: str,
    echo: Callable[[str], None] = log.info,
    temporal_modes: tuple[str, ...] = ("off",),
) -> str:
    """Run ``methods`` x ``datasets``, write ``out_dir``/quality.md, quality.json and the
    picture grids; returns the markdown. ``command`` is recorded as the run's command line.
    """
    from rtderain.evaluation.datasets import find_sequences
    from rtderain.evaluation.methods import METHODS, create_method
    from rtderain.evaluation.scoring import Options, run_method

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
        if METHODS[name].kind != "network":
            built[name] = create_method(name, **kw)
            continue
        for mode in temporal_modes:
            method = create_method(name, **kw, temporal=mode)
            built[method.name] = method
    old = _load_previous(out / "quality.json", max_frames) if merge else None
    results, notes, meta = [], list(old["notes"]) if old else [], {}
    commands = (old["commands"] if old else []) + [command]
    previous = old["results"] if old else []
    for ds, folder, images in _datasets(data, Path(synth_dir), tuple(datasets)):
        seqs = find_sequences(folder)
        meta[ds] = {
            "folder": str(folder),
            "kind": "images" if images else "video",
            "sequences": [s.name for s in seqs],
        }
        for name, method in built.items():
            if images and method.temporal and name != "fastderain":
                notes.append(
                    f"{ds}: {name} needs neighbouring frames; on single images it "
                    "returns the input (= identity row)"
                    if METHODS.get(name, None) is not None
                    else f"{ds}: {name} is its network frame by frame on single images "
                    "(the temporal stage needs a video)"
                )
                continue
            for seq in seqs:
                echo(f"{ds}/{seq.name}: {name} ...")
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
    return md


def _write(out, previous, results, notes, meta, commands, max_frames, options, grids=False):
    """Merge with earlier rows, sort, write quality.md / quality.json (and the grids)."""
    from rtderain.evaluation import report
    from rtderain.evaluation.methods import METHODS

    done = {(r.method, r.sequence) for r in results}
    rows = [r for r in previous if (r.method, r.sequence) not in done] + list(results)
    # Baselines first (registry order), then the networks, as in a paper's table.
    ranked = sorted(METHODS, key=lambda n: METHODS[n].kind == "network")
    order = {name: i for i, name in enumerate(ranked)}
    names = list(meta)
    rows.sort(
        key=lambda r: (
            names.index(r.sequence.split("/")[0]) if r.sequence.split("/")[0] in names else 99,
            order.get(r.method.split("+")[0], 99),
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
    from rtderain.evaluation.scoring import TEMPORAL_KEYS, SequenceResult

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
        r.temporal = {k: d[k] for k in TEMPORAL_KEYS if k in d}
        results.append(r)
    return {
        "results": results,
        "notes": doc.get("notes", []),
        "datasets": doc.get("datasets", {}),
        "commands": doc.get("commands", []),
    }


def _machine() -> dict[str, Any]:
    info = util.machine_info()
    info["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return info


def _markdown(results, notes, meta, commands, machine, max_frames) -> str:
    from rtderain.evaluation import report

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
