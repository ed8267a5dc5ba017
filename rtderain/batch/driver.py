"""The batch driver: skip what is complete, run the rest, journal and report every result.

The journal is appended as each result arrives, and the report (JSON) is written at the
end, also after Ctrl-C or an error of the driver, so nothing that finished is lost; a rerun
of the same command resumes.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from rtderain.batch.inputs import BatchItem
from rtderain.batch.journal import JOURNAL_NAME, REPORT_NAME, Journal, fingerprint, settings_digest
from rtderain.batch.local import InProcess, ProcessPool, cores
from rtderain.batch.worker import FileTask
from rtderain.errors import RTDerainError
from rtderain.jobs import RunSettings
from rtderain.media.writer import EncodeOptions, check_container
from rtderain.util import atomic_write_text, machine_info

log = logging.getLogger(__name__)

# on_event(kind, data): kind "start" (data: key, input, worker), "result" (a file's result),
# "frames" (key, done, total; only with --jobs 1).
OnEvent = Callable[[str, dict], None]


@dataclass(frozen=True)
class BatchOptions:
    """How a batch runs.

    Attributes:
        settings: run settings (``rtderain run``'s options and ``run:`` config section).
        out_dir: the output folder (the journal lives there).
        overwrite: redo complete outputs and replace files that are not the batch's own.
        jobs: processes on this machine (1: in the driver's process).
        ray: a Ray address (``local``, ``auto``, ``HOST:PORT``) instead of local processes.
        ray_cpus: CPUs the ``local`` Ray cluster gets (None: all).
        cpus_per_task, gpus: resources each file's Ray task declares.
        max_retries: attempts after a worker dies, per file.
        report: the JSON report (default: ``rtderain-batch.report.json`` in ``out_dir``).
        engines_dir: the engine cache folder on every node (None: ``$RTDERAIN_ENGINES`` or
            the default, see ``docs/engines.md``).
        ray_timeout: seconds to wait for a ``HOST:PORT`` address to answer.
        threads: inference threads per worker (None: ``cores // jobs`` in a pool, the
            task's CPUs on Ray, the runtime's default for ``jobs=1``).
    """

    settings: RunSettings
    out_dir: Path
    overwrite: bool = False
    jobs: int = 1
    ray: str | None = None
    ray_cpus: int | None = None
    cpus_per_task: float = 1.0
    gpus: float = 0.0
    max_retries: int = 2
    report: Path | None = None
    engines_dir: str | None = None
    ray_timeout: float = 10.0
    threads: int | None = None


@dataclass
class BatchResult:
    """Every file's result, in input order, and where the journal and report are."""

    files: list[dict[str, Any]] = field(default_factory=list)
    journal: Path | None = None
    report: Path | None = None
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f["status"] == status)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [f for f in self.files if f["status"] == "failed"]


def file_encode(settings: RunSettings, item: BatchItem) -> dict[str, Any]:
    """The file's encoder options: the run's, with the manifest's per-file values."""
    enc = replace(settings.encode, **item.options)
    check_container(enc, item.target)
    return {f.name: getattr(enc, f.name) for f in fields(EncodeOptions)}


def run_batch(
    items: list[BatchItem], options: BatchOptions, on_event: OnEvent | None = None
) -> BatchResult:
    """Run a planned batch (:func:`rtderain.batch.plan_batch`); returns every file's result.

    An output that exists is skipped when the journal says it is complete for this input and
    settings, redone when the journal says it is the batch's own, and otherwise left alone
    (a failed file) unless ``overwrite``.

    Raises:
        RTDerainError: before any work: an unknown encoder, an unreachable Ray cluster or
            one with no node for the requested resources. A file that fails does not raise
            (its result says why); the caller decides the exit status.
    """
    emit = on_event or (lambda kind, data: None)
    start = time.perf_counter()
    out = Path(options.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    journal = Journal(out / JOURNAL_NAME)
    if journal.path.exists():
        journal.compact()
    result = BatchResult(journal=journal.path, report=options.report or out / REPORT_NAME)
    by_key: dict[str, dict[str, Any]] = {}
    tasks: list[FileTask] = []
    meta: dict[str, tuple[dict, str]] = {}
    for item in items:
        encode = file_encode(options.settings, item)
        digest = settings_digest(options.settings, encode)
        try:
            source = fingerprint(item.source)
        except OSError as exc:
            by_key[item.key] = _pre_failed(item, f"cannot read the input ({exc.strerror})")
            continue
        if not options.overwrite and journal.complete(item.key, item.target, source, digest):
            by_key[item.key] = {**journal.records[item.key], "status": "skipped",
                                "error": None, "where": item.where}
            continue
        if item.target.exists() and not options.overwrite and not journal.owns(item.key):
            by_key[item.key] = _pre_failed(item, f"output exists and is not in the journal "
                                                 f"{journal.path.name}: {item.target} (use "
                                                 f"--overwrite to replace it)")
            continue
        meta[item.key] = (source, digest)
        tasks.append(FileTask(str(item.source), str(item.target), item.key, options.settings,
                              encode, options.overwrite or journal.owns(item.key),
                              options.threads, options.engines_dir))
    for res in by_key.values():
        emit("result", res)
    started_ray = False
    try:
        executor, started_ray = _executor(options, len(tasks), emit)
        journal.record(*({"key": t.key, "status": "started", "input": t.source,
                          "output": t.target, "input_fingerprint": meta[t.key][0],
                          "settings": meta[t.key][1]} for t in tasks))
        for res in executor.run(tasks, lambda t, w: emit("start", {"key": t.key,
                                                                   "input": t.source,
                                                                   "worker": w})):
            source, digest = meta[res["key"]]
            res.update(input_fingerprint=source, settings=digest)
            if res["status"] == "done":
                journal.record(res)
            by_key[res["key"]] = res
            emit("result", res)
    finally:
        result.seconds = time.perf_counter() - start
        for item in items:
            res = by_key.get(item.key) or _pre_failed(item, "not run (the batch was stopped)",
                                                      status="not run")
            result.files.append({**res, "where": item.where})
        _write_report(result, options)
        if started_ray:
            import ray

            ray.shutdown()
    return result


def _executor(options: BatchOptions, n_tasks: int, emit: OnEvent) -> tuple[Any, bool]:
    if options.ray is not None:
        from rtderain.batch import cluster

        started = cluster.connect(options.ray, options.ray_cpus, options.ray_timeout)
        try:
            cluster.check_resources(options.cpus_per_task, options.gpus)
            return cluster.RayCluster(options.cpus_per_task, options.gpus,
                                      options.max_retries), started
        except BaseException:
            if started:
                import ray

                ray.shutdown()
            raise
    if options.jobs < 1:
        raise RTDerainError(f"--jobs must be >= 1, got {options.jobs}")
    jobs = min(options.jobs, max(n_tasks, 1))
    if jobs == 1:
        return InProcess(lambda t, done, total: emit("frames", {"key": t.key, "done": done,
                                                                "total": total})), False
    return ProcessPool(jobs, options.max_retries, options.threads), False


def _pre_failed(item: BatchItem, error: str, status: str = "failed") -> dict[str, Any]:
    return {"key": item.key, "input": str(item.source), "output": str(item.target),
            "status": status, "frames": 0, "copied_streams": 0, "fps": None, "seconds": 0.0,
            "engine": None, "error": error, "worker": ""}


def _write_report(result: BatchResult, options: BatchOptions) -> None:
    """The JSON report: totals, the settings, and every file's result (atomic write)."""
    done = [f for f in result.files if f["status"] == "done"]
    frames = sum(f["frames"] for f in done)
    report = {
        "totals": {"files": len(result.files), "done": len(done),
                   "skipped": result.count("skipped"), "failed": result.count("failed"),
                   "not_run": result.count("not run"), "frames": frames,
                   "seconds": round(result.seconds, 3),
                   "files_per_minute": round(60 * len(done) / result.seconds, 3)
                   if result.seconds > 0 else None},
        "runner": f"ray {options.ray}" if options.ray else f"local --jobs {options.jobs}",
        "cores": cores(),
        "load_average": [round(x, 2) for x in os.getloadavg()],  # others sharing the cores
        "machine": machine_info(),
        "settings": asdict(options.settings),
        "journal": str(result.journal),
        "files": [{k: v for k, v in f.items() if k != "input_fingerprint"}
                  for f in result.files],
    }
    assert result.report is not None
    result.report.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(result.report, json.dumps(report, indent=2, default=str) + "\n")
