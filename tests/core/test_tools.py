"""Every script in tools/ answers --help (imports resolve, arguments parse) without data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted((ROOT / "tools").glob("*.py"))


def test_there_are_tools():
    assert TOOLS


@pytest.mark.parametrize("script", TOOLS, ids=lambda p: p.name)
def test_help(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RTDERAIN_DATA", None)  # --help must not need the data
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.lower().startswith("usage:")


def _gpu_check(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    return subprocess.run([sys.executable, str(ROOT / "tools" / "gpu_check.py"), *args],
                          capture_output=True, text=True, env=full, cwd=ROOT, timeout=300)


def _load_gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_gpu_check_skips_cleanly_without_cuda():
    out = _gpu_check(CUDA_VISIBLE_DEVICES="")  # no GPU visible, whatever the machine
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("skipped: CUDA is not available to torch")
    assert "Traceback" not in out.stderr


def test_gpu_check_shell_wrapper_skips_cleanly_without_cuda():
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run(["bash", str(ROOT / "tools" / "gpu_check.sh")], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("skipped: ")


@pytest.mark.parametrize(("args", "words"), [
    (["--sizes", "1280"], "size '1280' is not WIDTHxHEIGHT"),
    (["--engines", "tensorflow"], "unknown ['tensorflow']"),
    (["--frames", "0"], "--frames and --batch must be >= 1"),
])
def test_gpu_check_bad_arguments_are_one_line(args, words):
    out = _gpu_check(*args)
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and words in out.stderr
    assert "Traceback" not in out.stderr


def test_gpu_check_table_lines_up():
    gc = _load_gpu_check()
    rows = [gc.Row("parity", "mgid-rt", "torch", "fp32", "64x48", "max 0 level(s)", "ok"),
            gc.Row("fps", "mgid", "tensorrt", "fp16", "1920x1080", "-", "n/a", "not installed")]
    text = gc.format_table(rows, "gpu_check on X")
    lines = text.splitlines()
    assert lines[0] == "gpu_check on X" and lines[1] == ""
    assert len({len(line) for line in lines[2:]}) == 1  # every row as wide as the header
    assert "| fps    | mgid    | tensorrt |" in text and "not installed |" in text


@pytest.mark.parametrize("synthetic", [False, True])
def test_gpu_check_cpu_dry_run_prints_parity_and_fps(synthetic):
    args = ["--cpu", "--models", "mgid-rt", "--engines", "torch", "--frames", "4"]
    out = _gpu_check(*args, *(["--synthetic"] if synthetic else []))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("gpu_check on CPU dry run")
    (parity,) = [x for x in lines if x.startswith("| parity") and "| fp32 " in x]
    assert "max 0 level(s)" in parity and "| ok" in parity  # CPU against itself
    assert any(x.startswith("| parity") and "| fp16 " in x and "n/a" in x for x in lines)
    (fps,) = [x for x in lines if x.startswith("| fps")]
    assert " fps " in fps and "64x48" in fps
    assert ("synthetic frames" in fps) == synthetic
