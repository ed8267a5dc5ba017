"""TensorRT: everything up to the GPU compile on the CPU; the GPU steps are marked."""

from __future__ import annotations

import inspect
import sys

import pytest
import torch

from rtderain.backends import registry
from rtderain.backends.base import BackendUnavailable, BuildSpec
from rtderain.backends.cache import ArtifactKey
from rtderain.backends.tensorrt_backend import (
    TensorRTBackend,
    TensorRTSettings,
    _import_trt,
    check_pair,
    compile_kwargs,
    prepare,
)

from .conftest import perturbed_model, psnr

SPEC = BuildSpec("mgid-rt", "abc", 2, 64, 96, "fp16", "cuda:0")


def test_check_says_why_on_a_cpu_machine():
    backend = TensorRTBackend()
    with pytest.raises(BackendUnavailable, match="needs an NVIDIA GPU, device is cpu"):
        backend.check(torch.device("cpu"), "fp16")
    if not torch.cuda.is_available():
        with pytest.raises(BackendUnavailable, match="CUDA is not available"):
            backend.check(torch.device("cuda"), "fp16")


def test_export_for_tensorrt_is_fp16_static_and_close_to_fp32():
    model = perturbed_model("mgid-rt")
    program, example = prepare(model, SPEC, device="cpu")
    assert example.dtype == torch.float16 and tuple(example.shape) == SPEC.shape
    (frame,) = [n for n in program.graph.nodes if n.op == "placeholder" and n.name == "x"]
    assert tuple(frame.meta["val"].shape) == SPEC.shape  # static: plain ints, no symbols
    assert all(isinstance(d, int) for d in frame.meta["val"].shape)
    assert frame.meta["val"].dtype == torch.float16
    assert program.state_dict["memory.items"].dtype == torch.float16
    assert next(model.parameters()).dtype == torch.float32  # caller's model untouched
    with torch.no_grad():
        got = program.module()(example).float()
        expected = model(example.float())
    assert psnr(got, expected) >= 40.0


def _new_api(exported_program, inputs=None, *, arg_inputs=None, use_explicit_typing=True,
             min_block_size=5, optimization_level=None, workspace_size=0, device=None,
             disable_tf32=False):
    """Signature of torch_tensorrt.dynamo.compile >= 2.9 (explicit typing)."""


def _old_api(exported_program, inputs=None, *, enabled_precisions=None, min_block_size=5,
             optimization_level=None, workspace_size=0):
    """Signature of torch_tensorrt.dynamo.compile 2.4 (enabled_precisions, inputs)."""


def test_compile_arguments_follow_the_installed_api():
    example = torch.zeros(SPEC.shape, dtype=torch.float16)
    settings = TensorRTSettings(workspace_gb=1.0)
    new = compile_kwargs(_new_api, example, "fp16", settings)
    assert new["arg_inputs"] == [example] and new["use_explicit_typing"] is True
    assert "enabled_precisions" not in new and new["workspace_size"] == 1 << 30
    old = compile_kwargs(_old_api, example, "fp16", settings)
    assert old["inputs"] == [example] and old["enabled_precisions"] == {torch.float16}
    for kwargs, fn in ((new, _new_api), (old, _old_api)):
        inspect.signature(fn).bind(None, **kwargs)  # every argument is accepted


