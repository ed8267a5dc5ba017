"""SIGTERM and SIGHUP end a run as Ctrl-C does: the temporary output is removed, one line,
exit 143 / 129; temporary files of runs that were killed are cleaned up by the next one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from fractions import Fraction

import numpy as np
import pytest

from rtderain.media.colour import ColourInfo
from rtderain.media.writer import EncodeOptions, VideoWriter
from tests.mediagen import REPO, write_video


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_signal_leaves_no_partial(tmp_path, signum):
    src, out = tmp_path / "long.mp4", tmp_path / "out.mp4"
    write_video(src, frames=300, width=64, height=48)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtderain", str(src), "-o", str(out), "--model", "mgid-rt",
         "--engine", "torch", "--device", "cpu", "-q"],
        stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
        # The default action in the child, whatever the test runner inherited: rtderain
        # keeps a signal ignored when its parent ignores it (a suite run under nohup).
        preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL),
    )
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".out.partial*")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.partial*")), "the run never started writing"
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err
    assert "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == f"rtderain: stopped by {signum.name}", err
    assert not list(tmp_path.glob(".out.partial*")) and not out.exists()


def _dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_stale_partials_of_dead_runs_are_removed(tmp_path):
    out = tmp_path / "clip.mkv"
    stale = tmp_path / f".clip.partial-{_dead_pid()}.mkv"
    alive = tmp_path / f".clip.partial-{os.getppid()}.mkv"  # a running process: kept
    other = tmp_path / f".other.partial-{_dead_pid()}.mkv"  # another output: kept
    for p in (stale, alive, other):
        p.write_bytes(b"x")
    colour = ColourInfo(colorspace=1, color_range=1, color_primaries=1, color_trc=1)
    writer = VideoWriter(out, width=64, height=48, time_base=Fraction(1, 25),
                         frame_rate=Fraction(25), colour=colour,
                         options=EncodeOptions(codec="ffv1"))
    writer.write(np.zeros((48, 64, 3), np.uint8), 0)
    writer.close()
    assert not stale.exists() and alive.exists() and other.exists() and out.exists()
