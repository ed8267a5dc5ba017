"""The YUV-native path of luma networks: a 4:2:0 frame is de-rained in its own planes.

The network reads and changes Y alone; U and V go from the decoder to the encoder
untouched, so through a lossless codec they come out bit-exact, and Y agrees with the
RGB path (``B = I - R`` with grey rain) to rounding wherever neither path clips.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from rtderain.backends import create_engine
from rtderain.backends.base import IdentityEngine
from rtderain.media.batching import derain_frames, derain_planes
from rtderain.media.orient import oriented
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from rtderain.models import build_model
from tests.mediagen import write_video

LOSSLESS = EncodeOptions(codec="ffv1", pix_fmt="yuv420p")


def _rainy_luma_model(seed: int = 0) -> torch.nn.Module:
    """mgid-lite with small random weights: it changes every frame (an untrained one is
    the identity), deterministically."""
    model = build_model("mgid-lite")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return model.eval()


def _textured(index: int, width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(index)
    base = np.linspace(30, 220, width)[None, :, None] * np.ones((height, 1, 3))
    base[..., 0] *= 0.7  # some colour, so chroma is not flat
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _planes(path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


def _planes_engine(model, engine="torch"):
    return create_engine(model, engine=engine, device="cpu", precision="fp32")


def test_pipeline_keeps_chroma_bit_exact_and_changes_luma(tmp_path):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_video(src, frames=5, width=80, height=56, codec="ffv1", frame_fn=_textured)
    engine = _planes_engine(_rainy_luma_model())
    summary = derain_video(src, out, engine, PipelineOptions(batch=2, encode=LOSSLESS))
    assert summary.planes and "YUV-native" in summary.line()
    a, b = _planes(src), _planes(out)
    assert len(a) == len(b) == 5
    h = 56
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x[h:], y[h:]), "chroma changed"
        assert np.abs(x[:h].astype(int) - y[:h]).mean() > 0.5, "luma unchanged"


@pytest.mark.parametrize("full_range", [False, True])
def test_planes_agree_with_the_rgb_path_where_nothing_clips(full_range):
    model = _rainy_luma_model(1)
    engine = _planes_engine(model)
    rng = np.random.default_rng(3)
    black, span = (0.0, 255.0) if full_range else (16.0, 219.0)
    y = rng.integers(int(black) + 40, int(black + span) - 40, (2, 48, 64)).astype(np.uint8)
    i420 = [np.concatenate([p, np.full((24, 64), 128, np.uint8)]) for p in y]
    got = np.stack(derain_planes(engine, [f.copy() for f in i420], full_range))[:, :48]
    grey = np.clip(np.rint((y - black) * 255.0 / span), 0, 255).astype(np.uint8)
    rgb = derain_frames(engine, np.repeat(grey[..., None], 3, -1))[..., 1].astype(float)
    inside = (rgb > 0) & (rgb < 255)
    assert inside.mean() > 0.9
    assert np.abs(got - y.astype(int)).mean() > 0.5, "the network left Y unchanged"
    back = black + rgb * span / 255.0
    assert np.abs(back - got)[inside].max() <= 1.5


@pytest.mark.parametrize("name", ["openvino", "onnxruntime"])
def test_luma_graphs_match_torch(name, tmp_path):
    model = _rainy_luma_model(2)
    ref = _planes_engine(model)
    other = create_engine(model, engine=name, device="cpu", precision="fp32", size=(48, 64),
                          batch=2, engines_dir=tmp_path)
    assert other.luma_planes
    y = np.random.default_rng(4).integers(16, 236, (3, 48, 64)).astype(np.uint8)
    for full in (False, True):
        want, got = ref.infer_planes(y, full), other.infer_planes(y, full)
        assert np.abs(want.astype(int) - got).max() <= 1
    keys = {p.name.split("_")[3] for p in tmp_path.glob("*.json")}
    assert {"fp32-luma-tv", "fp32-luma-pc"} <= keys, keys  # one artifact per range


@pytest.mark.parametrize(("colorspace", "color_range"), [(6, 1), (1, 1), (6, 2), (1, 2)])
def test_flat_clips_keep_their_levels(tmp_path, colorspace, color_range):
    """BT.601 / BT.709, limited / full: an untrained luma network (the identity) through
    the YUV-native path keeps every level of Y, U and V (exactly: nothing is converted)."""
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"

    def flat(i, w, h):
        return np.full((h, w, 3), (40 + 50 * i, 120, 200 - 30 * i), np.uint8)

    write_video(src, frames=3, width=64, height=48, codec="ffv1", colorspace=colorspace,
                color_range=color_range, frame_fn=flat)
    summary = derain_video(src, out, _planes_engine(build_model("mgid-lite")),
                           PipelineOptions(encode=LOSSLESS))
    assert summary.planes
    for x, y in zip(_planes(src), _planes(out), strict=True):
        assert np.abs(x.astype(int) - y).max() <= 2


def test_odd_size_source_takes_the_rgb_path(tmp_path):
    src, out = tmp_path / "odd.mkv", tmp_path / "out.mkv"
    write_video(src, frames=4, width=63, height=47, codec="ffv1", pix_fmt="yuv444p")
    summary = derain_video(src, out, _planes_engine(_rainy_luma_model()),
                           PipelineOptions(encode=EncodeOptions(codec="ffv1")))
    assert not summary.planes and summary.frames == 4


def test_frame_size_not_a_multiple_is_padded_and_cropped(tmp_path):
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_video(src, frames=3, width=90, height=50, codec="ffv1", frame_fn=_textured)
    summary = derain_video(src, out, _planes_engine(_rainy_luma_model()),
                           PipelineOptions(encode=LOSSLESS))
    assert summary.planes
    frames = _planes(out)
    assert len(frames) == 3 and frames[0].shape == (75, 90)


def test_rgb_models_and_planes_off_keep_the_rgb_path(tmp_path):
    src = tmp_path / "in.mkv"
    write_video(src, frames=3, width=64, height=48, codec="ffv1", frame_fn=_textured)
    rgb_model = _planes_engine(build_model("mgid-rt"))
    assert not derain_video(src, tmp_path / "a.mkv", rgb_model,
                            PipelineOptions(encode=LOSSLESS)).planes
    assert not derain_video(src, tmp_path / "b.mkv", IdentityEngine(),
                            PipelineOptions(encode=LOSSLESS)).planes
    off = PipelineOptions(encode=LOSSLESS, planes=False)
    assert not derain_video(src, tmp_path / "c.mkv", _planes_engine(_rainy_luma_model()),
                            off).planes


def test_oriented_engine_turns_planes_where_rain_leans():
    model = _rainy_luma_model(5)
    plain = _planes_engine(model)
    turned = oriented(plain, None, 30.0)
    assert turned.luma_planes
    y = np.random.default_rng(6).integers(16, 236, (1, 64, 96)).astype(np.uint8)
    a = turned.infer_planes(y, False)
    b = plain.infer_planes(y, False)
    assert a.shape == y.shape and a.dtype == np.uint8
    assert not np.array_equal(a, b), "a fixed 30-degree turn ran unturned"
    assert np.array_equal(oriented(plain, None, 0.0).infer_planes(y, False), b)


@pytest.mark.parametrize("temporal", ["off", "causal"])
def test_live_recording_of_a_luma_network_keeps_the_planes(tmp_path, temporal):
    """``stream --record`` with mgid-lite: Y de-rained (and fused by the causal stage) in
    the planes, the recording takes them as they are (chroma bit-exact through a lossless
    codec)."""
    from rtderain.live.session import LiveOptions, run_live
    from rtderain.live.sinks import RecordingSink
    from rtderain.temporal import TemporalSettings

    src, rec = tmp_path / "in.mkv", tmp_path / "rec.mkv"
    write_video(src, frames=6, width=80, height=56, codec="ffv1", frame_fn=_textured)
    sink = RecordingSink(rec, EncodeOptions(codec="ffv1", pix_fmt="yuv420p", crf=None,
                                            preset=None))
    options = LiveOptions(temporal=TemporalSettings(temporal))
    summary = run_live(str(src), _planes_engine(_rainy_luma_model()), [sink], options)
    assert summary.processed == 6
    a, b = _planes(src), _planes(rec)
    assert len(b) == 6
    assert all(np.array_equal(x[56:], y[56:]) for x, y in zip(a, b, strict=True))
    assert all(np.abs(x[:56].astype(int) - y[:56]).mean() > 0.5 for x, y in zip(a, b,
                                                                                  strict=True))


def test_planar_batch_for_an_engine_without_luma_graphs_goes_through_rgb():
    """A frame size whose engine cannot take planes (tiles, say) keeps its I420 layout
    through an RGB round trip: the identity keeps the picture within rounding."""
    from types import SimpleNamespace

    from rtderain.media.colour import ColourInfo
    from rtderain.media.reader import DecodedFrame
    from rtderain.media.transcode import _submit

    rng = np.random.default_rng(8)
    y = rng.integers(40, 200, (48, 64), np.uint8)
    uv = np.full((24, 64), 128, np.uint8)
    frame = DecodedFrame(0, np.concatenate([y, uv]), 0, "i420")
    reader = SimpleNamespace(colour=ColourInfo(colorspace=1, color_range=1))
    (out,) = _submit(IdentityEngine(), [frame], reader)()
    assert out.shape == (72, 64) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - frame.pixels).max() <= 2


def _streaks(rng: np.random.Generator, h: int, w: int, count: int) -> np.ndarray:
    """Sparse bright vertical streaks, (H, W) levels added by rain."""
    layer = np.zeros((h, w))
    for _ in range(count):
        x, y0 = int(rng.integers(0, w)), int(rng.integers(0, h - 8))
        layer[y0:y0 + int(rng.integers(4, 9)), x] = rng.uniform(40, 80)
    return layer


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_temporal_stage_fuses_a_luma_plane_as_the_grey_frame_it_is(mode):
    """The stage on (H, W) Y planes gives what it gives on the same grey frames as RGB
    (R = G = B = Y: their luma is Y, and every channel fuses alike)."""
    from rtderain.temporal import TemporalStage

    rng = np.random.default_rng(3)
    h, w = 192, 256
    back = 60 + 120 * rng.random((h // 8, w // 8))
    back = np.kron(back, np.ones((8, 8)))
    grey_out, plane_out = [], []
    rgb_stage, plane_stage = TemporalStage(mode), TemporalStage(mode)
    for i in range(10):
        rain = _streaks(rng, h, w, 240)
        rainy = np.clip(np.rint(back + rain), 0, 255).astype(np.uint8)
        left = np.clip(np.rint(back + 0.5 * rain), 0, 255).astype(np.uint8)
        grey = [np.repeat(a[..., None], 3, axis=2) for a in (rainy, left)]
        grey_out += [f for f, _ in rgb_stage.push(*grey, i)]
        plane_out += [f for f, _ in plane_stage.push(rainy, left, i)]
    grey_out += [f for f, _ in rgb_stage.flush()]
    plane_out += [f for f, _ in plane_stage.flush()]
    assert len(grey_out) == len(plane_out) == 10
    for g, p in zip(grey_out, plane_out, strict=True):
        assert p.shape == (h, w) and p.dtype == np.uint8
        assert np.array_equal(g[..., 0], g[..., 2])
        assert np.abs(g[..., 0].astype(int) - p).max() <= 1
    clean = np.rint(back)
    fused = np.mean([np.mean((p - clean) ** 2) for p in plane_out])
    assert fused < np.mean((left - clean) ** 2) / 2, "the stage fused nothing"


def _rainy_still(seed: int, h: int, w: int):
    """A still, smooth, coloured scene (its phase correlation reads still) and a frame_fn
    of it with fresh grey rain in every frame."""
    import cv2

    noise = np.random.default_rng(seed).uniform(0, 1, (h // 8 + 1, w // 8 + 1, 3))
    back = 40 + 140 * np.clip(cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC), 0, 1)

    def frame(index: int, width: int, height: int) -> np.ndarray:
        rain = _streaks(np.random.default_rng(seed + index), height, width, 240)
        return np.clip(np.rint(back + rain[..., None]), 0, 255).astype(np.uint8)

    return back, frame


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_temporal_stage_runs_in_the_planes(tmp_path, mode):
    """A luma network with the temporal stage keeps the YUV-native path: the stage fuses
    Y, chroma comes out bit-exact, the rain the network left is removed as on the RGB
    path, and every frame is written once."""
    from rtderain.temporal import TemporalSettings

    h, w = 192, 256
    back, frame_fn = _rainy_still(11, h, w)
    src, clean = tmp_path / "in.mkv", tmp_path / "clean.mkv"
    write_video(src, frames=10, width=w, height=h, codec="ffv1", frame_fn=frame_fn)
    write_video(clean, frames=1, width=w, height=h, codec="ffv1",
                frame_fn=lambda i, wd, ht: back.astype(np.uint8))
    identity = _planes_engine(build_model("mgid-lite").eval())  # untrained: R = 0
    options = PipelineOptions(batch=3, encode=LOSSLESS, temporal=TemporalSettings(mode))
    planar = derain_video(src, tmp_path / "yuv.mkv", identity, options)
    assert planar.planes and planar.frames == 10
    rgb = derain_video(src, tmp_path / "rgb.mkv", identity,
                       PipelineOptions(batch=3, encode=LOSSLESS, planes=False,
                                       temporal=TemporalSettings(mode)))
    assert not rgb.planes
    a, b, c = _planes(src), _planes(tmp_path / "yuv.mkv"), _planes(tmp_path / "rgb.mkv")
    ref = _planes(clean)[0][:h].astype(float)
    assert len(b) == len(c) == 10
    assert all(np.array_equal(x[h:], y[h:]) for x, y in zip(a, b, strict=True))
    err = [np.mean([np.mean((f[:h] - ref) ** 2) for f in clip]) for clip in (a, b, c)]
    assert err[1] < err[0] / 3, err  # the stage removed most of the rain, in Y alone
    assert err[1] < err[2] * 1.25 + 1.0, err  # and about as much as it does through RGB


def test_live_causal_stage_fuses_in_the_planes(tmp_path):
    """Live with a luma network: the causal stage removes, in the Y plane, the rain the
    network left (an untrained, identity mgid-lite leaves all of it) on a still camera."""
    from rtderain.live.session import LiveOptions, run_live
    from rtderain.live.sinks import RecordingSink
    from rtderain.temporal import TemporalSettings

    h, w = 192, 256
    back, frame_fn = _rainy_still(21, h, w)
    src, clean, rec = tmp_path / "in.mkv", tmp_path / "clean.mkv", tmp_path / "rec.mkv"
    write_video(src, frames=10, width=w, height=h, codec="ffv1", frame_fn=frame_fn)
    write_video(clean, frames=1, width=w, height=h, codec="ffv1",
                frame_fn=lambda i, wd, ht: back.astype(np.uint8))
    sink = RecordingSink(rec, EncodeOptions(codec="ffv1", pix_fmt="yuv420p", crf=None,
                                            preset=None))
    identity = _planes_engine(build_model("mgid-lite").eval())
    summary = run_live(str(src), identity, [sink],
                       LiveOptions(temporal=TemporalSettings("causal")))
    assert summary.processed == 10
    a, b = _planes(src), _planes(rec)
    ref = _planes(clean)[0][:h].astype(float)
    assert all(np.array_equal(x[h:], y[h:]) for x, y in zip(a, b, strict=True))
    err_in = np.mean([np.mean((f[:h] - ref) ** 2) for f in a[4:]])
    err_out = np.mean([np.mean((f[:h] - ref) ** 2) for f in b[4:]])
    assert err_out < err_in / 3, (err_out, err_in)
