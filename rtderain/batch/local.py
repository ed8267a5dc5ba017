"""Running a batch's files on this machine: in the driver's process, or a pool of processes.

Each pool process is a separate interpreter (``spawn``) with its share of the cores
(``cores // jobs`` inference threads: torch, OpenMP, ONNX Runtime, OpenVINO). A pool process
that dies (killed, out of memory) does not stop the batch: the pool is rebuilt and the files
it was running are tried again, up to ``max_retries`` times each.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from rtderain.batch.worker import FileTask, limit_threads, run_file, worker_name

log = logging.getLogger(__name__)

OnStart = Callable[[FileTask, str], None]


def cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def failed(task: FileTask, error: str, worker: str = "") -> dict:
    """The result of a file that no worker finished."""
    return {"key": task.key, "input": task.source, "output": task.target, "status": "failed",
            "frames": 0, "copied_streams": 0, "fps": None, "seconds": 0.0, "engine": None,
            "error": error, "worker": worker}


class InProcess:
    """Run the files one after another in this process (``--jobs 1``)."""

    workers = 1

    def __init__(self, on_frames: Callable[[FileTask, int, int], None] | None = None) -> None:
        self.on_frames = on_frames

    def run(self, tasks: list[FileTask], on_start: OnStart) -> Iterator[dict]:
        for task in tasks:
            on_start(task, worker_name())
            progress = None
            if self.on_frames is not None:
                def progress(done: int, total: int, task: FileTask = task) -> None:
                    self.on_frames(task, done, total)  # type: ignore[misc]
            yield run_file(task, progress)


def _init_pool_worker(threads: int) -> None:
    limit_threads(threads)


class ProcessPool:
    """Run the files in ``jobs`` processes, at most one file per process at a time."""

    def __init__(self, jobs: int, max_retries: int = 2, threads: int | None = None) -> None:
        self.workers = jobs
        self.threads = threads or max(1, cores() // jobs)
        self.max_retries = max_retries

    def _pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=get_context("spawn"),
                                   initializer=_init_pool_worker, initargs=(self.threads,))

    def run(self, tasks: list[FileTask], on_start: OnStart) -> Iterator[dict]:
        queue = [_with_threads(t, self.threads) for t in reversed(tasks)]
        attempts: dict[str, int] = {}
        pool = self._pool()
        running: dict[Future, FileTask] = {}
        try:
            while queue or running:
                while queue and len(running) < self.workers:
                    task = queue.pop()
                    attempts[task.key] = attempts.get(task.key, 0) + 1
                    running[pool.submit(run_file, task)] = task
                    on_start(task, f"pool worker {len(running)}")
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                broken = False
                for fut in done:
                    task = running.pop(fut)
                    try:
                        yield fut.result()
                    except BrokenProcessPool:
                        broken = True
                        queue.append(task)
                if broken:
                    # Every file the pool was running is lost with it: try each again.
                    for task in running.values():
                        queue.append(task)
                    running.clear()
                    for task in list(queue):
                        if attempts.get(task.key, 0) > self.max_retries:
                            queue.remove(task)
                            yield failed(task, f"worker process died {attempts[task.key]} "
                                               f"times running this file")
                    log.warning("a worker process died; restarting the pool (%d file(s) to "
                                "retry)", sum(1 for t in queue if attempts.get(t.key)))
                    pool.shutdown(wait=False, cancel_futures=True)
                    pool = self._pool()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


def _with_threads(task: FileTask, threads: int) -> FileTask:
    from dataclasses import replace

    return replace(task, threads=task.threads or threads)
