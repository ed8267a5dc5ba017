"""The temporal stage inside the jobs: file pipeline, Python API, eval methods, live options."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import rtderain
from rtderain.backends.torch_backend import TorchEngine
from rtderain.errors import RTDerainError
from rtderain.live.session import LiveOptions
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions
from rtderain.temporal import TemporalSettings
from tests.engines.conftest import perturbed_model
from tests.mediagen import probe, write_video


@pytest.mark.parametrize("mode", ["window", "causal"])
def test_file_pipeline_keeps_every_frame_and_pts(tmp_path, mode):
    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_video(src, frames=13, codec="ffv1", pix_fmt="yuv444p", durations=[40, 33, 57])
    opts = PipelineOptions(batch=3, encode=EncodeOptions("ffv1"),
                           temporal=TemporalSettings(mode, radius=2))
    summary = derain_video(src, dst, TorchEngine(perturbed_model("mgid-rt")), opts)
    a, b = probe(src), probe(dst)
    assert summary.frames == a["frames"] == b["frames"] == 13
    assert b["pts_seconds"] == pytest.approx(a["pts_seconds"], abs=1e-6)
    assert f"temporal {mode} r2" in summary.line()


def test_a_failing_stage_thread_stops_the_run_and_leaves_no_output(tmp_path, monkeypatch):
    """The stage runs in its own thread: its error reaches the caller as it is (a bug
    keeps its traceback), the run stops, and nothing is left under the output name."""
    from rtderain.temporal import TemporalStage

    src, dst = tmp_path / "in.mkv", tmp_path / "out.mkv"
    write_video(src, frames=20, codec="ffv1")
    calls = []

    def push(self, rainy, derained, payload=None):
        calls.append(payload)
        if len(calls) == 5:
            raise ZeroDivisionError("stage bug")
        return [(derained, payload)]

    monkeypatch.setattr(TemporalStage, "push", push)
    opts = PipelineOptions(batch=2, encode=EncodeOptions("ffv1"),
                           temporal=TemporalSettings("causal"))
    with pytest.raises(ZeroDivisionError, match="stage bug"):
        derain_video(src, dst, TorchEngine(perturbed_model("mgid-rt")), opts)
    assert not dst.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["in.mkv"]


class Gate:
    """A frame source that records how far it has been read and can block until released."""

    def __init__(self, n: int, h: int = 48, w: int = 64) -> None:
        rng = np.random.default_rng(0)
        self.frames = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for _ in range(n)]
        self.read = 0

    def __iter__(self):
        for frame in self.frames:
            self.read += 1
            yield frame


def _derainer(mode: str, radius: int = 2) -> rtderain.Derainer:
    return rtderain.Derainer("mgid-rt", engine="torch", device="cpu", batch=1,
                             temporal=TemporalSettings(mode, radius=radius))


def test_causal_never_reads_a_future_frame():
    source = Gate(10)
    for k, _ in enumerate(_derainer("causal").frames(source)):
        assert source.read == k + 1, f"output {k} needed {source.read - k - 1} future frame(s)"


def test_causal_output_comes_while_the_source_blocks():
    """The source blocks after its 4th frame until the 4th output is out."""
    released = threading.Event()
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(6)]

    def source():
        for i, frame in enumerate(frames):
            if i == 4 and not released.wait(timeout=30):
                raise AssertionError("the 4th output never came: the stage waited")
            yield frame

    outputs = []
    for out in _derainer("causal").frames(source()):
        outputs.append(out)
        if len(outputs) == 4:
            released.set()
    assert len(outputs) == 6


@pytest.mark.parametrize("radius", [1, 3])
def test_window_looks_ahead_exactly_radius_frames(radius):
    source = Gate(9)
    outputs = []
    for k, out in enumerate(_derainer("window", radius).frames(source)):
        assert source.read <= min(9, k + radius + 1)
        outputs.append(out)
    assert len(outputs) == 9


def test_frames_with_temporal_off_is_the_network_alone():
    source = Gate(5)
    d = _derainer("off")
    assert all(np.array_equal(a, d(f)) for a, f in zip(d.frames(source), source.frames,
                                                        strict=True))


def test_live_refuses_window_mode():
    with pytest.raises(RTDerainError, match="causal or off"):
        LiveOptions(temporal=TemporalSettings("window"))


def test_eval_method_with_temporal_mode_is_named_and_keeps_frame_count():
    from rtderain.evaluation.methods import create_method

    method = create_method("mgid-rt", temporal="window", engine="torch", device="cpu")
    assert method.name == "mgid-rt+window" and method.temporal
    frames = Gate(7).frames
    assert len(list(method(frames))) == 7
