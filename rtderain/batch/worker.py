"""One file of a batch, in whatever process runs it (the driver, a pool process, a Ray task).

A worker process keeps one :class:`rtderain.Derainer` per run settings, so the network is
loaded and each engine built (or loaded from the engine cache, ``$RTDERAIN_ENGINES``) once
per process, not once per file. Results are plain dicts, so they pickle to any driver.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtderain.errors import RTDerainError
from rtderain.jobs import RunSettings
from rtderain.util import finish_noreplace

log = logging.getLogger(__name__)

# Test hook: "SUBSTRING:FOLDER" makes the first attempt at an input whose path contains
# SUBSTRING exit the process abruptly (os._exit) mid-file, leaving a marker in FOLDER so
# that the retry runs normally. Used to test that a dead worker's file is retried.
CRASH_ENV = "RTDERAIN_BATCH_TEST_CRASH"
_THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@dataclass(frozen=True)
class FileTask:
    """What a worker needs to de-rain one file.

    Attributes:
        source, target, key: the input, the output and the output's journal key.
        settings: the run settings (model, engine, device, precision, batch, temporal).
        encode: the file's encoder options (``EncodeOptions`` fields).
        overwrite: the output may replace an existing file.
        threads: inference threads for this process (None: the runtime's default).
        engines_dir: the engine cache folder on the worker's node (None: the default).
    """

    source: str
    target: str
    key: str
    settings: RunSettings
    encode: dict[str, Any] = field(default_factory=dict)
    overwrite: bool = False
    threads: int | None = None
    engines_dir: str | None = None


def limit_threads(threads: int | None) -> None:
    """Cap this process's math threads (call before torch does work; env for OpenMP)."""
    if threads is None:
        return
    for name in _THREAD_ENV:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)


_DERAINERS: dict[str, Any] = {}


def _derainer(task: FileTask) -> Any:
    """The process's Derainer for these settings (built on first use)."""
    s = task.settings
    key = repr((s, task.threads, task.engines_dir))
    if key not in _DERAINERS:
        from rtderain.api import Derainer
        from rtderain.backends.registry import thread_settings

        _DERAINERS[key] = Derainer.from_settings(s, engines_dir=task.engines_dir,
                                                 engine_settings=thread_settings(task.threads))
    return _DERAINERS[key]


def worker_name() -> str:
    """``host:pid`` of this process (the report says which worker ran each file)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def run_file(task: FileTask, progress: Callable[[int, int], None] | None = None) -> dict:
    """De-rain one file; never raises for a bad file (the result says what went wrong).

    Returns:
        ``{"key", "input", "output", "status": "done" | "failed", "frames",
        "copied_streams", "fps", "seconds", "engine", "error", "worker"}``; a failure that
        is a bug (not an :class:`RTDerainError`) also carries its ``traceback``.
    """
    result: dict[str, Any] = {"key": task.key, "input": task.source, "output": task.target,
                              "status": "failed", "frames": 0, "copied_streams": 0,
                              "fps": None, "seconds": 0.0, "engine": None, "error": None,
                              "worker": worker_name()}
    start = time.perf_counter()
    crash = _crash_hook(task)
    try:
        limit_threads(task.threads)
        Path(task.target).parent.mkdir(parents=True, exist_ok=True)
        derainer = _derainer(task)

        def on_progress(done: int, total: int) -> None:
            if crash is not None and done > 0:
                crash()
            if progress is not None:
                progress(done, total)

        summary = _video(derainer, task, on_progress)
    except RTDerainError as exc:
        result["error"] = str(exc)
    except Exception as exc:  # a bug: keep its traceback in the log and the report
        log.exception("%s: unexpected error", task.source)
        result["error"] = f"{type(exc).__name__}: {exc}"
        result["traceback"] = traceback.format_exc()
    else:
        result.update(status="done", frames=summary.frames, fps=round(summary.fps, 3),
                      copied_streams=summary.copied_streams, engine=summary.engine,
                      undecodable=summary.undecodable, output_size=Path(task.target).stat().st_size)
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result


def _video(derainer: Any, task: FileTask, progress: Callable[[int, int], None]) -> Any:
    """De-rain into a hidden name beside the output, then rename it into place: replacing
    only with ``overwrite`` (the journal's own outputs), else never replacing a file.

    The hidden name is the same for every attempt at a file (the driver never runs two at
    once), so a retry's writer removes the partial file a killed attempt left there."""
    target = Path(task.target)
    tmp = target.with_name(f".{target.stem}.rtderain-batch{target.suffix}")
    tmp.unlink(missing_ok=True)
    try:
        summary = derainer.video(task.source, tmp, progress=progress,
                                 queue_frames=task.settings.queue_frames, **task.encode)
        if task.overwrite:
            os.replace(tmp, target)
        else:
            finish_noreplace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return summary


def _crash_hook(task: FileTask) -> Callable[[], None] | None:
    spec = os.environ.get(CRASH_ENV)
    if not spec or ":" not in spec:
        return None
    pattern, folder = spec.split(":", 1)
    marker = Path(folder) / (task.key.replace("/", "_") + ".crashed")
    if pattern not in task.source or marker.exists():
        return None

    def crash() -> None:
        marker.write_text(worker_name())
        os._exit(1)

    return crash
