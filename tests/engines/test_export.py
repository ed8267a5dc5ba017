"""Issue 3 acceptance: torch.export and ONNX exports of every model match eager output."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from rtderain.backends import create_engine
from rtderain.errors import RTDerainError
from rtderain.models.export import check_shape, export_onnx, export_program

from .conftest import (
    HEIGHT,
    WIDTH,
    perturbed_model,
    random_frames,
    scene_frames,
    shared_engines_dir,
)


def test_torch_export_matches_eager(model):
    x = torch.cat([random_frames(1), scene_frames(1)])
    program = export_program(model, tuple(x.shape))
    with torch.no_grad():
        expected = model(x)
        got = program.module()(x)
    assert (expected - x).abs().max() > 0.01, "model is still the identity"
    assert (got - expected).abs().max().item() <= 1e-5
    # The frame is the only input; the memory items travel inside as a buffer.
    assert len(program.graph_signature.user_inputs) == 1
    assert torch.equal(program.state_dict["memory.items"], model.memory.items)


def test_onnx_export_matches_eager(model, tmp_path_factory):
    """The ONNX file is the onnxruntime engine's cached artifact (exported once per model;
    the onnxruntime parity tests reuse it)."""
    ort = pytest.importorskip("onnxruntime")
    x = torch.cat([random_frames(1), scene_frames(1)])
    engine = create_engine(model, "onnxruntime", "cpu", "fp32", batch=2,
                           engines_dir=shared_engines_dir(tmp_path_factory))
    engine.prepare(HEIGHT, WIDTH, "float")
    (path,) = engine.artifacts()
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["frames"]
    items = model.memory.items.numpy()
    consts = [onnx.numpy_helper.to_array(t) for t in graph.initializer]
    assert any(c.shape == items.shape and np.array_equal(c, items) for c in consts), (
        "memory items are not a constant of the ONNX graph"
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"frames": x.numpy()})[0]
    with torch.no_grad():
        expected = model(x).numpy()
    assert np.abs(got - expected).max() <= 1e-4
    assert (engine.infer(x) - torch.from_numpy(expected)).abs().max().item() <= 1e-4


def test_u8_graph_export_matches_float_path(model):
    """The uint8 graph (``FrameGraph``) = the float graph quantised as ``from_tensor`` does."""
    from rtderain.media.tensors import from_tensor, to_tensor

    x = torch.cat([random_frames(1), scene_frames(1)])
    frames = from_tensor(x)
    program = export_program(model, tuple(x.shape), io="u8")
    assert len(program.graph_signature.user_inputs) == 1
    with torch.no_grad():
        got = program.module()(torch.from_numpy(frames)).numpy()
        expected = from_tensor(model(to_tensor(frames)))
    assert got.dtype == np.uint8 and got.shape == frames.shape
    assert (expected.astype(int) != frames).any(), "model is still the identity"
    assert np.abs(got.astype(int) - expected).max() <= 1


def test_export_onnx_writes_a_standalone_file(tmp_path):
    model = perturbed_model("mgid-rt")
    path = export_onnx(model, tmp_path / "m.onnx", (1, 3, 32, 48))
    onnx.checker.check_model(str(path))
    assert not list(tmp_path.glob("*.data"))  # no external weights file


@pytest.mark.parametrize(
    "shape", [(1, 3, HEIGHT + 4, WIDTH), (1, 1, HEIGHT, WIDTH), (0, 3, 96, 96)]
)
def test_bad_export_shape_is_a_clear_error(model, shape):
    with pytest.raises(RTDerainError, match="multiples of"):
        check_shape(model, shape)
