"""Encoder choice: hardware encoders are opened before any work and fall back to software;
crf and preset reach NVENC in its own terms."""

from __future__ import annotations

import logging

import av
import pytest

from rtderain.backends.base import IdentityEngine
from rtderain.errors import MediaError
from rtderain.media import encoders
from rtderain.media.encoders import EncodeOptions, check_encoder, encoder_options
from rtderain.media.transcode import PipelineOptions, derain_video
from tests.mediagen import probe, write_video


@pytest.fixture
def fresh_probe():
    """Each test probes anew (the probe and its warning are cached per process)."""
    encoders.probe_encoder.cache_clear()
    encoders._warn_fallback.cache_clear()
    yield
    encoders.probe_encoder.cache_clear()
    encoders._warn_fallback.cache_clear()


@pytest.fixture
def no_nvenc(monkeypatch, fresh_probe):
    """A machine whose FFmpeg lists NVENC but whose GPU has none (H100/H200/A100)."""
    opened = []

    def fake_open(cc):
        opened.append(cc.name)
        if cc.name.endswith("_nvenc"):
            raise OSError("OpenEncodeSessionEx failed: unsupported device (2)")
        cc.open()

    monkeypatch.setattr(encoders, "_open", fake_open)
    return opened


def _has(name: str) -> bool:
    try:
        av.Codec(name, "w")
    except Exception:
        return False
    return True


def test_nvenc_that_cannot_open_falls_back_with_one_line(no_nvenc, caplog):
    caplog.set_level(logging.WARNING, logger="rtderain.media.encoders")
    for _ in range(3):  # the run, the pipeline and the writer all ask
        assert check_encoder(EncodeOptions(codec="h264_nvenc")).name == "libx264"
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1, lines
    assert "h264_nvenc cannot run here" in lines[0] and "libx264" in lines[0]
    assert "unsupported device" in lines[0]
    assert no_nvenc.count("h264_nvenc") <= 1  # probed once per process


@pytest.mark.parametrize(("hw", "sw"), [("hevc_nvenc", "libx265"), ("av1_nvenc", "libsvtav1")])
def test_each_nvenc_format_falls_back_to_its_software_encoder(no_nvenc, hw, sw):
    if not _has(sw):
        pytest.skip(f"this FFmpeg has no {sw}")
    assert check_encoder(EncodeOptions(codec=hw)).name == sw


def test_nvenc_that_opens_is_kept(monkeypatch, fresh_probe):
    if not _has("h264_nvenc"):
        pytest.skip("this FFmpeg has no h264_nvenc")
    monkeypatch.setattr(encoders, "_open", lambda cc: None)  # a GPU with NVENC
    assert check_encoder(EncodeOptions(codec="h264_nvenc")).name == "h264_nvenc"


def test_real_probe_reports_why_nvenc_cannot_open_here(fresh_probe):
    problem = encoders.probe_encoder("h264_nvenc")
    if problem is None:
        pytest.skip("this machine has NVENC")
    assert isinstance(problem, str) and problem
    assert encoders.probe_encoder("libx264") is None  # a software encoder opens


def test_pipeline_with_nvenc_on_a_gpu_without_it_writes_h264(tmp_path, no_nvenc):
    src, dst = tmp_path / "in.mp4", tmp_path / "out.mp4"
    write_video(src, frames=6)
    options = PipelineOptions(encode=EncodeOptions(codec="h264_nvenc", preset="fast"))
    summary = derain_video(src, dst, IdentityEngine(), options)
    assert summary.frames == probe(dst)["frames"] == 6
    with av.open(str(dst)) as container:
        assert container.streams.video[0].codec_context.name == "h264"


def test_crf_and_preset_map_to_nvenc_rate_control():
    opts = encoder_options("h264_nvenc", EncodeOptions(crf=20, preset="fast"))
    assert opts["rc"] == "vbr" and opts["cq"] == "20" and opts["b"] == "0"
    assert opts["preset"] == "p4" and "crf" not in opts  # not NVENC's legacy "fast" (P1)
    assert encoder_options("hevc_nvenc", EncodeOptions(preset="p7"))["preset"] == "p7"
    assert encoder_options("h264_nvenc", EncodeOptions(preset="veryslow"))["preset"] == "p7"
    assert encoder_options("h264_nvenc", EncodeOptions(preset="ultrafast"))["preset"] == "p1"
    mine = EncodeOptions(crf=20, options={"cq": "30", "rc": "constqp"})
    assert encoder_options("h264_nvenc", mine)["cq"] == "30"  # explicit options win
    assert "cq" not in encoder_options("h264_nvenc", EncodeOptions(crf=None, preset=None))


def test_software_encoders_keep_crf_and_preset():
    assert encoder_options("libx264", EncodeOptions(crf=20, preset="fast")) == {
        "crf": "20", "preset": "fast"}
    assert encoder_options("libvpx-vp9", EncodeOptions(crf=30, preset=None)) == {
        "crf": "30", "b": "0"}
    assert encoder_options("ffv1", EncodeOptions(crf=30, preset="fast")) == {}


def test_a_preset_nvenc_cannot_take_is_found_before_work(monkeypatch, fresh_probe):
    if not _has("h264_nvenc"):
        pytest.skip("this FFmpeg has no h264_nvenc")
    monkeypatch.setattr(encoders, "_open", lambda cc: None)
    with pytest.raises(MediaError, match="preset 'turbo' has no NVENC equivalent"):
        check_encoder(EncodeOptions(codec="h264_nvenc", preset="turbo"))


def test_unknown_encoder_is_still_an_error(fresh_probe):
    with pytest.raises(MediaError, match="unknown video encoder 'nope'"):
        check_encoder(EncodeOptions(codec="nope"))
