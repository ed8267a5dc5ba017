"""Every CPU backend of the registry against eager fp32 PyTorch, for every registered model.

fp32: max abs error <= 1e-4 on the [-1, 1] scale; bf16/fp16: PSNR >= 40 dB against fp32.
On random frames, on a rainy scene made here (both always run) and on crops of a real
rainy frame (skipped without the shared data), with a perturbed rain head.
The uint8 graphs (``io="u8"``, what 8-bit video runs) against eager fp32 quantised the
pipeline's way: fp32 within one level, bf16/fp16 PSNR >= 40 dB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtderain.backends import BackendUnavailable, create_engine, get_backend
from rtderain.backends.registry import FALLBACK, PRECISIONS
from rtderain.media.batching import derain_frames
from rtderain.media.tensors import from_tensor

from .conftest import FRAME_KINDS, frames_of, psnr, random_frames, shared_engines_dir

CPU = torch.device("cpu")
CPU_BACKENDS = list(FALLBACK["cpu"])  # the registry's CPU list: a new backend is tested
FLOAT_PRECISIONS = [p for p in PRECISIONS if p != "int8"]  # int8: tests/engines/test_int8.py
REDUCED = [(b, p) for b in CPU_BACKENDS for p in FLOAT_PRECISIONS if p != "fp32"]
U8_CASES = [(b, p) for b in CPU_BACKENDS if get_backend(b).frames_io for p in FLOAT_PRECISIONS]


def _engine(model, name, precision, tmp_path_factory):
    try:
        get_backend(name).check(CPU, precision)
    except BackendUnavailable as exc:
        pytest.skip(str(exc))
    engine = create_engine(  # no size: each test builds only the graph it runs
        model, name, "cpu", precision, batch=2,
        engines_dir=shared_engines_dir(tmp_path_factory),
    )
    assert engine.selection.startswith(f"{name} {precision}"), engine.selection
    return engine


@pytest.mark.parametrize("kind", FRAME_KINDS)
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_fp32_parity(model, name, kind, tmp_path_factory):
    x = frames_of(kind)
    engine = _engine(model, name, "fp32", tmp_path_factory)
    with torch.no_grad():
        expected = model.float()(x)
    assert (expected - x).abs().max() > 0.01, "model is still the identity"
    got = engine.infer(x)
    assert got.shape == x.shape and got.dtype == torch.float32
    err = (got - expected).abs().max().item()
    assert err <= 1e-4, f"{name} fp32 on {kind} frames: max abs error {err:.2e}"


@pytest.mark.parametrize("kind", FRAME_KINDS)
@pytest.mark.parametrize(("name", "precision"), REDUCED)
def test_reduced_precision_psnr(model, name, precision, kind, tmp_path_factory):
    x = frames_of(kind)
    engine = _engine(model, name, precision, tmp_path_factory)
    with torch.no_grad():
        expected = model.float()(x)
    got = engine.infer(x)
    value = psnr(got, expected)
    assert value >= 40.0, f"{name} {precision} on {kind} frames: PSNR {value:.1f} dB"


@pytest.mark.parametrize("kind", FRAME_KINDS)
@pytest.mark.parametrize(("name", "precision"), U8_CASES)
def test_u8_graph_parity(model, name, precision, kind, tmp_path_factory):
    """8-bit frames through the engine's uint8 graph (normalisation inside it) against
    eager fp32 followed by the float path's quantisation (``from_tensor``)."""
    x = frames_of(kind)
    engine = _engine(model, name, precision, tmp_path_factory)
    assert engine.frames_io
    frames = from_tensor(x)  # (2, H, W, 3) uint8
    with torch.no_grad():
        expected = from_tensor(model.float()(torch.from_numpy(frames).permute(
            0, 3, 1, 2).float() / 127.5 - 1)).astype(int)
    got = derain_frames(engine, frames)
    assert got.dtype == frames.dtype and got.shape == frames.shape
    assert [k[2] for k in engine._engines] == ["u8"], "the float graph was used"
    diff = abs(got.astype(int) - expected)
    if precision == "fp32":
        assert diff.max() <= 1, f"{name} u8 on {kind} frames: max diff {diff.max()}"
    else:
        mse = float((diff.astype(float) ** 2).mean())
        value = float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
        assert value >= 40.0, f"{name} {precision} u8 on {kind}: PSNR {value:.1f} dB"


def test_odd_batch_through_static_engine(tmp_path_factory):
    """A static batch-2 engine takes 3 frames (pads the last chunk, trims the output)."""
    from .conftest import perturbed_model

    model = perturbed_model("mgid-rt")
    engine = _engine(model, "onnxruntime", "fp32", tmp_path_factory)
    x = random_frames(3, seed=7)
    with torch.no_grad():
        expected = model(x)
    got = engine.infer(x)
    assert got.shape == x.shape
    assert (got - expected).abs().max().item() <= 1e-4


@pytest.mark.slow
def test_torch_compile_parity(tmp_path_factory):
    """torch.compile (Inductor) matches eager; slow: compiles on first call."""
    from rtderain.backends.torch_backend import TorchSettings

    from .conftest import perturbed_model

    model = perturbed_model("mgid-rt")
    engine = create_engine(
        model, "torch", "cpu", "fp32", settings={"torch": TorchSettings(compile=True)}
    )
    assert "compiled" in engine.description
    x = random_frames(2)
    with torch.no_grad():
        expected = model(x)
    assert (engine.infer(x) - expected).abs().max().item() <= 1e-4
