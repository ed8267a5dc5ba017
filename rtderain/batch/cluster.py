"""Running a batch on a Ray cluster: one Ray task per file (never per frame).

Each task declares its resources (``num_cpus``, ``num_gpus``), so Ray places as many files
at once on a node as it has room for; inputs and outputs are paths on a filesystem every
node mounts at the same place. A task whose worker process (or node) dies is retried up to
``max_retries`` times; a file that fails (a bad input) is not (``retry_exceptions=False``:
the task returns its error instead of raising). The driver alone writes the journal and the
report, as results arrive. Needs the optional extra: ``pip install 'rtderain[ray]'``.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from rtderain.batch.local import OnStart, failed
from rtderain.batch.worker import CRASH_ENV, FileTask, limit_threads, run_file
from rtderain.errors import RTDerainError

log = logging.getLogger(__name__)

# Environment passed to every task: the engine cache folder and the test hook.
_PASSED_ENV = ("RTDERAIN_ENGINES", CRASH_ENV)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RTDerainError("--ray needs Ray: pip install 'rtderain[ray]'") from None
    return ray


def connect(address: str, num_cpus: int | None = None, timeout: float = 10.0) -> bool:
    """Join (or start, for ``local``) a Ray cluster; returns True if this call connected
    this process (the caller's ``ray.shutdown()`` then stops a ``local`` cluster or leaves
    another one). ``address``: ``local``, ``auto`` or ``HOST:PORT``.

    Raises:
        RTDerainError: Ray not installed, no cluster at ``auto``, ``HOST:PORT`` unreachable
            within ``timeout`` seconds, or a malformed address.
    """
    ray = _ray()
    if address not in ("local", "auto"):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise RTDerainError(f"--ray {address!r}: expected local, auto or HOST:PORT")
        try:
            grpc = _speaks_grpc(host, int(port), timeout)
        except OSError as exc:
            raise RTDerainError(f"Ray cluster at {address} is unreachable ({exc}; waited up to "
                                f"{timeout:g} s); start it with `ray start --head`") from None
        if not grpc:  # ray.init would wait for minutes on, say, a web server's port
            raise RTDerainError(f"{address} answers but is not a Ray cluster (no gRPC server "
                                f"there); give the head's GCS port (`ray start --head --port`)")
    if ray.is_initialized():  # this process already joined one (tests, notebooks)
        return False
    env = {k: os.environ[k] for k in _PASSED_ENV if os.environ.get(k)}
    common = {"runtime_env": {"env_vars": env} if env else None, "log_to_driver": False}
    if address == "local":
        ray.init(num_cpus=num_cpus, include_dashboard=False, **common)
        return True
    try:
        ray.init(address=address, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RTDerainError(f"cannot join the Ray cluster at {address}: {first}") from None
    return True


def _speaks_grpc(host: str, port: int, timeout: float) -> bool:
    """Whether ``host:port`` answers the HTTP/2 client preface with a SETTINGS frame, as
    the gRPC server of Ray's GCS does (an HTTP/1 server, or silence, does not)."""
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(preface)
        head = b""
        try:
            while len(head) < 9:
                chunk = sock.recv(9 - len(head))
                if not chunk:
                    break
                head += chunk
        except TimeoutError:
            return False
    return len(head) == 9 and head[3] == 0x04


def check_resources(cpus: float, gpus: float) -> None:
    """Refuse, before any task is submitted, a request no alive node can ever satisfy."""
    ray = _ray()
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    fits = [n for n in nodes if n["Resources"].get("CPU", 0) >= cpus
            and n["Resources"].get("GPU", 0) >= gpus]
    if fits:
        return
    have = "; ".join(f"{n.get('NodeManagerAddress', '?')}: CPU {n['Resources'].get('CPU', 0):g}"
                     f", GPU {n['Resources'].get('GPU', 0):g}" for n in nodes) or "no alive node"
    raise RTDerainError(f"no node of the Ray cluster can run a task needing CPU {cpus:g} and "
                        f"GPU {gpus:g} (nodes: {have}); change --cpus-per-task / --gpus or "
                        f"add such a node")


def _task(task: FileTask) -> dict:
    """The Ray task body: this worker's share of cores, then the file."""
    limit_threads(task.threads)
    return run_file(task)


class RayCluster:
    """Submit one task per file, at most ``in_flight`` at once (bounded driver memory)."""

    def __init__(self, cpus: float = 1.0, gpus: float = 0.0, max_retries: int = 2) -> None:
        ray = _ray()
        self.cpus, self.gpus, self.max_retries = cpus, gpus, max_retries
        total = ray.cluster_resources()
        slots = int(total.get("CPU", 1) // max(cpus, 1e-3))
        if gpus:
            slots = min(slots, int(total.get("GPU", 0) // gpus))
        self.workers = max(1, slots)
        self.in_flight = max(4, 2 * self.workers)
        self._remote = ray.remote(_task)

    def run(self, tasks: list[FileTask], on_start: OnStart) -> Iterator[dict]:
        ray = _ray()
        threads = max(1, int(self.cpus))
        pending = list(reversed(tasks))
        running: dict[Any, FileTask] = {}
        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_retries": self.max_retries,
                   "retry_exceptions": False}
        try:
            while pending or running:
                while pending and len(running) < self.in_flight:
                    task = pending.pop()
                    task = replace(task, threads=task.threads or threads)
                    ref = self._remote.options(name=f"rtderain:{task.key}", **options).remote(task)
                    running[ref] = task
                    on_start(task, "ray")
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    task = running.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as exc:  # worker or node died every try
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                        yield failed(task, f"Ray task failed after {self.max_retries} "
                                           f"retries: {type(exc).__name__}: {first}")
        finally:
            for ref in running:
                ray.cancel(ref, force=True)
