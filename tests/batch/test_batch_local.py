"""Local batches: complete outputs, resume from the journal, failures that do not stop it."""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from rtderain.batch import BatchOptions, plan_batch, run_batch
from rtderain.batch.journal import JOURNAL_NAME, REPORT_NAME, Journal
from rtderain.batch.worker import CRASH_ENV
from tests.mediagen import run_cli, write_video


def _run(src: Path, out: Path, settings, **kw):
    items = plan_batch([str(src)], out)
    return run_batch(items, BatchOptions(settings=settings, out_dir=out, **kw))


def _statuses(result) -> dict[str, str]:
    return {f["key"]: f["status"] for f in result.files}


def test_batch_writes_complete_outputs_and_resumes(make_clips, fast_settings, assert_complete,
                                                   tmp_path):
    src = make_clips(["a.mp4", "sub/b.mp4"])
    out = tmp_path / "out"
    first = _run(src, out, fast_settings)
    assert _statuses(first) == {"a.mp4": "done", "sub/b.mp4": "done"}
    for name in ("a.mp4", "sub/b.mp4"):
        assert_complete(src / name, out / name)
    report = json.loads((out / REPORT_NAME).read_text())
    assert report["totals"]["done"] == 2
    assert {f["frames"] for f in report["files"]} == {8}
    assert {f["copied_streams"] for f in report["files"]} == {1}
    assert all(f["engine"].startswith("torch") and f["fps"] > 0 for f in report["files"])
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind

    # A rerun skips both; a changed input is redone, the other stays skipped.
    assert _statuses(_run(src, out, fast_settings)) == {"a.mp4": "skipped",
                                                        "sub/b.mp4": "skipped"}
    write_video(src / "a.mp4", frames=6, width=64, height=48, audio=True)
    again = _run(src, out, fast_settings)
    assert _statuses(again) == {"a.mp4": "done", "sub/b.mp4": "skipped"}
    assert_complete(src / "a.mp4", out / "a.mp4")

    # A changed setting redoes everything; a speed-only setting (batch) does not.
    assert set(_statuses(_run(src, out, replace(fast_settings, batch=2))).values()) == {
        "skipped"}
    crf = replace(fast_settings, encode=replace(fast_settings.encode, crf=30))
    assert set(_statuses(_run(src, out, crf)).values()) == {"done"}


def test_torn_journal_line_is_dropped_and_its_file_redone(make_clips, fast_settings, tmp_path):
    src = make_clips(["a.mp4", "b.mp4"])
    out = tmp_path / "out"
    _run(src, out, fast_settings)
    journal = out / JOURNAL_NAME
    lines = journal.read_text().splitlines()  # started a, started b, done a, done b
    assert [json.loads(x)["status"] for x in lines] == ["started"] * 2 + ["done"] * 2
    torn = "\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2]  # died mid-write
    journal.write_text(torn)
    # b's output is the batch's own (it was started), so it is redone, not refused.
    assert _statuses(_run(src, out, fast_settings)) == {"a.mp4": "skipped", "b.mp4": "done"}
    assert {k: r["status"] for k, r in Journal(journal).records.items()} == {
        "a.mp4": "done", "b.mp4": "done"}


def test_a_bad_file_does_not_stop_the_batch(make_clips, tmp_path, assert_complete):
    src = make_clips(["a.mp4", "c.mp4"])
    (src / "b.mp4").write_bytes(os.urandom(4000))  # not a video at all
    out = tmp_path / "out"
    (out).mkdir()
    (out / "c.mp4").write_bytes(b"someone else's file")
    proc = run_cli("batch", str(src), "--out-dir", str(out), "-m", "mgid-rt", "--engine",
                   "torch", "--device", "cpu", "--temporal", "off", "--threads", "1", "-q")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 3, proc.stderr
    assert all(re.match(r"\[\d/3\] failed ", line) for line in lines[:2]), lines
    assert any(f"{src / 'b.mp4'}: " in line for line in lines[:2])
    assert any("c.mp4: output exists and is not in the journal" in line for line in lines[:2])
    assert lines[2].startswith("rtderain: error: 2 of 3 file(s) failed")
    assert_complete(src / "a.mp4", out / "a.mp4")
    assert (out / "c.mp4").read_bytes() == b"someone else's file"
    assert not (out / "b.mp4").exists()
    report = json.loads((out / REPORT_NAME).read_text())
    by_key = {f["key"]: f for f in report["files"]}
    assert by_key["a.mp4"]["status"] == "done" and by_key["a.mp4"]["error"] is None
    assert by_key["b.mp4"]["status"] == "failed" and by_key["b.mp4"]["error"]
    assert report["totals"] == {**report["totals"], "done": 1, "failed": 2}


def test_cli_bad_input_is_one_line(tmp_path):
    proc = run_cli("batch", str(tmp_path / "gone.mp4"), "--out-dir", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"rtderain: error: input {tmp_path / 'gone.mp4'}: input not found: "
        f"{tmp_path / 'gone.mp4'}"]
    assert not (tmp_path / "o").exists()
    proc = run_cli("batch", str(tmp_path), "--out-dir", str(tmp_path / "o"), "--gpus", "1")
    assert proc.returncode == 1
    assert proc.stderr.strip() == "rtderain: error: --gpus and --ray-cpus need --ray ADDRESS"


@pytest.mark.slow
def test_jobs_2_survives_a_dead_worker(make_clips, fast_settings, assert_complete, tmp_path,
                                       monkeypatch):
    names = ["a.mp4", "b.mp4", "crash_me.mp4", "d.mp4"]
    src = make_clips(names)
    marker = tmp_path / "markers"
    marker.mkdir()
    monkeypatch.setenv(CRASH_ENV, f"crash_me:{marker}")
    out = tmp_path / "out"
    result = _run(src, out, fast_settings, jobs=2)
    assert (marker / "crash_me.mp4.crashed").exists()  # the first attempt did die
    assert _statuses(result) == dict.fromkeys(names, "done")
    workers = {f["worker"] for f in result.files}
    assert len(workers) >= 2  # separate processes (the pool was rebuilt after the crash)
    for name in names:
        assert_complete(src / name, out / name)
    assert [p.name for p in out.iterdir() if not p.name.startswith(".")].count(
        "crash_me.mp4") == 1
