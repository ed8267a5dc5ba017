"""TensorRT: everything up to the GPU compile on the CPU; the GPU steps are marked."""

from __future__ import annotations

import inspect

import pytest
import torch

from rtderain.backends import registry
from rtderain.backends.base import BackendUnavailable, BuildSpec
from rtderain.backends.cache import ArtifactKey
from rtderain.backends.tensorrt_backend import (
    TensorRTBackend,
    TensorRTSettings,
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
             min_block_size=5, optimization_level=None, workspace_size=0):
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


def test_tensorrt_cache_key_names_the_build():
    key = ArtifactKey(SPEC, "tensorrt", "NVIDIA GeForce RTX 4090",
                      {"torch_tensorrt": "2.9.0", "tensorrt": "10.13"}, {})
    stem = key.stem()
    for part in ("mgid-rt", "abc", "tensorrt", "fp16", "b2", "96x64", "nvidia-geforce-rtx-4090"):
        assert part in stem


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_tensorrt_build_save_reload_parity(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    pytest.importorskip("torch_tensorrt")
    model = perturbed_model("mgid-rt")
    engine = registry.create_engine(model, "tensorrt", "cuda", "fp16", size=(64, 96), batch=2,
                                    engines_dir=tmp_path)
    assert engine.name == "tensorrt", engine.selection
    x = torch.rand(3, 3, 64, 96, device="cuda") * 2 - 1
    expected = model.cuda()(x)
    assert psnr(engine.infer(x), expected) >= 40.0
    again = registry.create_engine(model, "tensorrt", "cuda", "fp16", size=(64, 96), batch=2,
                                   engines_dir=tmp_path)  # reloads the saved .ep
    assert psnr(again.infer(x), expected) >= 40.0
    assert len(list(tmp_path.glob("*.ep"))) == 1
