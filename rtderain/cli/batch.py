"""``rtderain batch``: de-rain a video archive, resumably, locally or on a Ray cluster."""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace
from pathlib import Path

import click

from rtderain.cli.lazy import PRECISION_CHOICES, memory_options

log = logging.getLogger(__name__)


@click.command(context_settings={"help_option_names": ["-h", "--help"],
                                 "max_content_width": 100})
@click.argument("inputs", nargs=-1, metavar="[INPUT]...")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False),
              help="Output folder; outputs mirror the input tree below it (required).")
@click.option("--manifest", type=click.Path(dir_okay=False), default=None,
              help="A list of inputs: text (one path a line), CSV or JSONL with `input`, "
              "optional `output` (relative to --out-dir) and per-file codec, crf, preset, "
              "pix_fmt. Relative inputs are relative to the manifest's folder.")
@click.option("-m", "--model", default=None,
              help="mgid (paper, default), mgid-rt or mgid-lite (real time).")
@click.option("-w", "--weights", type=click.Path(dir_okay=False), default=None,
              help="Checkpoint file instead of the shipped weights.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="YAML config with a `run:` section (see configs/run.yaml).")
@click.option("--engine", default=None,
              help="auto (default), torch, onnxruntime, openvino, tensorrt.")
@click.option("--device", default=None, help="cpu, cuda, cuda:N or auto (default; cuda with "
              "--gpus).")
@click.option("--precision", type=click.Choice(PRECISION_CHOICES), default=None,
              help="Inference precision (default auto).")
@click.option("-b", "--batch", type=click.IntRange(1, 256), default=None,
              help="Frames per inference call (default 4).")
@click.option("--codec", default=None, help="Video encoder (default h264); a manifest's "
              "codec column overrides it per file.")
@click.option("--crf", type=click.IntRange(0, 63), default=None,
              help="Constant rate factor (default 18).")
@click.option("--preset", default=None, help="Encoder preset (default fast).")
@click.option("--pix-fmt", default=None, help="Output pixel format (default: the source's).")
@click.option("--temporal", type=click.Choice(["off", "window", "causal"]), default=None,
              help="Temporal stage after the network (default: the config's, else off; see "
              "`rtderain run` and docs/temporal.md).")
@click.option("--temporal-radius", type=click.IntRange(1, 8), default=None,
              help="Temporal neighbours (default 4; see rtderain run --help).")
@memory_options
@click.option("--overwrite", is_flag=True,
              help="Redo complete outputs too, and replace outputs not in the journal.")
@click.option("-j", "--jobs", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Files at once on this machine, each in its own process with cores/N "
              "inference threads (1: in this process).")
@click.option("--threads", type=click.IntRange(1, 1024), default=None,
              help="Inference threads per worker (default: cores/N with --jobs N, the task's "
              "CPUs on Ray, the runtime's own with --jobs 1). 1 is fastest on a busy machine.")
@click.option("--ray", "ray_address", default=None, metavar="ADDRESS",
              help="Run on a Ray cluster, one task per file: `local` (start one here), `auto` "
              "(the cluster this machine belongs to) or HOST:PORT. Needs rtderain[ray].")
@click.option("--ray-cpus", type=click.IntRange(1, 4096), default=None,
              help="CPUs of a `--ray local` cluster (default: all).")
@click.option("--cpus-per-task", type=click.FloatRange(0.01, 1024), default=1.0,
              show_default=True, help="CPUs each Ray task declares (its inference threads).")
@click.option("--gpus", type=click.FloatRange(0, 64), default=0.0, show_default=True,
              help="GPUs each Ray task declares (fractions share a GPU).")
@click.option("--max-retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="Retries of a file whose worker process or node died (a bad file is not "
              "retried).")
@click.option("--ray-timeout", type=click.FloatRange(0.1, 600), default=10.0,
              show_default=True, help="Seconds to wait for a HOST:PORT cluster to answer.")
@click.option("--engines-dir", type=click.Path(file_okay=False), default=None,
              help="Engine cache folder on every node (default $RTDERAIN_ENGINES, else "
              "engines/).")
@click.option("--report", type=click.Path(dir_okay=False), default=None,
              help="JSON report of every file (default OUT_DIR/rtderain-batch.report.json).")
@click.option("-q", "--quiet", is_flag=True, help="Only failures and the final error line.")
def batch(inputs, out_dir, manifest, model, weights, config_path, engine, device, precision,
          batch, codec, crf, preset, pix_fmt, temporal, temporal_radius, max_memory, tile,
          orient, overwrite, jobs, threads, ray_address, ray_cpus, cpus_per_task, gpus,
          max_retries, ray_timeout,
          engines_dir, report, quiet) -> None:
    """De-rain many videos: files, folders (recursive), glob patterns or a manifest.

    \b
    Outputs mirror the inputs under --out-dir. A journal there records every finished
    output with its input's size, mtime and content hash and the settings, so a rerun
    skips what is complete and redoes what changed. A file that fails is one line; the
    batch carries on and exits 1 at the end if any failed. The JSON report lists every
    file (frames, audio/subtitle streams copied, fps, engine, seconds, error).

    \b
    Examples:
      rtderain batch archive/ --out-dir clean/ -m mgid-rt --jobs 2
      rtderain batch 'rain/**/*.mkv' --out-dir clean/ --crf 20
      rtderain batch --manifest list.csv --out-dir clean/
      rtderain batch /shared/archive --out-dir /shared/clean --ray auto --gpus 1
      rtderain batch archive/ --out-dir clean/ --ray local --ray-cpus 4
    """
    from rtderain.batch.driver import BatchOptions, run_batch
    from rtderain.batch.inputs import plan_batch
    from rtderain.errors import RTDerainError
    from rtderain.jobs import load_run_settings

    cfg = load_run_settings(config_path)
    enc = {k: v for k, v in {"codec": codec, "crf": crf, "preset": preset,
                             "pix_fmt": pix_fmt}.items() if v is not None}
    tmp = {k: v for k, v in {"mode": temporal, "radius": temporal_radius}.items() if v}
    run = {k: v for k, v in {"model": model, "weights": weights, "engine": engine,
                             "device": device or ("cuda" if gpus else None),
                             "precision": precision, "batch": batch,
                             "max_memory": max_memory, "tile": tile,
                             "orient": orient}.items() if v}
    cfg = replace(cfg, encode=replace(cfg.encode, **enc),
                  temporal=replace(cfg.temporal, **tmp), **run)
    if jobs > 1 and cfg.max_memory == "auto":  # N processes on this machine share the default
        from rtderain.resources import default_budget

        cfg = replace(cfg, max_memory=str(max(default_budget() // jobs, 512 << 20)))
    if weights and not Path(weights).is_file():
        raise RTDerainError(f"weights file not found: {weights}")
    if model and cfg.weights:  # an explicit --model must match the weights
        from rtderain.models.checkpoint import check_weights_model

        check_weights_model(model, cfg.weights)
    if ray_address is None and (gpus or ray_cpus):
        raise RTDerainError("--gpus and --ray-cpus need --ray ADDRESS")
    items = plan_batch(inputs, out_dir, manifest)
    options = BatchOptions(
        settings=cfg, out_dir=Path(out_dir), overwrite=overwrite, jobs=jobs, ray=ray_address,
        ray_cpus=ray_cpus, cpus_per_task=cpus_per_task, gpus=gpus, max_retries=max_retries,
        report=Path(report) if report else None, engines_dir=engines_dir,
        ray_timeout=ray_timeout, threads=threads)
    display = _Display(len(items), quiet)
    try:
        result = run_batch(items, options, display.event)
    finally:
        display.close()
    failed = result.failed
    if not quiet:
        click.echo(f"{result.count('done')} done, {result.count('skipped')} skipped, "
                   f"{len(failed)} failed of {len(result.files)} in {result.seconds:.1f} s; "
                   f"report {result.report}", err=True)
    if failed:
        raise RTDerainError(f"{len(failed)} of {len(result.files)} file(s) failed (one line "
                            f"each above); details in {result.report}")


class _Display:
    """Batch progress on stderr: a bar over files (done/total, frames/s, ETA), which file
    each worker runs, and one line per finished file."""

    def __init__(self, total: int, quiet: bool) -> None:
        from tqdm import tqdm

        self.quiet = quiet
        self.total = total
        self.start = time.perf_counter()
        self.frames = 0
        self.finished = 0
        self.running: dict[str, str] = {}
        # The bar only on a terminal; the lines of finished files always (unless quiet).
        self.bar = tqdm(total=total, unit="file", disable=quiet or not sys.stderr.isatty(),
                        dynamic_ncols=True, leave=False, desc="batch")

    def event(self, kind: str, data: dict) -> None:
        if kind == "start":
            self.running[data["key"]] = data["worker"]
        elif kind == "frames":
            self.bar.set_postfix_str(f"{data['key']} frame {data['done']}/{data['total']}")
            return
        elif kind == "result":
            self.running.pop(data["key"], None)
            self.finished += 1
            self._line(data)
            if data["status"] == "done":
                self.frames += data["frames"]
            self.bar.update(1)
        elapsed = max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.frames / elapsed:.1f} frames/s, "
                                 f"{len(self.running)} running")

    def _line(self, r: dict) -> None:
        head = f"[{self.finished}/{self.total}]"
        if r["status"] == "failed":
            text = f"{head} failed {r['input']}: {r['error']}"
        elif self.quiet:
            return
        elif r["status"] == "skipped":
            text = f"{head} skipped {r['key']} (complete in the journal)"
        else:
            text = (f"{head} done {r['key']}: {r['frames']} frames, {r['fps']:.1f} fps, "
                    f"{r['copied_streams']} stream(s) copied, {r['seconds']:.1f} s "
                    f"[{r['worker']}]")
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
