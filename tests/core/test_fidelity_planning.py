"""Planning refuses, before any work, the runs that would lose data: two inputs with one
output, a folder where the output file goes, a folder of images with a broken one."""

from __future__ import annotations

import numpy as np
import pytest

from rtderain.errors import RTDerainError
from rtderain.jobs import plan_jobs
from rtderain.media.images import write_image
from tests.mediagen import run_cli, write_video


def _one_line(result) -> str:
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_out_dir_refuses_two_inputs_with_the_same_name(tmp_path):
    a, b = tmp_path / "a" / "clip.mp4", tmp_path / "b" / "clip.mp4"
    for p in (a, b):
        p.parent.mkdir()
        write_video(p, frames=2, width=64, height=48)
    out = tmp_path / "out"
    line = _one_line(run_cli(str(a), str(b), "--out-dir", str(out)))
    assert str(a) in line and str(b) in line, line
    assert not out.exists()  # nothing created, nothing written


def test_out_dir_refuses_one_input_given_twice(tmp_path):
    a = tmp_path / "clip.mp4"
    write_video(a, frames=2, width=64, height=48)
    with pytest.raises(RTDerainError, match="both be written"):
        plan_jobs((str(a), str(a)), None, str(tmp_path / "out"), False)


def test_output_that_is_another_input_is_refused(tmp_path):
    a, b = tmp_path / "clip.mp4", tmp_path / "out" / "clip.mp4"
    b.parent.mkdir()
    write_video(a, frames=2, width=64, height=48)
    write_video(b, frames=2, width=64, height=48)
    with pytest.raises(RTDerainError, match="input"):
        plan_jobs((str(a), str(b)), None, str(b.parent), True)


def test_folder_at_the_output_path_is_refused_even_with_overwrite(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "existing_folder.mp4"
    write_video(src, frames=2, width=64, height=48)
    out.mkdir()
    line = _one_line(run_cli(str(src), "-o", str(out), "--overwrite"))
    assert "is a folder" in line and str(out) in line, line
    assert out.is_dir() and not any(out.iterdir())


def test_folder_with_a_broken_image_is_refused_before_any_work(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    for name in ("001.png", "003.png"):
        write_image(frames / name, rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    (frames / "002.png").write_bytes(b"not a png at all" * 8)
    out = tmp_path / "clean"
    line = _one_line(run_cli(str(frames), "-o", str(out)))
    assert "002.png" in line and "not a readable image" in line, line
    assert not out.exists()


def test_derainer_folder_checks_every_image_first(tmp_path):
    from rtderain.api import Derainer

    frames = tmp_path / "frames"
    frames.mkdir()
    write_image(frames / "001.png", np.zeros((48, 64, 3), np.uint8))
    (frames / "002.png").write_bytes(b"broken")
    out = tmp_path / "clean"
    derainer = Derainer("mgid-rt", engine="torch", device="cpu")
    with pytest.raises(RTDerainError, match="002.png"):
        derainer.folder(frames, out)
    assert not out.exists()
