"""uint8 frame transfers: same numbers as the CPU conversion; pinned memory on the GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtderain.backends.transfer import FrameTransfer
from rtderain.media.tensors import to_tensor


def _frames(n=3, h=17, w=23, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def test_cpu_upload_download_roundtrip_matches_media_conversion():
    t = FrameTransfer("cpu")
    for n in (3, 1, 4):  # staging buffer grows and is reused
        f = _frames(n, seed=n)
        x = t.upload(f)
        assert x.dtype == torch.float32 and tuple(x.shape) == (n, 3, 17, 23)
        assert torch.allclose(x, to_tensor(f), atol=1e-6)
        assert np.array_equal(t.download(x), f)


def test_upload_rejects_float_frames():
    with pytest.raises(ValueError, match="uint8"):
        FrameTransfer("cpu").upload(np.zeros((1, 4, 4, 3), np.float32))


@pytest.mark.gpu
def test_gpu_upload_uses_pinned_memory_and_round_trips():
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    t = FrameTransfer("cuda")
    f = _frames()
    x = t.upload(f)
    assert x.is_cuda and t._up is not None and t._up.is_pinned()
    assert np.array_equal(t.download(x), f)


def test_frame_engine_wrapper_matches_the_float_path():
    """CudaFrameEngine (what create_engine puts around every CUDA engine) gives the same
    frames as the float path; checked here on the CPU, where it skips pinning."""
    from rtderain.backends.torch_backend import TorchEngine
    from rtderain.backends.transfer import CudaFrameEngine
    from rtderain.media.batching import derain_frames

    from .conftest import perturbed_model

    inner = TorchEngine(perturbed_model("mgid-rt"))
    wrapped = CudaFrameEngine(inner)
    assert wrapped.multiple == inner.multiple and wrapped.description == inner.description
    f = _frames(2, 37, 50)
    expected = derain_frames(inner, list(f))
    assert (expected != f).any(), "model is still the identity"
    got = derain_frames(wrapped, list(f))
    assert np.abs(got.astype(int) - expected).max() <= 1
