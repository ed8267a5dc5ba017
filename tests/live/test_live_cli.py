"""``rtderain stream`` as a user runs it: help, bad input, Ctrl-C leaves a valid recording."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from live_helpers import decode_all

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(120)


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "rtderain", "stream", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def test_stream_help_lists_every_sink():
    res = subprocess.run(_cmd("--help"), capture_output=True, text=True, env=_env(), timeout=60)
    assert res.returncode == 0, res.stderr
    for option in ("--show", "--side-by-side", "--record", "--stream-out", "--serve",
                   "--realtime", "--max-latency", "--input-option", "--reconnect-delay",
                   "--stall-timeout", "--model"):
        assert option in res.stdout


@pytest.mark.parametrize(("args", "message"), [
    (("missing.mp4",), "source not found: missing.mp4"),
    (("ftp2://x",), "unsupported source URL scheme"),
    (("rtsp://127.0.0.1:9/none", "--open-timeout", "2"), "cannot open rtsp://127.0.0.1:9/none"),
    (("0", "--show", "--side-by-side", "--serve", "bad"), "--serve wants HOST:PORT"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    res = subprocess.run(_cmd(*args), capture_output=True, text=True, env=_env(), timeout=60,
                         cwd=tmp_path)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], res.stderr


def test_ctrl_c_closes_the_recording(rainy_clip, tmp_path):
    out = tmp_path / "clean.mp4"
    proc = subprocess.Popen(
        _cmd(str(rainy_clip), "--realtime", "--engine", "torch", "--threads", "1",
             "--record", str(out), "--stats-interval", "0.5"),
        stderr=subprocess.PIPE, text=True, env=_env(), cwd=tmp_path,
    )
    try:
        deadline = time.monotonic() + 60
        seen = ""
        while "out " not in seen or " out 0 " in seen:  # a status line with frames out
            assert time.monotonic() < deadline, f"no progress: {seen!r}"
            ready, _, _ = select.select([proc.stderr], [], [], 1.0)
            if ready:
                seen = proc.stderr.readline()
                assert seen or proc.poll() is None, "stream exited early"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "done:" in err
    frames = decode_all(out)
    assert len(frames) >= 2
    assert [p.name for p in tmp_path.iterdir() if "partial" in p.name] == []