def test_compile_targets_the_asked_gpu_and_fp32_without_tf32():
    example = torch.zeros(SPEC.shape, dtype=torch.float32)
    settings = TensorRTSettings()
    gpu1 = torch.device("cuda:1")
    fp32 = compile_kwargs(_new_api, example, "fp32", settings, gpu1)
    assert fp32["device"] == gpu1  # not GPU 0, whatever --device said
    assert fp32["disable_tf32"] is True
    fp16 = compile_kwargs(_new_api, example, "fp16", settings, gpu1)
    assert fp16["device"] == gpu1 and "disable_tf32" not in fp16
    assert "device" not in compile_kwargs(_old_api, example, "fp32", settings, gpu1)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ('raise OSError("libnvinfer.so.10: cannot open shared object")', "OSError: libnvinfer"),
        ('raise RuntimeError("operator trt::execute_engine missing")', "RuntimeError: operator"),
        ("import tensorrt_libs_that_are_missing", "tensorrt_libs_that_are_missing"),
    ],
)
def test_a_broken_torch_tensorrt_is_unavailable_with_its_reason(
    tmp_path, monkeypatch, error, words
):
    (tmp_path / "torch_tensorrt.py").write_text(error + "\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "torch_tensorrt", raising=False)
    with pytest.raises(BackendUnavailable, match="torch_tensorrt cannot load") as info:
        _import_trt()
    assert words in str(info.value)
    with pytest.raises(BackendUnavailable):  # versions(), which bench speed calls, too
        TensorRTBackend().versions()


def test_missing_torch_tensorrt_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch_tensorrt", None)  # import raises ImportError
    with pytest.raises(BackendUnavailable, match="not installed"):
        _import_trt()


def test_torch_and_torch_tensorrt_must_be_a_pair():
    check_pair("2.9.1+cu128", "2.9.0")  # same minor: fine
    check_pair("2.11.0", "2.11.0rc1")
    with pytest.raises(BackendUnavailable, match=r"built for torch 2\.9, this is torch 2\.11"):
        check_pair("2.11.0+cu130", "2.9.0")
    with pytest.raises(BackendUnavailable, match=r"torch-tensorrt==2\.11\.\*"):
        check_pair("2.11.0", "2.12.0")


def test_tensorrt_cache_key_names_the_build():
    key = ArtifactKey(SPEC, "tensorrt", "NVIDIA GeForce RTX 4090",
                      {"torch_tensorrt": "2.9.0", "tensorrt": "10.13"}, {})
    stem = key.stem()
    for part in ("mgid-rt", "abc", "tensorrt", "fp16", "b2", "96x64", "nvidia-geforce-rtx-4090"):
        assert part in stem


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_build_save_reload_parity(tmp_path, monkeypatch):
    """Build, then a second create_engine that must reuse the saved .ep (counted builds,
    an unchanged sidecar), both close to eager fp32, through the float and uint8 paths."""
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    pytest.importorskip("torch_tensorrt")
    import json

    import numpy as np

    from rtderain.media.batching import derain_frames

    builds = []
    real_build = TensorRTBackend.build
    monkeypatch.setattr(TensorRTBackend, "build",
                        lambda self, *a: builds.append(a[1]) or real_build(self, *a))
    model = perturbed_model("mgid-rt")
    engine = registry.create_engine(model, "tensorrt", "cuda", "fp16", size=(64, 96), batch=2,
                                    engines_dir=tmp_path)
    assert engine.name == "tensorrt", engine.selection
    (sidecar,) = tmp_path.glob("*.json")
    built = json.loads(sidecar.read_text())["built_at"], sidecar.stat().st_mtime_ns
    x = torch.rand(3, 3, 64, 96, device="cuda") * 2 - 1
    expected = model.cuda()(x)
    assert psnr(engine.infer(x), expected) >= 40.0
    frames = ((x + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    want = ((expected + 1) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).cpu()
    got = derain_frames(engine, list(frames))  # the uint8 path video runs
    assert got.dtype == np.uint8
    assert psnr(torch.from_numpy(got).float() / 127.5 - 1, want / 127.5 - 1) >= 40.0
    again = registry.create_engine(model, "tensorrt", "cuda:0", "fp16", size=(64, 96),
                                   batch=2, engines_dir=tmp_path)  # "cuda:0" is "cuda"
    assert len(builds) == 1  # reused, not rebuilt
    assert (json.loads(sidecar.read_text())["built_at"], sidecar.stat().st_mtime_ns) == built
    assert psnr(again.infer(x), expected) >= 40.0
    assert len(list(tmp_path.glob("*.ep"))) == 1
