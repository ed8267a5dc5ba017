"""ONNX Runtime on CUDA, against a fake onnxruntime-gpu on the CPU: the providers asked
for, and a session that silently dropped its GPU providers (ORT logs and runs on the CPU)."""

from __future__ import annotations

import logging
import sys
import types

import pytest
import torch

from rtderain.backends import onnxruntime_backend as ortb
from rtderain.backends import registry
from rtderain.backends.base import BackendUnavailable, BuildSpec, IdentityEngine
from rtderain.backends.onnxruntime_backend import OrtBackend, OrtSettings

from .conftest import perturbed_model

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def fake_ort(available, loads):
    """An ``onnxruntime`` module offering ``available`` providers whose sessions end up
    with only those of their requested providers that are in ``loads``."""
    created = []

    class Session:
        def __init__(self, path, sess_options=None, providers=()):
            self.requested = list(providers)
            names = [p[0] if isinstance(p, tuple) else p for p in providers]
            self.providers = [n for n in names if n in loads or n == CPU]
            created.append(self)

        def get_providers(self):
            return self.providers

        def get_inputs(self):
            return [types.SimpleNamespace(name="frames")]

    module = types.SimpleNamespace(
        __version__="1.99.0-fake",
        get_available_providers=lambda: list(available),
        SessionOptions=lambda: types.SimpleNamespace(),
        GraphOptimizationLevel=types.SimpleNamespace(ORT_ENABLE_ALL=99),
        InferenceSession=Session,
        created=created,
    )
    return module


@pytest.fixture
def gpu_machine(monkeypatch):
    """torch answers as a machine with one GPU; ORT's stream comes from a fake."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda d=None: "NVIDIA H200")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda d=None: (9, 0))
    monkeypatch.setattr(ortb, "_torch_stream", lambda d: types.SimpleNamespace(cuda_stream=1234))


def _install(monkeypatch, module):
    monkeypatch.setitem(sys.modules, "onnxruntime", module)


def _names(providers):
    return [p[0] if isinstance(p, tuple) else p for p in providers]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_provider_is_registered_after_tensorrt(monkeypatch, precision):
    _install(monkeypatch, fake_ort([TRT, CUDA, CPU], {TRT, CUDA}))
    providers = OrtBackend()._providers(torch.device("cuda:1"), precision)
    assert _names(providers) == [TRT, CUDA, CPU]
    assert providers[0][1] == {"device_id": 1, "trt_fp16_enable": precision == "fp16"}
    assert providers[1][1] == {"device_id": 1}


def test_fp16_without_the_tensorrt_provider_is_unavailable(monkeypatch):
    _install(monkeypatch, fake_ort([CUDA, CPU], {CUDA}))
    assert _names(OrtBackend()._providers(torch.device("cuda"), "fp32")) == [CUDA, CPU]
    with pytest.raises(BackendUnavailable, match="no execution provider for cuda fp16"):
        OrtBackend()._providers(torch.device("cuda"), "fp16")


SPEC32 = BuildSpec("mgid-rt", "abc", 1, 32, 32, "fp32", "cuda:0")
SPEC16 = BuildSpec("mgid-rt", "abc", 1, 32, 32, "fp16", "cuda:0")


def test_session_that_dropped_every_gpu_provider_is_unavailable(
    monkeypatch, gpu_machine, tmp_path
):
    module = fake_ort([TRT, CUDA, CPU], loads=set())  # e.g. a cuDNN that does not match
    _install(monkeypatch, module)
    with pytest.raises(BackendUnavailable, match=r"TensorrtExecutionProvider, "
                       r"CUDAExecutionProvider did not load \(the session has CPU"):
        OrtBackend().load(perturbed_model("mgid-rt"), SPEC32, tmp_path / "m.onnx")
    (session,) = module.created
    assert all(p[1]["user_compute_stream"] == "1234" for p in session.requested[:2])


def test_fp16_session_without_tensorrt_is_unavailable(monkeypatch, gpu_machine, tmp_path):
    _install(monkeypatch, fake_ort([TRT, CUDA, CPU], loads={CUDA}))
    with pytest.raises(BackendUnavailable, match="TensorrtExecutionProvider did not load"):
        OrtBackend().load(perturbed_model("mgid-rt"), SPEC16, tmp_path / "m.onnx")


def test_fp32_session_that_kept_cuda_runs_with_a_warning(monkeypatch, gpu_machine, tmp_path,
                                                         caplog):
    _install(monkeypatch, fake_ort([TRT, CUDA, CPU], loads={CUDA}))
    engine = OrtBackend().load(perturbed_model("mgid-rt"), SPEC32, tmp_path / "m.onnx")
    assert engine.description.startswith("onnxruntime CUDA fp32")
    assert "TensorrtExecutionProvider did not load; running on CUDAExecutionProvider" in (
        caplog.text)


def test_auto_falls_back_when_the_session_lands_on_the_cpu(monkeypatch, gpu_machine, tmp_path,
                                                           caplog):
    """create_engine must not return an ORT engine whose first bind_input('cuda') fails:
    the provider check raises during the build, and ``auto`` takes the next backend."""
    caplog.set_level(logging.INFO)
    _install(monkeypatch, fake_ort([CUDA, CPU], loads=set()))
    monkeypatch.setattr(OrtBackend, "build", lambda self, m, spec, path: path.write_bytes(b"x"))
    monkeypatch.setitem(registry.FALLBACK, "cuda", ("onnxruntime", "torch"))
    from rtderain.backends.torch_backend import TorchBackend

    monkeypatch.setattr(TorchBackend, "load", lambda self, m, spec, path: IdentityEngine("cpu"))
    engine = registry.create_engine(perturbed_model("mgid-rt"), "auto", "cuda", "fp32",
                                    size=(32, 32), engines_dir=tmp_path,
                                    settings={"onnxruntime": OrtSettings(cuda_providers=("cuda",))})
    assert engine.name == "identity"  # the next backend (torch, faked) runs
    assert "skipped: onnxruntime: CUDAExecutionProvider did not load" in engine.selection
    assert "rebuilding" not in caplog.text  # not mistaken for a bad file
    with pytest.raises(registry.RTDerainError, match="--engine onnxruntime cannot run"):
        registry.create_engine(perturbed_model("mgid-rt"), "onnxruntime", "cuda", "fp32",
                               size=(32, 32), engines_dir=tmp_path)


def test_broken_onnxruntime_install_is_unavailable(monkeypatch, tmp_path):
    (tmp_path / "onnxruntime.py").write_text('raise OSError("libcudnn.so.9: cannot open")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "onnxruntime", raising=False)
    with pytest.raises(BackendUnavailable, match="onnxruntime: cannot load .OSError: libcudnn"):
        OrtBackend().check(torch.device("cpu"), "fp32")
