"""``rtderain build``: prebuilds into the cache, reuses on the second run, clear errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from rtderain.cli.build import build
from rtderain.errors import RTDerainError
from rtderain.util import parse_size


def test_parse_size():
    assert parse_size("1280x720") == (1280, 720)  # (width, height), as written
    for bad in ("1280", "x720", "0x10", "12.5x7"):
        with pytest.raises(RTDerainError, match="WIDTHxHEIGHT"):
            parse_size(bad)


def test_build_writes_artifact_and_sidecar_then_reuses(tmp_path):
    pytest.importorskip("onnxruntime")
    args = ["--engine", "onnxruntime", "--size", "40x30", "--batch", "2", "--model", "mgid-rt",
            "--device", "cpu", "--precision", "fp32", "--engines-dir", str(tmp_path)]
    result = CliRunner().invoke(build, args)
    assert result.exit_code == 0, result.output
    assert "40x30: onnxruntime fp32 on cpu" in result.output
    (artifact,) = tmp_path.glob("*.onnx")
    assert "_b2_48x32_" in artifact.name  # padded up to the model's multiple (16)
    meta = json.loads(artifact.with_suffix(".json").read_text())
    assert meta["key"]["model"] == "mgid-rt" and meta["key"]["batch"] == 2
    mtime = artifact.stat().st_mtime_ns
    again = CliRunner().invoke(build, args)
    assert again.exit_code == 0, again.output
    assert artifact.stat().st_mtime_ns == mtime  # reused, not rebuilt


def test_build_torch_says_nothing_to_build(tmp_path):
    result = CliRunner().invoke(build, ["--engine", "torch", "--size", "32x32", "--device", "cpu",
                                        "--engines-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "nothing to build" in result.output


def test_build_on_cuda_lists_the_artifacts_it_built(tmp_path, monkeypatch):
    """On CUDA create_engine wraps the cached engine (CudaFrameEngine); build must still
    list what it built, not say "nothing to build". The wrapper is exercised on the CPU."""
    pytest.importorskip("onnxruntime")
    from rtderain.backends import registry
    from rtderain.backends.transfer import CudaFrameEngine

    real = registry.create_engine

    def wrapped_like_cuda(*args, **kwargs):
        return CudaFrameEngine(real(*args, **kwargs))

    monkeypatch.setattr(registry, "create_engine", wrapped_like_cuda)
    result = CliRunner().invoke(build, ["--engine", "onnxruntime", "--size", "32x32",
                                        "--device", "cpu", "--precision", "fp32",
                                        "--engines-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "nothing to build" not in result.output
    (artifact,) = tmp_path.glob("*.onnx")
    assert f"artifact: {artifact}" in result.output
