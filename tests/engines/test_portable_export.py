"""``rtderain export``: vs-mlrt ONNX and FFmpeg TorchScript files match our torch engine.

Frames are random (no shared data needed); the networks have a perturbed rain head (see
``conftest.perturbed_model``), so a wrong layer, padding, range or memory makes them differ.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from rtderain.backends import create_engine
from rtderain.cli import cli
from rtderain.errors import RTDerainError
from rtderain.media.tensors import run_padded
from rtderain.models.checkpoint import load_model, save_checkpoint, weights_digest
from rtderain.models.mgid import MGID
from rtderain.models.portable import export_torchscript, export_vsmlrt_onnx

from .conftest import perturbed_model

FP32_TOL = 2e-5  # max abs difference in [0, 1] units
SIZES = [(37, 29), (64, 48)]  # (width, height): odd and even, both off mgid-rt's multiple


def frames01(width: int, height: int, n: int = 1, seed: int = 3) -> torch.Tensor:
    """(n, 3, height, width) float32 uniform in [0, 1], planar RGB (the hosts' convention)."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((n, 3, height, width), generator=gen)


def reference01(model: MGID, x01: torch.Tensor) -> np.ndarray:
    """Our torch engine (fp32, CPU) on ``x01`` (pads and crops as ``rtderain run``), in [0, 1]."""
    engine = create_engine(model, "torch", "cpu", "fp32")
    with torch.inference_mode():
        y = run_padded(engine.infer, x01 * 2 - 1, engine.multiple)
    return ((y + 1) / 2).clamp(0, 1).numpy()


def ort_run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def export_args(out, *extra: str) -> list[str]:
    return ["export", "-o", str(out), *extra]


@pytest.fixture(scope="module")
def rt_model() -> MGID:
    return perturbed_model("mgid-rt", seed=1)


@pytest.fixture(scope="module")
def rt_weights(rt_model, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("weights") / "mgid-rt-perturbed.pt"
    save_checkpoint(rt_model, path)
    return str(path)


@pytest.fixture(scope="module")
def dynamic_onnx(rt_weights, tmp_path_factory):
    """One dynamic vs-mlrt ONNX export through the CLI (exported once: it is the slow part)."""
    out = tmp_path_factory.mktemp("onnx") / "mgid-rt.onnx"
    result = CliRunner().invoke(
        cli, export_args(out, "--weights", rt_weights, "--format", "onnx", "--dynamic")
    )
    assert result.exit_code == 0, result.output
    assert "any size" in result.output
    return out


@pytest.mark.parametrize("size", SIZES)
def test_onnx_dynamic_matches_torch_engine(dynamic_onnx, rt_model, size):
    width, height = size
    x = frames01(width, height, n=2 if width % 2 else 1)
    y = ort_run(dynamic_onnx, x.numpy())
    ref = reference01(rt_model, x)
    assert y.shape == ref.shape == tuple(x.shape)
    assert y.dtype == np.float32
    assert float(np.abs(y - ref).max()) <= FP32_TOL
    assert float(np.abs(ref - x.numpy()).max()) > 1e-2  # the network does change the frame


def test_onnx_file_is_self_contained_with_metadata(dynamic_onnx, rt_model):
    proto = onnx.load(str(dynamic_onnx))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["input"]  # the frame only: no memory input
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[1].dim_value == 3
    assert all(d.dim_param and not d.dim_value for d in (dims[0], dims[2], dims[3]))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["rtderain.model"] == "mgid-rt"
    assert props["rtderain.weights_digest"] == weights_digest(rt_model)
    assert props["rtderain.range"] == "0..1"
    assert props["rtderain.multiple"] == "16"
    items = rt_model.memory.items.numpy()
    consts = [onnx.numpy_helper.to_array(t) for t in proto.graph.initializer]
    assert any(c.shape == items.shape and np.allclose(c, items) for c in consts)


def test_onnx_static_size_refuses_another_size(tmp_path):
    model = load_model("mgid-rt")  # the shipped weights, through --model
    out = tmp_path / "static.onnx"
    result = CliRunner().invoke(cli, export_args(out, "--format", "onnx", "--size", "40x30"))
    assert result.exit_code == 0, result.output
    x = frames01(40, 30)
    assert float(np.abs(ort_run(out, x.numpy()) - reference01(model, x)).max()) <= FP32_TOL
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        ort_run(out, frames01(37, 29).numpy())
    props = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert props["rtderain.size"] == "40x30"


def test_onnx_fp16_native_range(rt_model, tmp_path):
    """--fp16 --range 11: float16 inside, float32 [-1, 1] in and out."""
    out = export_vsmlrt_onnx(rt_model, tmp_path / "h.onnx", size=(37, 29), range01=False, fp16=True)
    proto = onnx.load(str(out))
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    x = frames01(37, 29)
    y = ort_run(out, (x * 2 - 1).numpy())
    ref = reference01(rt_model, x) * 2 - 1
    assert y.min() >= -1 and y.max() <= 1
    assert float(np.abs(y - ref).max()) <= 5e-3


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("name", ["mgid-rt", "mgid"])
def test_torchscript_matches_torch_engine(name, tmp_path):
    model = perturbed_model(name, seed=2)
    out = export_torchscript(model, tmp_path / f"{name}.pt")
    extra = {"rtderain.json": ""}
    loaded = torch.jit.load(str(out), _extra_files=extra)
    assert json.loads(extra["rtderain.json"])["rtderain.weights_digest"] == weights_digest(model)
    sizes = SIZES if name == "mgid-rt" else SIZES[:1]
    for width, height in [*sizes, (5, 3)]:  # 5x3: smaller than the pad (replicate fallback)
        x = frames01(width, height)  # FFmpeg's torch backend feeds batch 1
        with torch.no_grad():
            y = loaded(x).numpy()
        assert y.shape == tuple(x.shape)
        assert float(np.abs(y - reference01(model, x)).max()) <= FP32_TOL, (width, height)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_torchscript_cli_and_overwrite(rt_weights, rt_model, tmp_path):
    out = tmp_path / "mgid-rt.pt"
    out.write_bytes(b"old")
    args = export_args(out, "--weights", rt_weights, "--format", "torchscript")
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0 and "--overwrite" in str(refused.exception)
    assert out.read_bytes() == b"old"
    result = CliRunner().invoke(cli, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    x = frames01(37, 29)
    with torch.no_grad():
        y = torch.jit.load(str(out))(x).numpy()
    assert float(np.abs(y - reference01(rt_model, x)).max()) <= FP32_TOL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mgid-rt.pt"]  # no temp file left


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--format", "onnx", "--size", "40by30"], "WIDTHxHEIGHT"),
        (["--format", "onnx", "--size", "40x30", "--dynamic"], "exclude"),
        (["--format", "onnx", "--model", "nope"], "unknown model"),
        (["--format", "torchscript", "--fp16"], "--fp16"),
    ],
)
def test_cli_bad_input_is_one_clean_error(extra, message, tmp_path):
    out = tmp_path / "x.onnx"
    result = CliRunner().invoke(cli, export_args(out, *extra))
    assert result.exit_code != 0
    assert isinstance(result.exception, RTDerainError)
    assert message in str(result.exception) and "\n" not in str(result.exception)
    assert list(tmp_path.iterdir()) == []


def test_cli_missing_folder_and_unknown_format(tmp_path):
    out = tmp_path / "missing" / "x.onnx"
    result = CliRunner().invoke(cli, export_args(out, "--format", "onnx"))
    assert isinstance(result.exception, RTDerainError) and "does not exist" in str(result.exception)
    result = CliRunner().invoke(cli, export_args(tmp_path / "x.bin", "--format", "tflite"))
    assert result.exit_code == 2 and "tflite" in result.output  # click's usage error
    assert list(tmp_path.iterdir()) == []
