"""``rtderain bench speed``: model-only ms/frame and end-to-end fps per engine.

For every backend x precision x model x resolution it measures

* **model only**: median wall time of the engine on a padded batch of N 8-bit frames as
  the pipeline calls it (uint8 in and out, normalisation included), divided by N, after
  warm-up (the engine build/load is not timed);
* **end to end**: :func:`rtderain.media.transcode.derain_video` on a real H.264 file it generates
  (decode -> batched inference -> H.264 encode, every frame, audio-free), in frames/s,
  beside the same clip's decode+encode alone (the ceiling), with the encoder settings given;
* **temporal stage** (``temporal`` other than ``off``): one more end-to-end row per mode
  with the stage after the network, and the stage's own ms/frame on the clip and on a
  still-camera rainy clip of the same size (the still rule's full path: its worst case);
* **YUV-native** (``io`` ``yuv``, luma networks only): a second row with the frames kept
  in the decoder's planes, the network on Y alone (model only: the I420 frames as the
  pipeline hands them over; end to end: the YUV-native path, temporal off).

Combinations a backend cannot run here (e.g. bf16 on a CPU without native bf16) are listed
with the reason instead of being measured through a fallback.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from rtderain import util
from rtderain.bench.clips import real_clip, synthetic_clip
from rtderain.bench.overhead import plain_pyav
from rtderain.errors import RTDerainError
from rtderain.media.batching import derain_frames, derain_planes
from rtderain.media.writer import EncodeOptions

log = logging.getLogger(__name__)

DEFAULT_SIZES = "640x360,1280x720,1920x1080"


@dataclass
class Row:
    """One measured (or skipped) combination."""

    model: str
    backend: str
    precision: str
    size: str
    batch: int
    model_ms: float | None = None
    cpu_ms: float | None = None
    e2e_fps: float | None = None
    codec_fps: float | None = None  # decode + encode alone, same clip and encoder settings
    temporal: str = "off"
    io: str = "rgb"  # rgb: frames through RGB; yuv: the YUV-native path (luma networks)
    stage_ms: float | None = None  # the temporal stage alone, on the clip (moving camera)
    stage_still_ms: float | None = None  # ... and on a still-camera rainy clip
    note: str = ""


def machine_info() -> dict[str, str]:
    """CPU/GPU, cores and runtime versions, for the table caption."""
    info = {k: str(v) for k, v in util.machine_info().items()}
    info["cores"] = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                        else os.cpu_count())
    info["torch_threads"] = str(torch.get_num_threads())
    info["load_avg_1m_at_start"] = (f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg")
                                    else "?")
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    for module in ("onnxruntime", "openvino", "torch_tensorrt", "av"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = "not installed"
    return info


def time_model(engine, model, height: int, width: int, batch: int, iters: int, warmup: int,
               budget_s: float, io: str = "rgb") -> tuple[float, float]:
    """(median wall ms, mean process CPU ms) per frame of the engine on a padded batch of
    8-bit frames, called as the video pipeline calls it (:func:`derain_frames`: uint8 in
    and out, the normalisation included, inside the graph where the engine has one; ``io``
    ``yuv``: :func:`derain_planes` on I420 frames of the unpadded size, the padding
    included, as the YUV-native path calls it).

    The build is not timed. CPU time sums every thread of this process: on a CPU shared
    with other jobs it shows the work done, which wall time alone hides.

    At least one warm-up call; warm-up stops early after half of ``budget_s``, timing after
    ``budget_s`` (slow combinations get fewer, never zero, timed calls).
    """
    m = model.multiple
    h, w = util.padded_size(height, width, m)
    rng = np.random.default_rng(0)
    if io == "yuv":  # I420 frames as the decoder gives them (the call pads them itself)
        planes = list(rng.integers(16, 236, (batch, height * 3 // 2, width), dtype=np.uint8))

        def run() -> object:
            return derain_planes(engine, planes, full_range=False)
    else:
        x = rng.integers(0, 256, (batch, h, w, 3), dtype=np.uint8)

        def run() -> object:
            return derain_frames(engine, x)

    def call() -> float:
        start = time.perf_counter()
        run()
        if engine.device.type == "cuda":
            torch.cuda.synchronize(engine.device)
        return time.perf_counter() - start

    spent = 0.0
    for _ in range(max(1, warmup)):
        spent += call()
        if spent > budget_s / 2:
            break
    times: list[float] = []
    cpu_start = time.process_time()
    while len(times) < iters and (not times or sum(times) < budget_s):
        times.append(call())
    cpu = time.process_time() - cpu_start
    return 1000.0 * statistics.median(times) / batch, 1000.0 * cpu / len(times) / batch


def time_stage(mode: str, frames: list[np.ndarray], warmup: int = 5) -> float:
    """Median wall ms per frame of the temporal stage (``mode``, its defaults) over
    ``frames`` (each pushed as both the rainy and the de-rained frame: the cost does not
    depend on the network), after ``warmup`` frames fill its window."""
    from rtderain.temporal import TemporalSettings, TemporalStage

    stage = TemporalStage(settings=TemporalSettings(mode))
    times = []
    for i, frame in enumerate(frames):
        start = time.perf_counter()
        stage.push(frame, frame)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)


def still_rainy_frames(first: np.ndarray, count: int = 24) -> list[np.ndarray]:
    """A still camera in rain: ``first`` with fresh ``rtderain synth`` rain per frame."""
    from rtderain.synth.render import draw_style, get_ranges, render_clip

    rng = np.random.default_rng(0)
    style = draw_style(get_ranges("light", rng, still=True), rng)
    rainy, _ = render_clip(first.astype(np.float32) / 255.0, count, style, rng)
    return [np.clip(np.rint(f * 255.0), 0, 255).astype(np.uint8) for f in rainy]


def _decoded(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def measure(row: Row, args: dict, clips: dict, workdir: Path) -> list[Row]:
    """Measure ``row``: model only per row kind (``args["io"]``: ``yuv`` for a luma
    network only), then (end to end on) one copy of each per temporal mode
    (``args["temporal"]``; a ``yuv`` row's stage fuses the Y planes) with its end-to-end
    figures.
    Without an end-to-end run, the model-only rows; when the combination is skipped (the
    note says why), ``row`` alone."""
    from rtderain.backends import BackendUnavailable, create_engine, get_backend, resolve_device
    from rtderain.backends.base import BuildRejected, EngineBuildError
    from rtderain.backends.registry import thread_settings
    from rtderain.models.checkpoint import load_model

    try:
        get_backend(row.backend).check(resolve_device(args["device"]), row.precision)
    except BackendUnavailable as exc:
        row.note = f"unavailable: {exc}"
        return [row]
    model = load_model(row.model)
    width, height = util.parse_size(row.size)
    settings = thread_settings(args["threads"]) or {}
    if row.backend == "torch" and args["torch_compile"]:
        from rtderain.backends.torch_backend import TorchSettings

        settings["torch"] = TorchSettings(compile=True)
        row.note = "torch.compile"
    try:
        engine = create_engine(model, row.backend, args["device"], row.precision,
                               size=(height, width), batch=row.batch,
                               engines_dir=args["engines_dir"], settings=settings or None)
    except RTDerainError as exc:  # a build that failed or was refused (an int8 graph over
        cause = exc.__cause__     # its quality bound): a row that says so, not the end
        if not isinstance(cause, EngineBuildError):
            raise
        row.note = f"{'rejected' if isinstance(cause, BuildRejected) else 'failed'}: {cause}"
        return [row]
    if engine.name != row.backend:
        row.note = f"failed, fell back to {engine.selection}"
        return [row]
    ios = [io for io in args["io"] if io == "rgb" or model.config.luma]
    base = [replace(row, io=io) for io in ios] or [row]
    for r in base:
        r.model_ms, r.cpu_ms = time_model(engine, model, height, width, row.batch,
                                          args["iters"], args["warmup"], args["budget"], r.io)
    if args["e2e_frames"] <= 0:
        return base
    row = base[0]
    from rtderain.media.transcode import PipelineOptions, derain_video
    from rtderain.temporal import TemporalSettings
    from rtderain.temporal.align import luma

    # As many frames as fit in about 2x the budget at the model-only speed (>= 8).
    frames = int(min(args["e2e_frames"], max(8, 2000 * args["budget"] / row.model_ms)))
    clip_key = f"{row.size}_{frames}"
    if clip_key not in clips:
        make = synthetic_clip if args.get("synthetic_clip") else real_clip
        clips[clip_key] = make(workdir / f"in_{clip_key}.mp4", width, height, frames)
    out = workdir / f"out_{row.model}_{row.backend}_{row.precision}_{row.size}.mp4"
    enc = args["encode"]
    if f"codec_{clip_key}" not in clips:  # the ceiling: no network, no RGB
        start = time.perf_counter()
        n = plain_pyav(clips[clip_key], out, enc, rgb=False)
        clips[f"codec_{clip_key}"] = n / (time.perf_counter() - start)
    rows, stage_clips = [], None
    runs = [(r, mode) for r in base for mode in args["temporal"]]
    for r, mode in runs:
        this = replace(r, temporal=mode)
        if mode != "off":
            if stage_clips is None:  # decoded and rendered once for every mode
                decoded = _decoded(clips[clip_key])
                stage_clips = (decoded, still_rainy_frames(decoded[0]))
            # A yuv row's stage fuses Y planes: the BT.601 luma of the decoded frames.
            timed = (stage_clips if r.io == "rgb"
                     else [[luma(f) for f in clip] for clip in stage_clips])
            this.stage_ms = time_stage(mode, timed[0])
            this.stage_still_ms = time_stage(mode, timed[1])
        summary = derain_video(clips[clip_key], out, engine, PipelineOptions(
            batch=row.batch, encode=enc, temporal=TemporalSettings(mode), overwrite=True,
            planes=this.io == "yuv"))
        if summary.planes != (this.io == "yuv"):
            raise RuntimeError(f"{this.io} row ran {'planes' if summary.planes else 'rgb'}"
                               " (a bug)")
        this.e2e_fps = summary.fps
        this.codec_fps = clips[f"codec_{clip_key}"]
        rows.append(this)
    out.unlink(missing_ok=True)
    return rows


def markdown(rows: list[Row], info: dict[str, str], command: str,
             encoder: str = "libx264 crf 18 preset fast") -> str:
    """The results as a markdown table with the machine in the caption."""
    lines = [
        f"Command: `{command}`",
        "",
        "Machine: " + ", ".join(f"{k} {v}" for k, v in info.items()),
        "",
        f"End to end: H.264 in, H.264 out ({encoder}), every frame; `decode+encode` is the "
        "same clip through the same encoder with no network and no RGB conversion, "
        "measured in the same run: the ceiling for this machine. `stage ms` (temporal "
        "rows): the temporal stage alone per frame, on the clip / on a still-camera rainy "
        "clip of the same size.",
        "",
        "| model | backend | precision | io | size | batch | temporal | model ms/frame "
        "| model fps | CPU ms/frame | end-to-end fps | decode+encode fps | stage ms | note |",
        "|---|---|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        model_fps = 1000 / r.model_ms if r.model_ms else None
        stage = ("-" if r.stage_ms is None
                 else f"{_num(r.stage_ms)} / {_num(r.stage_still_ms)}")
        lines.append(f"| {r.model} | {r.backend} | {r.precision} | {r.io} | {r.size} | {r.batch} "
                     f"| {r.temporal} | {_num(r.model_ms)} | {_num(model_fps)} "
                     f"| {_num(r.cpu_ms)} | {_num(r.e2e_fps)} | {_num(r.codec_fps)} "
                     f"| {stage} | {r.note} |")
    return "\n".join(lines) + "\n"


def _num(value: float | None) -> str:
    """3 significant-ish digits: 1234, 56.7, 0.42; '-' when not measured."""
    if value is None:
        return "-"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def temporal_modes(text: str) -> list[str]:
    """Comma-separated temporal modes (default ``off``); an unknown one is an error."""
    from rtderain.temporal import MODES

    modes = _split(text) or ["off"]
    for mode in modes:
        if mode not in MODES:
            raise RTDerainError(f"unknown mode {mode!r}; use {', '.join(MODES)}")
    return modes


def io_kinds(text: str) -> list[str]:
    """Comma-separated row kinds ``rgb`` and ``yuv`` (default both); others are an error."""
    kinds = _split(text) or ["rgb", "yuv"]
    for kind in kinds:
        if kind not in ("rgb", "yuv"):
            raise RTDerainError(f"unknown io {kind!r}; use rgb, yuv")
    return kinds


def run_speed(backends: str, precisions: str, models: str, sizes: str, batch: int,
              device: str, iters: int, warmup: int, budget: float, e2e_frames: int,
              engines_dir: str | None, torch_compile: bool, fmt: str,
              echo: Callable[[str], None] = log.info, synthetic_clip: bool = False,
              temporal: str = "off", encode: EncodeOptions | None = None,
              threads: int | None = None, io: str = "rgb,yuv") -> str:
    """Measure every combination (comma-separated lists); returns the report (``md`` or
    ``json``). ``echo`` gets one progress line per combination. ``temporal``: comma-
    separated temporal modes, one end-to-end row each; ``encode``: the encoder settings
    of the end-to-end runs and their ceiling (default: the pipeline's); ``threads``: the
    inference threads of OpenVINO and ONNX Runtime (None: theirs); ``io``: ``rgb``,
    ``yuv`` (rows of luma networks only) or both."""
    modes = temporal_modes(temporal)
    ios = io_kinds(io)
    encode = encode or EncodeOptions()
    args = {"device": device, "iters": iters, "warmup": warmup, "budget": budget,
            "e2e_frames": e2e_frames, "engines_dir": engines_dir,
            "torch_compile": torch_compile, "synthetic_clip": synthetic_clip,
            "temporal": modes, "encode": encode, "threads": threads, "io": ios}
    info = machine_info()
    info["clip"] = "synthetic" if synthetic_clip else "real scenery with rain (samples/)"
    rows: list[Row] = []
    clips: dict = {}
    with tempfile.TemporaryDirectory(prefix="rtderain-speed-") as tmp:
        combos = itertools.product(_split(models), _split(sizes), _split(backends),
                                   _split(precisions))
        for model, size, backend, precision in combos:
            for row in measure(Row(model, backend, precision, size, batch), args, clips,
                               Path(tmp)):
                if row.model_ms is None:
                    line = row.note
                else:
                    e2e = (f"{row.e2e_fps:.1f} fps end to end" if row.e2e_fps
                           else "no end-to-end run")
                    line = (f"{row.model_ms:.1f} ms/frame ({row.cpu_ms or 0:.0f} CPU ms), "
                            f"{e2e}" + (f" ({row.note})" if row.note else ""))
                echo(f"  {model} {backend} {precision} {row.io} {size} temporal "
                     f"{row.temporal}: {line}")
                rows.append(row)
    encoder = f"libx264 crf {encode.crf} preset {encode.preset}" + "".join(
        f" {k} {v}" for k, v in encode.options.items())
    command = (f"rtderain bench speed --backends {backends} --precisions {precisions} "
               f"--models {models} --sizes {sizes} --batch {batch} --device {device} "
               f"--e2e-frames {e2e_frames} --temporal {','.join(modes)} --io {','.join(ios)} "
               f"--preset {encode.preset} --crf {encode.crf}"
               + (f" --threads {threads}" if threads else "")
               + (f" --encode-threads {encode.options['threads']}"
                  if "threads" in encode.options else "")
               + (" --torch-compile" if torch_compile else ""))
    info["encoder"] = encoder
    if fmt == "json":
        text = json.dumps({"machine": info, "rows": [asdict(r) for r in rows]}, indent=2) + "\n"
    else:
        text = markdown(rows, info, command, encoder)
    return text
