"""uint8 frame transfers: same numbers as the CPU conversion; pinned memory on the GPU;
one host synchronisation per batch, with upload/compute/download ordered by events (a fake
of the CUDA calls counts them on the CPU)."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from rtderain.backends.base import IdentityEngine
from rtderain.backends.torch_backend import TorchEngine
from rtderain.backends.transfer import CudaFrameEngine, FrameTransfer
from rtderain.media.batching import derain_frames
from rtderain.media.tensors import from_tensor, to_tensor

from .conftest import perturbed_model


def _frames(n=3, h=17, w=23, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


class FakeOps:
    """The CUDA calls of FrameTransfer, run eagerly on the CPU, counted."""

    pinned = False

    def __init__(self):
        self.log: list[str] = []
        self.host_syncs = 0

    def stream(self):
        return _FakeStream(self, f"stream{sum(x.startswith('new') for x in self.log)}")

    def event(self):
        return _FakeEvent(self)

    def current(self):
        return _FakeStream(self, "compute")

    def use(self, stream):
        self.log.append(f"use {stream.name}")
        return contextlib.nullcontext()

    def record_stream(self, tensor, stream):
        self.log.append(f"record_stream {stream.name}")


class _FakeStream:
    def __init__(self, ops, name):
        self.ops, self.name = ops, name
        ops.log.append(f"new {name}")

    def wait_event(self, event):
        assert event.recorded, "waits on an event nobody recorded"
        self.ops.log.append(f"{self.name} waits")

    def synchronize(self):  # a whole-stream host sync: the old path did two per batch
        self.ops.host_syncs += 1


class _FakeEvent:
    def __init__(self, ops):
        self.ops, self.recorded = ops, False

    def record(self, stream):
        self.recorded = True

    def synchronize(self):
        assert self.recorded
        self.ops.host_syncs += 1


def test_cpu_round_trip_matches_media_conversion_any_size():
    t = FrameTransfer("cpu")
    for n, h, w in ((3, 17, 23), (1, 40, 9), (4, 5, 5)):  # buffers grow and are reused
        f = _frames(n, h, w, seed=n)
        seen = {}

        def run(x, seen=seen):
            seen["x"] = x
            return x

        out = t.submit(list(f), run, multiple=8).result()
        x = seen["x"]
        assert x.dtype == torch.float32 and x.shape[2] % 8 == 0 and x.shape[3] % 8 == 0
        assert torch.allclose(x[:, :, :h, :w], to_tensor(f), atol=1e-6)
        assert out.shape == f.shape and out.flags.c_contiguous
        assert np.array_equal(out, f)
        assert np.array_equal(out, from_tensor(to_tensor(f)))


def test_submit_rejects_float_frames():
    with pytest.raises(ValueError, match="uint8"):
        FrameTransfer("cpu").submit([np.zeros((4, 4, 3), np.float32)], lambda x: x)


def test_one_host_sync_per_batch_with_batches_overlapped():
    """Submit batch k+1 before collecting batch k (what the file pipeline does): one host
    sync per batch (its download event), none of the whole-stream syncs, and each stream
    waits on the event of the step before it."""
    ops = FakeOps()
    inner = TorchEngine(perturbed_model("mgid-rt"))
    engine = CudaFrameEngine(inner, ops=ops)
    batches = [_frames(2, 37, 50, seed=i) for i in range(5)]
    outs, pending = [], None
    for b in batches:
        queued = engine.submit_frames(list(b))
        if pending is not None:
            outs.append(pending.result())
        pending = queued
    outs.append(pending.result())
    assert ops.host_syncs == len(batches)  # 0.5 per frame at batch 2; was 2 per batch
    assert ops.log.count("compute waits") == len(batches)  # compute after its upload
    assert ops.log.count("stream1 waits") == len(batches)  # download after its compute
    for b, out in zip(batches, outs, strict=True):
        expected = derain_frames(inner, list(b))
        assert (expected != b).any(), "model is still the identity"
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_pipeline_keeps_one_batch_in_flight_and_syncs_once_per_batch(tmp_path):
    from rtderain.media.transcode import PipelineOptions, derain_video
    from tests.mediagen import probe, write_video

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=11)
    ops = FakeOps()
    summary = derain_video(src, dst, CudaFrameEngine(IdentityEngine(), ops=ops),
                           PipelineOptions(batch=2))
    assert summary.frames == probe(dst)["frames"] == 11
    batches = ops.log.count("compute waits")
    assert 6 <= batches <= 11  # batches of up to 2 as the decoder delivers them
    assert ops.host_syncs == batches  # one per batch, never per frame or per step


def test_an_abandoned_batch_does_not_block_the_next():
    t = FrameTransfer("cpu", ops=FakeOps())
    f = _frames(1)
    stale = t.submit(list(f), lambda x: x)
    t.submit(list(f), lambda x: x)  # two pending, e.g. a video stopped by an error
    fresh = t.submit(list(f), lambda x: x)  # reuses the first slot
    assert np.array_equal(fresh.result(), f)
    with pytest.raises(RuntimeError, match="a bug"):
        stale.result()


@pytest.mark.gpu
def test_gpu_round_trip_uses_pinned_memory():
    if not torch.cuda.is_available():
        pytest.skip("needs an NVIDIA GPU with CUDA")
    t = FrameTransfer("cuda")
    f = _frames()
    out = t.submit(list(f), lambda x: x, multiple=8).result()
    assert t.pinned and all(s.up.is_pinned() and s.down.is_pinned()
                            for s in t._slots if s.up is not None)
    assert np.array_equal(out, f)


def test_frame_engine_wrapper_matches_the_float_path():
    """CudaFrameEngine (what create_engine puts around every CUDA engine) gives the same
    frames as the float path; checked here on the CPU, where it skips pinning."""
    inner = TorchEngine(perturbed_model("mgid-rt"))
    wrapped = CudaFrameEngine(inner)
    assert wrapped.multiple == inner.multiple and wrapped.description == inner.description
    f = _frames(2, 37, 50)
    expected = derain_frames(inner, list(f))
    assert (expected != f).any(), "model is still the identity"
    got = derain_frames(wrapped, list(f))
    assert np.abs(got.astype(int) - expected).max() <= 1
