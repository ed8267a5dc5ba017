"""Backend table, auto selection, fallback with reasons, static-batch wrapping."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

from rtderain.backends import registry
from rtderain.backends.base import BackendUnavailable, run_fixed_batch, runtime_errors
from rtderain.errors import RTDerainError

from .conftest import perturbed_model, random_frames


def test_every_table_entry_imports_and_names_itself():
    for name in registry.BACKENDS:
        assert registry.get_backend(name).name == name
    for order in registry.FALLBACK.values():
        assert order[-1] == "torch" and set(order) <= set(registry.BACKENDS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"engine": "tensorflow"}, "unknown engine 'tensorflow'"),
        ({"precision": "int4"}, "unknown precision 'int4'"),
        ({"device": "tpu:banana"}, "unknown device"),
        ({"batch": 0}, "batch must be >= 1"),
    ],
)
def test_bad_choices_are_clear_errors(kwargs, match):
    with pytest.raises(RTDerainError, match=match):
        registry.create_engine(perturbed_model("mgid-rt"), **kwargs)


def test_auto_picks_first_available_and_says_why(tmp_path, caplog):
    expected = None
    for name in registry.FALLBACK["cpu"]:
        try:
            registry.get_backend(name).check(torch.device("cpu"), "fp32")
        except BackendUnavailable:
            continue
        expected = name
        break
    with caplog.at_level(logging.INFO, logger="rtderain.backends.registry"):
        engine = registry.create_engine(
            perturbed_model("mgid-rt"), "auto", "cpu", "fp32", engines_dir=tmp_path
        )
    assert engine.name == expected
    assert engine.selection.startswith(f"{expected} fp32 on cpu (first available for cpu")
    assert any(engine.selection in r.getMessage() for r in caplog.records)


def test_auto_precision():
    assert registry.resolve_precision("auto", torch.device("cuda")) == "fp16"
    cpu = registry.resolve_precision("auto", torch.device("cpu"))
    assert cpu == ("bf16" if registry.cpu_has_native_bf16() else "fp32")


def test_forced_engine_that_cannot_run_is_an_error_not_a_fallback(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this test covers machines without CUDA")
    with pytest.raises(RTDerainError, match="--engine tensorrt cannot run: tensorrt: needs an"):
        registry.create_engine(
            perturbed_model("mgid-rt"), "tensorrt", "cpu", "fp32", engines_dir=tmp_path
        )


def test_auto_skips_unavailable_backend_with_reason(tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this test covers machines without CUDA")
    monkeypatch.setitem(registry.FALLBACK, "cpu", ("tensorrt", "torch"))
    engine = registry.create_engine(
        perturbed_model("mgid-rt"), "auto", "cpu", "fp32", engines_dir=tmp_path
    )
    assert engine.name == "torch"
    assert "tensorrt: needs an NVIDIA GPU" in engine.selection


class BrokenBackend:
    """A static backend whose build always fails."""

    name, suffix, static, frames_io = "broken", ".bin", True, False
    error: type[Exception] = RuntimeError

    def __init__(self, settings=None) -> None:
        pass

    def check(self, device, precision):
        pass

    def versions(self):
        return {"broken": "1"}

    def settings_dict(self):
        return {}

    def build(self, model, spec, path: Path):
        with runtime_errors("broken", "compilation"):  # the runtime's own call failing
            raise BrokenBackend.error("builder exploded")

    def load(self, model, spec, path):
        raise AssertionError("never loaded")


def test_failing_backend_falls_back_along_the_list(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(registry.BACKENDS, "broken", f"{__name__}:BrokenBackend")
    monkeypatch.setitem(registry.FALLBACK, "cpu", ("broken", "torch"))
    with caplog.at_level(logging.WARNING, logger="rtderain.backends.registry"):
        engine = registry.create_engine(
            perturbed_model("mgid-rt"), "auto", "cpu", "fp32", size=(32, 32), engines_dir=tmp_path
        )
    assert engine.name == "torch"
    assert "builder exploded" in engine.selection
    assert any("builder exploded" in r.getMessage() for r in caplog.records)


class FakeStatic(BrokenBackend):
    """A static backend that records the shapes it builds and runs."""

    name = "fake"
    built: list[tuple[int, ...]] = []

    def build(self, model, spec, path: Path):
        FakeStatic.built.append(spec.shape)
        path.write_bytes(b"ok")

    def load(self, model, spec, path):
        class Run:
            description = "fake"

            def infer(self, x):
                assert tuple(x.shape) == spec.shape, "static engine got another shape"
                return -x

        return Run()


def test_forced_engine_whose_build_fails_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "broken", f"{__name__}:BrokenBackend")
    with pytest.raises(RTDerainError, match="--engine broken cannot run: .*builder exploded"):
        registry.create_engine(
            perturbed_model("mgid-rt"), "broken", "cpu", "fp32", size=(32, 32),
            engines_dir=tmp_path,
        )


class BuggyBackend(BrokenBackend):
    """A backend with a bug of ours (not a runtime error): it must not be hidden."""

    name = "buggy"

    def build(self, model, spec, path: Path):
        raise TypeError("our own bug")


def test_a_bug_in_a_backend_is_not_a_fallback(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "buggy", f"{__name__}:BuggyBackend")
    monkeypatch.setitem(registry.FALLBACK, "cpu", ("buggy", "torch"))
    with pytest.raises(TypeError, match="our own bug"):
        registry.create_engine(
            perturbed_model("mgid-rt"), "auto", "cpu", "fp32", size=(32, 32), engines_dir=tmp_path
        )


def test_static_engine_builds_per_size_on_first_frame(tmp_path, monkeypatch):
    monkeypatch.setitem(registry.BACKENDS, "fake", f"{__name__}:FakeStatic")
    FakeStatic.built = []
    model = perturbed_model("mgid-rt")
    engine = registry.create_engine(model, "fake", "cpu", "fp32", batch=2, engines_dir=tmp_path)
    assert FakeStatic.built == []  # no size given: nothing built yet
    x = random_frames(3)
    assert torch.equal(engine.infer(x), -x)
    assert torch.equal(engine.infer(x[:, :, :32, :48]), -x[:, :, :32, :48])
    assert FakeStatic.built == [(2, 3, 96, 128), (2, 3, 32, 48)]
    assert len(engine.artifacts()) == 2 and all(p.is_file() for p in engine.artifacts())


def test_run_fixed_batch_pads_and_trims():
    seen = []

    def fn(chunk):
        seen.append(chunk.shape[0])
        return chunk * 2

    x = torch.arange(5 * 3 * 2 * 2, dtype=torch.float32).reshape(5, 3, 2, 2)
    assert torch.equal(run_fixed_batch(fn, x, 2), x * 2)
    assert seen == [2, 2, 2]
