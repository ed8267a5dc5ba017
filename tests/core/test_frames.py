"""Frame <-> tensor conversion and padding: exact round trips, [-1, 1] scale, odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rtderain.backends.base import IdentityEngine
from rtderain.media.batching import derain_frames
from rtderain.media.tensors import (
    crop,
    from_tensor,
    pad_frames,
    pad_to_multiple,
    run_padded,
    to_tensor,
)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_round_trip_is_exact(dtype):
    peak = np.iinfo(dtype).max
    rng = np.random.default_rng(0)
    frames = rng.integers(0, peak + 1, (2, 37, 53, 3)).astype(dtype)
    x = to_tensor(frames)
    assert x.shape == (2, 3, 37, 53) and x.dtype == torch.float32
    expected = torch.from_numpy(frames.astype(np.float64) / peak * 2 - 1).permute(0, 3, 1, 2)
    torch.testing.assert_close(x.double(), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(from_tensor(x, dtype), frames)
    np.testing.assert_array_equal(from_tensor(x.contiguous(), dtype), frames)


def test_quantisation_rounds_and_saturates():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.999, 1.0]).view(1, 1, 1, 5).expand(1, 3, 1, 5)
    out = from_tensor(x)[0, 0, :, 0]
    # (v + 1) * 127.5 rounded: 0, 0.1275 -> 0, 127.5 -> 128 (or 127), 254.87 -> 255, 255
    assert out[0] == 0 and out[1] == 0 and out[2] in (127, 128) and out[3] == 255
    assert out[4] == 255


@pytest.mark.parametrize(("h", "w", "m"), [(37, 53, 8), (5, 3, 16), (64, 64, 16)])
def test_pad_then_crop(h, w, m):
    x = torch.rand(1, 3, h, w)
    padded, size = pad_to_multiple(x, m)
    assert padded.shape[-2] % m == 0 and padded.shape[-1] % m == 0
    assert size == (h, w)
    torch.testing.assert_close(crop(padded, size), x)
    torch.testing.assert_close(run_padded(lambda t: t * 2, x, m), x * 2)


@pytest.mark.parametrize(("h", "w", "multiple"), [(37, 50, 8), (360, 640, 16), (3, 5, 8)])
def test_pad_frames_matches_tensor_padding(h, w, multiple):
    """The uint8 path's padding equals the float path's (reflect, edge not repeated;
    replicate when the frame is smaller than the padding)."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(2)]
    batch, size = pad_frames(frames, multiple)
    assert size == (h, w) and batch.flags.c_contiguous
    assert batch.shape[1] % multiple == 0 and batch.shape[2] % multiple == 0
    padded, _ = pad_to_multiple(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2), multiple)
    assert np.array_equal(batch, padded.permute(0, 2, 3, 1).numpy())


def test_derain_frames_takes_the_uint8_path_only_for_8_bit():
    calls = []

    class Spy(IdentityEngine):
        multiple = 8

        def infer(self, x):
            calls.append("float")
            return x

        def infer_frames(self, frames):
            calls.append(frames.shape)
            return frames

    eng = Spy()
    rgb = np.random.default_rng(1).integers(0, 256, (2, 37, 50, 3), dtype=np.uint8)
    out = derain_frames(eng, list(rgb))
    assert np.array_equal(out, rgb) and out.flags.c_contiguous
    assert calls == [(2, 40, 56, 3)]
    deep = (rgb.astype(np.uint16) * 257)
    assert np.array_equal(derain_frames(eng, deep), deep)
    assert calls[-1] == "float"
