"""``rtderain bench pipeline``: the file pipeline's own overhead.

Runs the threaded pipeline with an identity engine (no model) and compares it with the
plainest PyAV loop that does the same work serially: decode, convert to RGB, convert back,
encode with the same encoder settings, mux. The difference is the pipeline's cost
(queues, batching, tensor conversion, padding); it should be under 10 %.
"""

from __future__ import annotations

import json
import platform
import tempfile
import time
from pathlib import Path

import av
import click
import numpy as np

from rtderain.backends.base import IdentityEngine
from rtderain.media.writer import EncodeOptions
from rtderain.pipeline import PipelineOptions, derain_video


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A synthetic 25 fps H.264 clip with texture and motion (so the encoder works)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
    base = np.kron(base, np.ones((8, 8, 1), np.uint8))[:height, :width]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25, options={"crf": "23", "preset": "veryfast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            img = np.roll(base, 2 * i, axis=1)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))


def plain_pyav(src: Path, dst: Path, enc: EncodeOptions, rgb: bool) -> int:
    """Serial PyAV decode (-> RGB -> YUV if ``rgb``) -> encode -> mux; returns frames."""
    n = 0
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        opts = {"crf": str(enc.crf), "preset": enc.preset or "medium"}
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


@click.command()
@click.argument("clip", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--size", default="1280x720", show_default=True, help="WxH of the synthetic clip.")
@click.option("--frames", default=150, show_default=True, help="Frames of the synthetic clip.")
@click.option("--batch", default=4, show_default=True, help="Pipeline batch size.")
@click.option("--repeat", default=3, show_default=True, help="Runs of each; the best counts.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write JSON.")
def pipeline(clip, size, frames, batch, repeat, json_path) -> None:
    """Pipeline fps with an identity model next to plain PyAV decode+encode fps.

    Without CLIP, a synthetic H.264 clip of --size and --frames is made first.
    """
    enc = EncodeOptions()
    with tempfile.TemporaryDirectory(prefix="rtderain-bench-") as tmp:
        tmpdir = Path(tmp)
        if clip is None:
            w, h = (int(v) for v in size.lower().split("x"))
            clip = tmpdir / "clip.mp4"
            make_clip(clip, w, h, frames)
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
    click.echo(
        f"clip: {clip_desc}; encoder {enc.encoder} crf {enc.crf} preset {enc.preset}; "
        f"{platform.processor() or platform.machine()}, PyAV {av.__version__}"
    )
    for name, r in results.items():
        click.echo(f"  {name:<30} {r['fps']:7.1f} fps  ({r['seconds']:.2f} s)")
    ref = results["pyav decode+rgb+encode"]["seconds"]
    overhead = results["rtderain pipeline (identity)"]["seconds"] / ref - 1
    click.echo(f"pipeline overhead vs plain PyAV with the same RGB conversion: {overhead:+.1%}")
    if json_path:
        payload = {"clip": clip_desc, "results": results, "overhead": overhead}
        Path(json_path).write_text(json.dumps(payload, indent=2))
