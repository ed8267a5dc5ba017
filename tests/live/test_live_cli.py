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
from live_helpers import decode_all, free_port

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
    (("0", "--max-memory", "lots"), "--max-memory 'lots': expected a size"),
    (("0", "--tile", "7"), "--tile 7: between 128 and 4096"),
])
def test_bad_input_is_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code, _, err = _main(args, monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_a_tight_budget_tiles_live_frames(rainy_clip, tmp_path):
    """The live path plans its engine like `run`: tiles under a small budget, every frame
    recorded."""
    out = tmp_path / "clean.mp4"
    res = subprocess.run(
        _cmd(str(rainy_clip), "--engine", "torch", "--threads", "1", "-m", "mgid-rt",
             "--max-memory", "900M", "--tile", "128", "--frames", "6", "--record",
             str(out), "--temporal", "off"),
        capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "tiles of 128x" in res.stderr
    assert len(decode_all(out)) == 6


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


def test_config_file_sets_defaults_and_options_override(rainy_clip, tmp_path, monkeypatch,
                                                        capsys):
    cfg = tmp_path / "live.yaml"
    cfg.write_text("stream:\n  engine: torch\n  threads: 1\n  max_frames: 2\n  crf: 30\n")
    out = tmp_path / "rec.mp4"
    code, _, err = _main([str(rainy_clip), "-c", str(cfg), "--record", str(out)],
                         monkeypatch, capsys)
    assert code == 0, err
    assert "torch" in err  # the engine from the file
    assert len(decode_all(out)) == 2  # --frames from the file
    code, _, err = _main([str(rainy_clip), "-c", str(cfg), "--frames", "3", "--record",
                          str(out), "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert len(decode_all(out)) == 3  # the command line wins


@pytest.mark.parametrize(("text", "message"), [
    ("stream:\n  bogus: 1\n", "stream: unknown key 'bogus'"),
    ("run:\n  model: mgid-rt\n  encode:\n    tune: film\n", "encode: unknown key 'tune'"),
])
def test_bad_config_file_is_one_line(rainy_clip, tmp_path, monkeypatch, capsys, text, message):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    code, _, err = _main([str(rainy_clip), "-c", str(cfg)], monkeypatch, capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err


def test_realtime_yaml_of_run_works_for_stream(rainy_clip, tmp_path, monkeypatch, capsys):
    code, _, err = _main([str(rainy_clip), "-c", str(ROOT / "configs" / "realtime.yaml"),
                          "--engine", "torch", "--frames", "2", "-q"], monkeypatch, capsys)
    assert code == 0, err


@pytest.mark.parametrize("where", ["source", "stream-out"])
def test_printed_urls_hide_their_password(rainy_clip, tmp_path, where):
    url = f"rtsp://admin:hunter2@127.0.0.1:{free_port()}/live"
    args = [url, "--open-timeout", "2"] if where == "source" else [
        str(rainy_clip), "--engine", "torch", "--threads", "1", "--frames", "3",
        "--stream-out", url]
    res = subprocess.run([sys.executable, "-m", "rtderain", "-v", "stream", *args],
                         capture_output=True, text=True, env=_env(), cwd=tmp_path, timeout=90)
    assert res.returncode == 1, res.stderr
    assert "hunter2" not in res.stderr + res.stdout
    assert "rtsp://admin:***@127.0.0.1" in res.stderr.strip().splitlines()[-1], res.stderr


def test_missing_webcam_is_one_line_without_opencv_noise(tmp_path):
    index = next(i for i in range(10, 64) if not Path(f"/dev/video{i}").exists())
    res = subprocess.run(_cmd(str(index)), capture_output=True, text=True, env=_env(),
                         cwd=tmp_path, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"rtderain: error: cannot open webcam {index} (no such camera, or it is busy)"
    ], res.stderr
