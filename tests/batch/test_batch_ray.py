"""Batches on a real local Ray cluster (started in the test process): one task per file, a
worker killed mid-file is retried, the outputs, journal and report are a local run's."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from rtderain.batch import BatchOptions, plan_batch, run_batch
from rtderain.batch.cluster import connect
from rtderain.batch.journal import JOURNAL_NAME, REPORT_NAME, Journal
from rtderain.batch.worker import CRASH_ENV
from rtderain.errors import RTDerainError
from tests.mediagen import run_cli

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rtderain[ray]')")

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A 2-CPU Ray cluster on this machine; its workers crash on the first attempt at a
    file named crash_me (they inherit the hook's environment variable)."""
    markers = tmp_path_factory.mktemp("crash-markers")
    old = os.environ.get(CRASH_ENV)
    os.environ[CRASH_ENV] = f"crash_me:{markers}"
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False)
    yield markers
    ray.shutdown()
    if old is None:
        os.environ.pop(CRASH_ENV, None)
    else:
        os.environ[CRASH_ENV] = old


@pytest.mark.slow
def test_ray_batch_retries_a_dead_worker_and_resumes(cluster, make_clips, fast_settings,
                                                     assert_complete, tmp_path):
    names = ["a.mp4", "sub/crash_me.mp4", "c.mp4"]
    src = make_clips(names)
    out = tmp_path / "out"
    options = BatchOptions(settings=fast_settings, out_dir=out, ray="local", max_retries=2)
    result = run_batch(plan_batch([str(src)], out), options)
    assert (cluster / "sub_crash_me.mp4.crashed").exists()  # the first attempt died mid-file
    assert {f["key"]: f["status"] for f in result.files} == dict.fromkeys(names, "done")
    for name in names:
        assert_complete(src / name, out / name)
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # nothing partial
    records = Journal(out / JOURNAL_NAME).records
    assert {k: r["status"] for k, r in records.items()} == dict.fromkeys(names, "done")
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["runner"] == "ray local" and report["totals"]["done"] == 3
    assert {f["copied_streams"] for f in report["files"]} == {1}

    # The GCS port of a running cluster passes the address check (joined already: reused).
    assert connect(ray.get_runtime_context().gcs_address, timeout=5) is False

    # A rerun resumes: nothing to do.
    again = run_batch(plan_batch([str(src)], out), options)
    assert {f["status"] for f in again.files} == {"skipped"}

    # Resources no node has: refused before any task, nothing lost.
    (src / "new.mp4").write_bytes((src / "a.mp4").read_bytes())
    gpu = BatchOptions(settings=fast_settings, out_dir=out, ray="local", gpus=1)
    with pytest.raises(RTDerainError, match="no node of the Ray cluster can run a task "
                                            "needing CPU 1 and GPU 1"):
        run_batch(plan_batch([str(src)], out), gpu)
    assert not (out / "new.mp4").exists()
    assert Journal(out / JOURNAL_NAME).records.keys() == set(names)
    assert all(r["status"] == "done" for r in Journal(out / JOURNAL_NAME).records.values())


def test_unreachable_address_is_one_line(make_clips, tmp_path):
    src = make_clips(["a.mp4"])
    proc = run_cli("batch", str(src), "--out-dir", str(tmp_path / "out"), "--ray",
                   "127.0.0.1:9", "--ray-timeout", "1", timeout=120)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "rtderain: error: Ray cluster at 127.0.0.1:9 is unreachable"), proc.stderr
    assert not (tmp_path / "out" / JOURNAL_NAME).exists()  # refused before any work


def test_a_port_that_is_not_ray_is_refused_at_once():
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def answer() -> None:  # an HTTP/1 server: reads the request, replies 400, closes
        conn, _ = server.accept()
        with conn:
            conn.recv(1024)
            conn.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    with pytest.raises(RTDerainError, match=f"127.0.0.1:{port} answers but is not a Ray"):
        connect(f"127.0.0.1:{port}", timeout=5)
    thread.join(5)
    server.close()
