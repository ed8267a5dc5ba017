"""What describes the picture survives de-raining: its orientation (display matrix)."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions


def _rotated_source(path, degrees: int, hflip: bool = False, frames: int = 3) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.set_display_rotation(degrees, hflip=hflip)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 30 * i, np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def _rotation(path) -> tuple[int, list[int]]:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        matrix = [
            np.frombuffer(bytes(memoryview(d)), "<i4").tolist()
            for d in frame.side_data.keys()
            if d.type == av.sidedata.sidedata.Type.DISPLAYMATRIX
        ]
        return frame.rotation, matrix


@pytest.mark.parametrize(("degrees", "hflip", "ext"),
                         [(90, False, ".mp4"), (-90, False, ".mov"), (180, True, ".mp4")])
def test_display_matrix_is_kept(tmp_path, degrees, hflip, ext):
    src, out = tmp_path / f"portrait{ext}", tmp_path / f"clean{ext}"
    _rotated_source(src, degrees, hflip)
    before = _rotation(src)
    assert before[1]  # the source has a display matrix
    opts = PipelineOptions(encode=EncodeOptions(codec="libx264", crf=30, preset="ultrafast"))
    derain_video(src, out, IdentityEngine(), opts)
    assert _rotation(out) == before


def test_unrotated_source_gets_no_display_matrix(tmp_path):
    src, out = tmp_path / "plain.mp4", tmp_path / "clean.mp4"
    _rotated_source(src, 0)
    opts = PipelineOptions(encode=EncodeOptions(codec="libx264", crf=30, preset="ultrafast"))
    derain_video(src, out, IdentityEngine(), opts)
    assert _rotation(out)[0] == 0


def _interlaced_source(path, field_order: int, frames: int = 4) -> None:
    order = "tff=1" if field_order == 2 else "bff=1"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25,
                         options={"flags": "+ildct+ilme", "x264-params": order})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        s.codec_context.field_order = field_order
        rng = np.random.default_rng(0)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), np.uint8), "rgb24")
            f = f.reformat(format="yuv420p")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def _scan(path) -> tuple[int, bool]:
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frame = next(c.decode(v))
        return int(v.codec_context.field_order), bool(frame.interlaced_frame)


@pytest.mark.parametrize(("field_order", "codec", "ext"),
                         [(2, "libx264", ".mkv"), (3, "libx264", ".mp4"), (2, "ffv1", ".mkv")])
def test_interlaced_source_stays_interlaced(tmp_path, field_order, codec, ext):
    src, out = tmp_path / f"tv{ext}", tmp_path / f"clean{ext}"
    _interlaced_source(src, field_order)
    assert _scan(src) == (field_order, True)
    opts = PipelineOptions(encode=EncodeOptions(codec=codec, crf=None if codec == "ffv1" else 30))
    derain_video(src, out, IdentityEngine(), opts)
    order, interlaced = _scan(out)
    assert order == field_order
    if codec == "libx264":  # coded as fields too, not only tagged
        assert interlaced


HDR = ("master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)"
       "L(10000000,50):max-cll=1000,400:hdr10=1")


def _hdr_source(path, frames: int = 3) -> None:
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx265", rate=25, options={"x265-params": f"log-level=error:{HDR}"})
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p10le"
        cc = s.codec_context
        cc.color_primaries, cc.color_trc, cc.colorspace = 9, 16, 9  # BT.2020, PQ
        rng = np.random.default_rng(0)
        for i in range(frames):
            rgb = rng.integers(0, 65535, (48, 64, 3), np.uint16)
            f = av.VideoFrame.from_ndarray(rgb, "rgb48le").reformat(format="yuv420p10le")
            f.pts, f.time_base = i, Fraction(1, 25)
            c.mux(s.encode(f))
        c.mux(s.encode(None))


def _hdr(path) -> dict[str, list[int]]:
    with av.open(str(path)) as c:
        frame = next(c.decode(video=0))
        return {
            str(d.type): np.frombuffer(bytes(memoryview(d)), "<i4").tolist()
            for d in frame.side_data.keys()
            if "MASTERING" in str(d.type) or "CONTENT_LIGHT" in str(d.type)
        }


def _values(side_data: dict[str, list[int]]) -> dict[str, list[float]]:
    """Mastering display as 10 ratios (+ 2 flags), content light as it is."""
    out = {}
    for key, v in side_data.items():
        if "MASTERING" in key:
            out[key] = [v[i] / v[i + 1] for i in range(0, 20, 2)] + v[20:]
        else:
            out[key] = [float(x) for x in v]
    return out


@pytest.mark.parametrize("codec", ["hevc", "av1"])
def test_hdr10_metadata_is_kept(tmp_path, codec):
    src, out = tmp_path / "hdr.mkv", tmp_path / "clean.mkv"
    _hdr_source(src)
    before = _values(_hdr(src))
    assert len(before) == 2
    extra = {"x265-params": "log-level=error"} if codec == "hevc" else {"preset": "12"}
    opts = PipelineOptions(encode=EncodeOptions(codec=codec, crf=40, preset=None, options=extra))
    derain_video(src, out, IdentityEngine(), opts)
    after = _values(_hdr(out))
    assert after.keys() == before.keys()
    for key in before:  # AV1 stores chromaticities in 1/65536 units
        assert np.allclose(after[key], before[key], rtol=1e-3, atol=1e-4), key
