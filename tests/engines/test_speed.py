"""``rtderain bench speed`` on tiny sizes: every row measured or explained, both formats."""

from __future__ import annotations

import json

import av
import pytest
from click.testing import CliRunner

from rtderain.bench.clips import real_clip, synthetic_clip
from rtderain.cli.bench import speed


@pytest.mark.parametrize("make", [real_clip, synthetic_clip])
def test_bench_clips_are_h264_with_every_frame(tmp_path, make):
    path = make(tmp_path / "c.mp4", 96, 64, 7)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = list(container.decode(stream))
    assert len(frames) == 7 and (frames[0].width, frames[0].height) == (96, 64)
    first = frames[0].to_ndarray(format="rgb24").astype(float)
    assert first.std() > 10  # content for the encoder to work on, not a flat frame


def test_speed_json_rows(tmp_path):
    args = ["--backends", "torch,onnxruntime", "--precisions", "fp32,fp16", "--models",
            "mgid-rt", "--sizes", "64x48", "--iters", "2", "--warmup", "0",
            "--e2e-frames", "4", "--engines-dir", str(tmp_path / "eng"), "--format", "json",
            "-o", str(tmp_path / "speed.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["machine"]["torch"] and data["machine"]["cpu"]
    rows = {(r["backend"], r["precision"]): r for r in data["rows"]}
    assert set(rows) == {("torch", "fp32"), ("torch", "fp16"), ("onnxruntime", "fp32"),
                         ("onnxruntime", "fp16")}
    for key in [("torch", "fp32"), ("onnxruntime", "fp32")]:
        assert rows[key]["model_ms"] > 0 and rows[key]["e2e_fps"] > 0, rows[key]
        assert rows[key]["codec_fps"] > 0, rows[key]  # the ceiling beside every e2e figure
    # fp16 is CUDA-only for both: listed with the reason, not measured through a fallback.
    for key in [("torch", "fp16"), ("onnxruntime", "fp16")]:
        assert rows[key]["model_ms"] is None and rows[key]["note"].startswith("unavailable:")


def test_speed_markdown_table(tmp_path):
    args = ["--backends", "torch", "--precisions", "fp32", "--models", "mgid-rt",
            "--sizes", "32x32", "--iters", "1", "--e2e-frames", "0",
            "--engines-dir", str(tmp_path)]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    assert "| mgid-rt | torch | fp32 | rgb | 32x32 | 1 |" in result.output
    assert "decode+encode fps" in result.output
    assert "Machine: cpu" in result.output and "Command: `rtderain bench speed" in result.output


@pytest.fixture
def keep_torch_threads():
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)  # --threads sets torch's process-wide pool


def test_speed_temporal_rows_and_encoder_settings(tmp_path, keep_torch_threads):
    """--temporal gives one end-to-end row per mode, the stage's own cost beside it (on
    the clip and on a still-camera rainy clip); the encoder settings reach the caption."""
    args = ["--backends", "torch", "--precisions", "fp32", "--models", "mgid-rt",
            "--sizes", "96x64", "--iters", "1", "--warmup", "0", "--e2e-frames", "10",
            "--temporal", "off,causal", "--preset", "ultrafast", "--crf", "23",
            "--threads", "1", "--encode-threads", "1",
            "--engines-dir", str(tmp_path / "eng"), "--format", "json",
            "-o", str(tmp_path / "speed.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "speed.json").read_text())
    assert data["machine"]["encoder"] == "libx264 crf 23 preset ultrafast threads 1"
    rows = {r["temporal"]: r for r in data["rows"]}
    assert set(rows) == {"off", "causal"}
    assert rows["off"]["stage_ms"] is None and rows["off"]["e2e_fps"] > 0
    assert rows["causal"]["e2e_fps"] > 0
    assert rows["causal"]["stage_ms"] > 0 and rows["causal"]["stage_still_ms"] > 0
    assert rows["causal"]["codec_fps"] == rows["off"]["codec_fps"]  # one ceiling per clip


def test_speed_rejects_an_unknown_temporal_mode(tmp_path):
    result = CliRunner().invoke(speed, ["--temporal", "off,sideways", "--sizes", "32x32",
                                        "--engines-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "sideways" in result.output


def test_speed_keeps_model_only_and_skipped_rows_whatever_the_temporal_modes(tmp_path):
    """Without an end-to-end run, and for a combination that cannot run, the one row is
    reported even when --temporal does not list ``off``."""
    args = ["--backends", "torch", "--precisions", "fp32,fp16", "--models", "mgid-rt",
            "--sizes", "32x32", "--iters", "1", "--warmup", "0", "--e2e-frames", "0",
            "--temporal", "causal", "--engines-dir", str(tmp_path), "--format", "json",
            "-o", str(tmp_path / "speed.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    rows = {r["precision"]: r for r in json.loads((tmp_path / "speed.json").read_text())["rows"]}
    assert set(rows) == {"fp32", "fp16"}
    assert rows["fp32"]["model_ms"] > 0 and rows["fp32"]["e2e_fps"] is None
    assert rows["fp16"]["note"].startswith("unavailable:")


def test_speed_yuv_rows_for_luma_networks_only(tmp_path):
    """mgid-lite gets an rgb and a yuv (YUV-native) row, each end to end beside the same
    ceiling, and the yuv run takes the planes path (the bench checks it ran); an RGB
    network gets its rgb row alone."""
    args = ["--backends", "openvino", "--precisions", "fp32", "--models", "mgid-lite,mgid-rt",
            "--sizes", "96x64", "--iters", "1", "--warmup", "0", "--e2e-frames", "8",
            "--engines-dir", str(tmp_path / "eng"), "--format", "json",
            "-o", str(tmp_path / "speed.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    rows = [(r["model"], r["io"]) for r in json.loads((tmp_path / "speed.json").read_text())[
        "rows"]]
    assert rows == [("mgid-lite", "rgb"), ("mgid-lite", "yuv"), ("mgid-rt", "rgb")]
    data = json.loads((tmp_path / "speed.json").read_text())["rows"]
    assert all(r["model_ms"] > 0 and r["e2e_fps"] > 0 for r in data)
    assert data[0]["codec_fps"] == data[1]["codec_fps"]
    bad = CliRunner().invoke(speed, ["--io", "rgb,nv12", "--sizes", "32x32"])
    assert bad.exit_code != 0 and "nv12" in bad.output


def test_speed_yuv_rows_run_the_temporal_stage_in_the_planes(tmp_path, keep_torch_threads):
    """A yuv row with --temporal causal stays on the YUV-native path end to end (the bench
    checks it ran there) and times the stage on the Y planes."""
    args = ["--backends", "torch", "--precisions", "fp32", "--models", "mgid-lite",
            "--sizes", "96x64", "--iters", "1", "--warmup", "0", "--e2e-frames", "10",
            "--io", "yuv", "--temporal", "off,causal", "--threads", "1",
            "--engines-dir", str(tmp_path / "eng"), "--format", "json",
            "-o", str(tmp_path / "speed.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    rows = {r["temporal"]: r for r in json.loads((tmp_path / "speed.json").read_text())["rows"]}
    assert set(rows) == {"off", "causal"} and {r["io"] for r in rows.values()} == {"yuv"}
    assert rows["causal"]["e2e_fps"] > 0 and rows["causal"]["stage_ms"] > 0


def test_speed_lists_a_refused_build_as_a_row(tmp_path, monkeypatch):
    """An engine the build refuses (an int8 graph over its quality bound) is a row with
    the reason; the other combinations are still measured."""
    import rtderain.backends as backends
    from rtderain.backends.int8 import Int8Rejected
    from rtderain.errors import RTDerainError

    real = backends.create_engine

    def create(model, engine, device, precision, **kw):
        if precision == "bf16":
            raise RTDerainError("--engine torch cannot run") from Int8Rejected("over the bound")
        return real(model, engine, device, precision, **kw)

    monkeypatch.setattr(backends, "create_engine", create)
    args = ["--backends", "torch", "--precisions", "bf16,fp32", "--models", "mgid-rt",
            "--sizes", "32x32", "--iters", "1", "--warmup", "0", "--e2e-frames", "0",
            "--engines-dir", str(tmp_path), "--format", "json", "-o", str(tmp_path / "s.json")]
    result = CliRunner().invoke(speed, args)
    assert result.exit_code == 0, result.output
    rows = {r["precision"]: r for r in json.loads((tmp_path / "s.json").read_text())["rows"]}
    assert rows["bf16"]["note"] == "rejected: over the bound" and rows["bf16"]["model_ms"] is None
    assert rows["fp32"]["model_ms"] > 0
