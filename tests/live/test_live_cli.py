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
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _main(args, monkeypatch, capsys) -> tuple[int, str, str]:
    """Run the console entry point in-process; returns (exit code, stdout, stderr)."""
    from rtderain.cli import main

    monkeypatch.setattr(sys, "argv", ["rtderain", "stream", *args])
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_stream_help_lists_every_sink(monkeypatch, capsys):
    code, out, err = _main(["--help"], monkeypatch, capsys)
    assert code == 0, err
    for option in ("--show", "--side-by-side", "--record", "--stream-out", "--serve",
                   "--realtime", "--max-latency", "--input-option", "--reconnect-delay",
                   "--stall-timeout", "--model"):
        assert option in out


@pytest.mark.parametrize(("args", "message"), [
    (("missing.mp4",), "source not found: missing.mp4"),
    (("ftp2://x",), "unsupported source URL scheme"),
    (("rtsp://127.0.0.1:9/none", "--open-timeout", "2"), "cannot open rtsp://127.0.0.1:9/none"),
    (("0", "--serve", "bad"), "--serve wants HOST:PORT"),
    (("0", "--show"), "--show needs a display"),
    (("0", "--side-by-side"), "--side-by-side goes with --show"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(args, monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


@pytest.mark.slow
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
