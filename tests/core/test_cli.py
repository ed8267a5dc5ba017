"""The command line as a user meets it: jobs, outputs, and every kind of bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from rtderain.media.images import read_image, write_image
from rtderain.models import build_model
from rtderain.models.checkpoint import save_checkpoint
from tests.mediagen import REPO, probe, run_cli, write_video


def _assert_clean_failure(result, out_path, needle):
    assert result.returncode != 0
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert needle.lower() in lines[0].lower(), lines[0]
    assert not out_path.exists()
    assert not list(out_path.parent.glob(f".{out_path.stem}.partial*"))


def test_default_command_derains_video(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=9, audio=True)
    result = run_cli(str(src), "-o", str(dst), "--model", "mgid-rt", "-q")
    assert result.returncode == 0, result.stderr
    assert probe(dst)["frames"] == 9


def test_summary_line_and_progress(tmp_path):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=5)
    result = run_cli("run", str(src), "-o", str(dst), "--model", "mgid-rt")
    assert result.returncode == 0, result.stderr
    assert "5 frames in" in result.stderr and "fps" in result.stderr
    # --engine auto says which engine it chose and why
    assert "engine for" in result.stderr and "first available for cpu" in result.stderr


def test_several_inputs_out_dir_and_image_and_folder(tmp_path):
    a, b = tmp_path / "a.mp4", tmp_path / "b.mkv"
    write_video(a, frames=3)
    write_video(b, frames=4)
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for name in ("001.png", "002.jpg"):
        write_image(frames / name, rng.integers(0, 255, (37, 53, 3), dtype=np.uint8))
    out = tmp_path / "out"
    result = run_cli(str(a), str(b), str(frames), "--out-dir", str(out), "--model", "mgid-rt", "-q")
    assert result.returncode == 0, result.stderr
    assert probe(out / "a.mp4")["frames"] == 3
    assert probe(out / "b.mkv")["frames"] == 4
    assert sorted(p.name for p in (out / "frames").iterdir()) == ["001.png", "002.jpg"]
    assert read_image(out / "frames" / "001.png").shape == (37, 53, 3)
    img = tmp_path / "single.png"
    untrained = tmp_path / "untrained.pt"
    save_checkpoint(build_model("mgid-rt"), untrained)
    result = run_cli(str(frames / "001.png"), "-o", str(img), "--weights", str(untrained), "-q")
    assert result.returncode == 0, result.stderr
    # An untrained network is the identity: a PNG round trip is exact.
    np.testing.assert_array_equal(read_image(img), read_image(frames / "001.png"))


def test_missing_input(tmp_path):
    out = tmp_path / "out.mp4"
    _assert_clean_failure(run_cli(str(tmp_path / "nope.mp4"), "-o", str(out)), out, "not found")


def test_not_a_video(tmp_path):
    src, out = tmp_path / "notes.mp4", tmp_path / "out.mp4"
    src.write_text("this is not a video\n" * 50)
    _assert_clean_failure(run_cli(str(src), "-o", str(out)), out, "notes.mp4")


def test_no_video_stream(tmp_path):
    import av

    src, out = tmp_path / "audio.m4a", tmp_path / "out.mp4"
    with av.open(str(src), "w") as c:
        s = c.add_stream("aac", rate=48000)
        for i in range(10):
            f = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            f.sample_rate, f.pts = 48000, i * 1024
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    _assert_clean_failure(run_cli(str(src), "-o", str(out)), out, "no video stream")


def test_truncated_file_keeps_what_decodes(tmp_path):
    src, cut, out = tmp_path / "in.ts", tmp_path / "cut.ts", tmp_path / "out.mp4"
    write_video(src, frames=30, width=128, height=96)
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    import av

    with av.open(str(cut)) as c:
        decodable = sum(1 for _ in c.decode(video=0))
    result = run_cli(str(cut), "-o", str(out), "--model", "mgid-rt", "-q")
    assert result.returncode == 0, result.stderr
    assert 0 < probe(out)["frames"] == decodable < 30


def test_truncated_header_is_a_clean_error(tmp_path):
    src, cut, out = tmp_path / "in.mp4", tmp_path / "cut.mp4", tmp_path / "out.mp4"
    write_video(src, frames=10)
    cut.write_bytes(src.read_bytes()[:200])  # moov atom is at the end: nothing usable
    _assert_clean_failure(run_cli(str(cut), "-o", str(out)), out, "cut.mp4")


def test_corrupt_packets_are_counted_and_skipped(tmp_path):
    src, bad, out = tmp_path / "in.ts", tmp_path / "bad.ts", tmp_path / "out.mkv"
    write_video(src, frames=40, width=128, height=96)
    data = bytearray(src.read_bytes())
    rng = np.random.default_rng(1)
    for start in (len(data) // 3, len(data) // 2):
        data[start : start + 3000] = rng.integers(0, 256, 3000, dtype=np.uint8).tobytes()
    bad.write_bytes(bytes(data))
    import av

    with av.open(str(bad)) as c:
        c.streams.video[0].thread_type = "AUTO"
        decodable = 0
        for packet in c.demux(video=0):
            try:
                decodable += len(packet.decode())
            except av.FFmpegError:
                pass
    result = run_cli(str(bad), "-o", str(out), "--model", "mgid-rt")
    assert result.returncode == 0, result.stderr
    assert probe(out)["frames"] == decodable > 0


def test_unwritable_output(tmp_path):
    src = tmp_path / "in.mp4"
    write_video(src, frames=3)
    out = tmp_path / "missing_dir" / "out.mp4"
    _assert_clean_failure(run_cli(str(src), "-o", str(out)), out, "does not exist")
    if os.geteuid() != 0:  # root writes anywhere; the missing folder case covers it
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        _assert_clean_failure(run_cli(str(src), "-o", str(ro / "o.mp4")), ro / "o.mp4", "writable")


def test_unknown_codec(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=3)
    _assert_clean_failure(run_cli(str(src), "-o", str(out), "--codec", "nosuch"), out, "nosuch")


def test_webm_output_with_the_default_codec_is_refused_before_any_work(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.webm"
    write_video(src, frames=3)
    result = run_cli(str(src), "-o", str(out), "--model", "mgid-rt")
    _assert_clean_failure(result, out, "a .webm file cannot hold h264 video (libx264)")
    assert "--codec vp9" in result.stderr  # this FFmpeg has libvpx-vp9
    assert "engine for" not in result.stderr  # refused before the model was loaded
    result = run_cli(str(src), "-o", str(out), "--model", "mgid-rt", "--codec", "vp9", "-q",
                     "--temporal", "off")
    assert result.returncode == 0, result.stderr
    assert probe(out)["frames"] == 3


def test_unknown_output_extension_is_refused_before_any_work(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.xyz"
    write_video(src, frames=3)
    result = run_cli(str(src), "-o", str(out), "--model", "mgid-rt")
    _assert_clean_failure(result, out, "no container format for the extension '.xyz'")
    assert "engine for" not in result.stderr


def test_disk_full_while_the_mp4_index_is_written(tmp_path, monkeypatch, capsys):
    """ENOSPC when the trailer (the mp4's moov index) is written at close: one line, exit 1,
    nothing under the requested name and no temporary file left."""
    import errno

    import av

    import rtderain.cli as cli

    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=4)
    real_open = av.open

    class FullDisk:
        def __init__(self, container):
            self._container = container

        def __getattr__(self, name):
            return getattr(self._container, name)

        def close(self):
            self._container.close()
            raise OSError(errno.ENOSPC, "No space left on device")

    def open_(file, mode="r", **kwargs):
        container = real_open(file, mode, **kwargs)
        return FullDisk(container) if mode == "w" and isinstance(file, str) else container

    monkeypatch.setattr(av, "open", open_)
    monkeypatch.setattr(cli, "install_signal_handlers", lambda: None)
    monkeypatch.setattr(sys, "argv", ["rtderain", str(src), "-o", str(out), "-m", "mgid-rt",
                                      "-q", "--temporal", "off"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"rtderain: error: cannot finish {out}: [Errno 28] No space left on device"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mp4"]


def test_unknown_model(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=3)
    _assert_clean_failure(run_cli(str(src), "-o", str(out), "--model", "bogus"), out, "bogus")


def test_refuses_to_overwrite_input_or_existing_output(tmp_path):
    src = tmp_path / "in.mp4"
    write_video(src, frames=3)
    before = src.read_bytes()
    result = run_cli(str(src), "-o", str(src), "--overwrite")
    assert result.returncode != 0 and "input itself" in result.stderr
    assert src.read_bytes() == before
    out = tmp_path / "out.mp4"
    out.write_bytes(b"keep me")
    result = run_cli(str(src), "-o", str(out))
    assert result.returncode != 0 and "--overwrite" in result.stderr
    assert out.read_bytes() == b"keep me"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_leaves_no_output(tmp_path):
    src, out = tmp_path / "long.mp4", tmp_path / "out.mp4"
    write_video(src, frames=400, width=320, height=240)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtderain", str(src), "-o", str(out), "--model", "mgid", "-q"],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".out.partial*")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.partial*"))


def test_models_lists_sizes_and_shipped_weights():
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    for name in ("mgid", "mgid-rt"):
        line = next(x for x in result.stdout.splitlines() if x.split()[:1] == [name])
        # e.g. "mgid-rt 0.054M 16 mgid-rt.pt (0.2 MB, 14000 training steps, 24 min)"
        assert re.search(r"\d+ training steps", line), line


@pytest.mark.parametrize("command", ["run", "stream", "batch"])
def test_explicit_model_must_match_the_weights(tmp_path, command):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=3)
    weights = REPO / "rtderain" / "weights" / "mgid-rt.pt"  # the shipped mgid-rt
    args = {"run": [str(src), "-o", str(out)],
            "stream": ["stream", str(src), "--record", str(out), "--frames", "2"],
            "batch": ["batch", str(src), "--out-dir", str(tmp_path / "clean")]}[command]
    result = run_cli(*args, "--model", "mgid", "-w", str(weights), "--engine", "torch")
    _assert_clean_failure(result, out, "holds weights for model 'mgid-rt', not 'mgid'")
    assert not (tmp_path / "clean").exists() or not list((tmp_path / "clean").iterdir())
