"""The file pipeline keeps every frame, timestamp, stream, colour and size."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from rtderain.backends.base import IdentityEngine
from rtderain.backends.torch_backend import TorchEngine
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from rtderain.models import build_model
from tests.mediagen import probe, write_video


@pytest.mark.parametrize("batch", [1, 3])
def test_frames_timestamps_and_audio_kept(tmp_path, batch):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=17, audio=True)
    summary = derain_video(src, dst, IdentityEngine(), PipelineOptions(batch=batch))
    a, b = probe(src), probe(dst)
    assert summary.frames == a["frames"] == b["frames"] == 17
    assert b["pts_seconds"] == pytest.approx(a["pts_seconds"], abs=1e-6)
    assert b["packets"]["audio"] == a["packets"]["audio"] > 0
    assert b["streams"] == ["video", "audio"]
    assert not list(tmp_path.glob(".*partial*"))


def test_variable_frame_rate_stays_variable(tmp_path):
    src, dst = tmp_path / "vfr.mkv", tmp_path / "out.mkv"
    write_video(src, frames=15, durations=[20, 45, 90])
    derain_video(src, dst, IdentityEngine())
    a, b = probe(src), probe(dst)
    assert b["pts_seconds"] == pytest.approx(a["pts_seconds"], abs=1e-3)
    gaps = np.diff(b["pts_seconds"])
    assert gaps.max() - gaps.min() > 0.05  # still variable


def test_subtitles_copied_as_packets(tmp_path):
    src, dst = tmp_path / "sub.mkv", tmp_path / "out.mkv"
    write_video(src, frames=12, subtitles=True)
    derain_video(src, dst, IdentityEngine())
    assert probe(dst)["packets"]["subtitle"] == probe(src)["packets"]["subtitle"] == 3


@pytest.mark.parametrize(("width", "height"), [(97, 65), (64, 33)])
def test_odd_sizes_kept(tmp_path, width, height):
    src, dst = tmp_path / "odd.mkv", tmp_path / "out.mkv"
    write_video(src, frames=5, width=width, height=height, pix_fmt="yuv444p")
    model = build_model("mgid-rt")  # pad multiple 16: exercises pad + crop
    summary = derain_video(src, dst, TorchEngine(model), PipelineOptions(batch=2))
    info = probe(dst)
    assert info["size"] == (width, height)
    assert info["frames"] == summary.frames == 5


def test_odd_size_from_420_encodes_444(tmp_path):
    src, dst = tmp_path / "odd.mkv", tmp_path / "out.mkv"
    write_video(src, frames=4, width=65, height=49, codec="ffv1", pix_fmt="yuv420p")
    derain_video(src, dst, IdentityEngine())
    info = probe(dst)
    assert info["size"] == (65, 49)
    assert info["pix_fmt"] == "yuv444p"


def _smooth16(index, width, height):
    """A smooth 16-bit RGB gradient: 8-bit quantisation would show in a 10-bit output."""
    y, x = np.mgrid[0:height, 0:width]
    ramp = (x / (width - 1) * 0.5 + y / (height - 1) * 0.3 + 0.1) * 65535
    return np.stack([ramp, ramp * 0.9, ramp * 0.8], -1).astype(np.uint16)


def test_ten_bit_stays_ten_bit(tmp_path):
    src, dst = tmp_path / "deep.mkv", tmp_path / "out.mkv"
    write_video(src, frames=3, pix_fmt="yuv444p10le", codec="ffv1", frame_fn=_smooth16)
    derain_video(src, dst, IdentityEngine(), PipelineOptions(encode=EncodeOptions(codec="ffv1")))
    a, b = probe(src), probe(dst)
    assert b["pix_fmt"] == "yuv444p10le"
    ya = np.asarray(a["first"].planes[0]).view(np.uint16).astype(int)
    yb = np.asarray(b["first"].planes[0]).view(np.uint16).astype(int)
    # The 16-bit RGB path is exact here (0.0); an 8-bit intermediate is off by ~0.5 level.
    assert np.abs(ya - yb).mean() < 0.1


def _flat(value):
    def fn(index, width, height):
        return np.full((height, width, 3), value, np.uint8)

    return fn


@pytest.mark.parametrize("colorspace", [1, 6], ids=["bt709", "bt601"])
@pytest.mark.parametrize("color_range", [1, 2], ids=["limited", "full"])
@pytest.mark.parametrize("rgb", [(200, 60, 30), (20, 180, 240)])
def test_flat_colour_round_trip(tmp_path, colorspace, color_range, rgb):
    src, dst = tmp_path / "flat.mp4", tmp_path / "out.mp4"
    write_video(
        src,
        frames=3,
        colorspace=colorspace,
        color_range=color_range,
        frame_fn=_flat(rgb),
        width=64,
        height=48,
    )
    derain_video(src, dst, IdentityEngine(), PipelineOptions(encode=EncodeOptions(crf=0)))
    a, b = probe(src), probe(dst)
    assert (b["colorspace"], b["color_range"]) == (colorspace, color_range)
    for plane in range(3):
        pa = np.asarray(a["first"].planes[plane]).astype(int)
        pb = np.asarray(b["first"].planes[plane]).astype(int)
        assert abs(pa.mean() - pb.mean()) <= 2, f"plane {plane}"
    # Decoded with its own tags, the output shows the same RGB as the input.
    from rtderain.media.colour import ColourInfo, frame_to_rgb

    ra = frame_to_rgb(a["first"], ColourInfo.from_frame(a["first"])).astype(int)
    rb = frame_to_rgb(b["first"], ColourInfo.from_frame(b["first"])).astype(int)
    assert np.abs(ra.mean((0, 1)) - rb.mean((0, 1))).max() <= 2


def test_model_output_reaches_file(tmp_path):
    """A non-identity engine changes the frames (the pipeline writes what it infers)."""

    class Darken:
        name, description, multiple = "darken", "darken", 8
        device = torch.device("cpu")

        def infer(self, x):
            return x * 0.5 - 0.5

    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=4, frame_fn=_flat((200, 200, 200)))
    derain_video(src, dst, Darken(), PipelineOptions(encode=EncodeOptions(crf=0)))
    from rtderain.media.colour import ColourInfo, frame_to_rgb

    first = probe(dst)["first"]
    rgb = frame_to_rgb(first, ColourInfo.from_frame(first)).astype(int)
    # 200 -> x = 200/127.5 - 1; y = x/2 - 1/2 -> (y + 1) * 127.5 = 100
    assert abs(rgb.mean() - 100) <= 3


def test_time_base_kept_exactly(tmp_path):
    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    pts = write_video(src, frames=6, time_base=Fraction(1, 90000), durations=[3003])
    derain_video(src, dst, IdentityEngine())
    out = probe(dst)["pts_seconds"]
    assert out == pytest.approx([p / 90000 for p in pts], abs=1e-3)


def _decoded(path):
    from rtderain.media.reader import VideoReader

    reader = VideoReader(path, copy=())
    try:
        return [(f.pixels, f.pts) for f in reader.frames()]
    finally:
        reader.close()


@pytest.mark.parametrize("batch", [1, 3, 4])
def test_output_frame_k_is_derained_input_frame_k(tmp_path, batch):
    """A non-identity network through batches (10 frames: the last batch is partial):
    output frame k is the network's output for input frame k, at input frame k's pts."""
    from rtderain.media.batching import derain_frames
    from tests.engines.conftest import perturbed_model

    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_video(src, frames=10, codec="ffv1", pix_fmt="yuv444p", durations=[40, 33, 57])
    engine = TorchEngine(perturbed_model("mgid-rt", seed=3))
    derain_video(src, dst, engine, PipelineOptions(batch=batch, encode=EncodeOptions("ffv1")))
    inputs, outputs = _decoded(src), _decoded(dst)
    assert [p for _, p in outputs] == [p for _, p in inputs]
    expected = [derain_frames(engine, rgb[None])[0].astype(int) for rgb, _ in inputs]
    assert np.abs(expected[0] - inputs[0][0].astype(int)).mean() > 3  # not the identity
    for k, (rgb, _) in enumerate(outputs):
        errors = [np.abs(rgb.astype(int) - e).mean() for e in expected]
        assert errors[k] < 1.0, f"frame {k}: {errors[k]:.2f} levels from its own result"
        assert int(np.argmin(errors)) == k, f"frame {k} matches input {np.argmin(errors)}"
