"""The CUDA engines: eager torch's CUDA set-up (checked on the CPU where it can be), and,
on a GPU, parity against CPU fp32 through the uint8 path 8-bit video runs.

GPU "fp32" is TF32 in cuDNN convolutions unless switched off: the fp32 parity tests switch
TF32 off (fixture ``no_tf32``) and hold the CPU bound; fp16 is held to PSNR >= 40 dB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtderain.backends import create_engine
from rtderain.backends.torch_backend import TorchEngine
from rtderain.errors import RTDerainError
from rtderain.media.batching import derain_frames

from .conftest import perturbed_model, psnr, scene_frames

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs an NVIDIA GPU "
                                "with CUDA")


def _u8(x: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) [-1, 1] -> (N, H, W, 3) uint8, as the pipeline quantises."""
    return ((x + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def test_output_keeps_the_convolution_layout():
    """No NCHW copy after the network: the uint8 download wants NHWC next."""
    engine = TorchEngine(perturbed_model("mgid-rt"))
    x = torch.rand(2, 64, 96, 3).permute(0, 3, 1, 2) * 2 - 1  # what the upload gives
    y = engine.infer(x)
    assert y.dtype == torch.float32 and y.shape == (2, 3, 64, 96)
    assert y.is_contiguous(memory_format=torch.channels_last)


def test_cpu_bf16_keeps_fp32_weights_and_the_callers_model():
    model = perturbed_model("mgid-rt")
    engine = TorchEngine(model, "cpu", "bf16")
    assert next(engine.model.parameters()).dtype == torch.float32  # autocast on the CPU
    assert next(model.parameters()).dtype == torch.float32


@pytest.fixture
def no_tf32():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp16_casts_the_weights_once_and_tunes_cudnn():
    model = perturbed_model("mgid-rt")
    engine = TorchEngine(model, "cuda", "fp16")
    assert next(engine.model.parameters()).dtype == torch.float16
    assert engine.model.memory.items.dtype == torch.float16
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is a copy
    assert torch.backends.cudnn.benchmark


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_uint8_path_matches_cpu_fp32(precision, no_tf32, tmp_path):
    """What 8-bit video runs on CUDA (create_engine's CudaFrameEngine: pinned uint8 upload,
    normalise, network, quantise, download) against eager fp32 on the CPU."""
    model = perturbed_model("mgid-rt")
    x = scene_frames(3)  # 3 frames: a partial last batch for static engines
    with torch.no_grad():
        expected = model.float()(x)
    frames = _u8(x)
    want = _u8(expected)
    for name in ("torch", "onnxruntime", "tensorrt"):
        try:
            engine = create_engine(perturbed_model("mgid-rt"), name, "cuda", precision,
                                   size=x.shape[2:], batch=2, engines_dir=tmp_path)
        except RTDerainError as exc:  # a runtime not installed here: the next one
            if "cannot run" not in str(exc):
                raise
            continue
        got = derain_frames(engine, list(frames))
        assert got.shape == want.shape and got.dtype == np.uint8
        if precision == "fp32":
            diff = np.abs(got.astype(int) - want).max()
            assert diff <= 1, f"{name} fp32 (TF32 off): {diff} levels"
        else:
            score = psnr(torch.from_numpy(got).float() / 127.5 - 1,
                         torch.from_numpy(want).float() / 127.5 - 1)
            assert score >= 40.0, f"{name} fp16: {score:.1f} dB"
