"""``rtderain bench pipeline``: the file pipeline's own overhead.

Runs the threaded pipeline with an identity engine (no model) and compares it with the
plainest PyAV loop that does the same work serially: decode, convert to RGB, convert back,
encode with the same encoder settings, mux. The difference is the pipeline's cost
(queues, batching, tensor conversion, padding); it should be under 10 %.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import av

from rtderain import util
from rtderain.backends.base import IdentityEngine
from rtderain.bench.clips import real_clip, synthetic_clip
from rtderain.media.transcode import PipelineOptions, derain_video
from rtderain.media.writer import EncodeOptions


def plain_pyav(src: Path, dst: Path, enc: EncodeOptions, rgb: bool) -> int:
    """Serial PyAV decode (-> RGB -> YUV if ``rgb``) -> encode -> mux; returns frames."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        opts = {"crf": str(enc.crf), "preset": enc.preset or "medium", **enc.options}
        vout = out.add_stream(enc.encoder, rate=vin.average_rate, options=opts)
        vout.width, vout.height = vin.codec_context.width, vin.codec_context.height
        vout.pix_fmt = "yuv420p"
        vout.time_base = vin.time_base
        for frame in inp.decode(vin):
            if rgb:
                pts = frame.pts
                frame = av.VideoFrame.from_ndarray(
                    frame.to_ndarray(format="rgb24"), format="rgb24"
                ).reformat(format="yuv420p")
                frame.pts, frame.time_base = pts, vin.time_base
            else:
                frame.pict_type = av.video.frame.PictureType.NONE
            out.mux(vout.encode(frame))
            n += 1
        out.mux(vout.encode(None))
    return n


def _timed(fn) -> tuple[float, int]:
    start = time.perf_counter()
    frames = fn()
    return time.perf_counter() - start, frames


def measure_overhead(clip: str | Path | None, size: tuple[int, int], frames: int, batch: int,
                     repeat: int, synthetic: bool = False) -> dict:
    """Time the identity pipeline and the plain PyAV loops on ``clip`` (or on a synthetic
    H.264 clip of ``size`` = (W, H) and ``frames``); the best of ``repeat`` runs counts.

    Returns ``{"clip", "encoder", "results": {name: {seconds, frames, fps}}, "overhead"}``.
    """
    enc = EncodeOptions()
    with tempfile.TemporaryDirectory(prefix="rtderain-bench-") as tmp:
        tmpdir = Path(tmp)
        if clip is None:
            clip = tmpdir / "clip.mp4"
            (synthetic_clip if synthetic else real_clip)(clip, size[0], size[1], frames)
        src = Path(clip)
        runs = {
            "pyav decode+encode": lambda: plain_pyav(src, tmpdir / "a.mp4", enc, rgb=False),
            "pyav decode+rgb+encode": lambda: plain_pyav(src, tmpdir / "b.mp4", enc, rgb=True),
            "rtderain pipeline (identity)": lambda: (
                derain_video(
                    src,
                    tmpdir / "c.mp4",
                    IdentityEngine(),
                    PipelineOptions(batch=batch, encode=enc),
                ).frames
            ),
        }
        results = {}
        for name, fn in runs.items():
            best = min((_timed(fn) for _ in range(repeat)), key=lambda r: r[0])
            results[name] = {"seconds": best[0], "frames": best[1], "fps": best[1] / best[0]}
        with av.open(str(src)) as c:
            cc = c.streams.video[0].codec_context
            clip_desc = f"{src.name} {cc.width}x{cc.height}, {best[1]} frames"
    ref = results["pyav decode+rgb+encode"]["seconds"]
    overhead = results["rtderain pipeline (identity)"]["seconds"] / ref - 1
    return {
        "clip": clip_desc,
        "encoder": f"{enc.encoder} crf {enc.crf} preset {enc.preset}",
        "machine": f"{util.cpu_name()}, PyAV {av.__version__}",
        "results": results,
        "overhead": overhead,
    }
