"""Media synthesised by the tests themselves (no shipped test files), and a CLI runner.

Import as ``from tests.mediagen import write_video, probe, run_cli``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
# The benchmark data: $RTDERAIN_DATA, else ../shared/data beside the repository (the one
# place that default lives; the product itself has none).
SHARED_DATA = Path(os.environ.get("RTDERAIN_DATA") or REPO.parent / "shared" / "data")


def moving_pattern(index: int, width: int, height: int) -> np.ndarray:
    """A deterministic RGB uint8 test frame: gradient background and a moving bright bar."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), np.full_like(x, 128)],
        axis=-1,
    ).astype(np.uint8)
    col = (index * 7) % max(width - 4, 1)
    img[:, col : col + 3] = 250
    return img


def write_video(
    path: Path,
    *,
    frames: int = 12,
    width: int = 96,
    height: int = 64,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    durations: list[int] | None = None,
    time_base: Fraction = Fraction(1, 1000),
    audio: bool = False,
    subtitles: bool = False,
    subtitle_codec: str = "subrip",
    colorspace: int | None = None,
    color_range: int | None = None,
    frame_fn=moving_pattern,
) -> list[int]:
    """Encode a synthetic clip; returns the pts written (in ``time_base``).

    ``durations`` (per-frame, cycled) gives a variable frame rate; default 40 ms (25 fps).
    ``subtitle_codec``: ``subrip`` or ``mov_text`` (the MP4 text track) for ``subtitles``.
    """
    durations = durations or [40]
    container = av.open(str(path), "w")
    stream = container.add_stream(codec, rate=25)
    stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
    stream.time_base = time_base
    stream.codec_context.time_base = time_base
    if colorspace is not None:
        stream.codec_context.colorspace = colorspace
    if color_range is not None:
        stream.codec_context.color_range = color_range
    astream = container.add_stream("aac", rate=48000) if audio else None
    sstream = container.add_mux_stream(subtitle_codec) if subtitles else None
    if sstream is not None:
        sstream.time_base = Fraction(1, 1000)
    pts, written = 0, []
    for i in range(frames):
        rgb = frame_fn(i, width, height)
        fmt = "rgb48le" if rgb.dtype == np.uint16 else "rgb24"
        frame = av.VideoFrame.from_ndarray(rgb, format=fmt).reformat(
            format=pix_fmt,
            dst_colorspace={1: "itu709"}.get(colorspace or 0, "itu601"),
            dst_color_range=2 if color_range == 2 else 1,
        )
        if colorspace is not None:
            frame.colorspace = colorspace
        if color_range is not None:
            frame.color_range = color_range
        frame.pts, frame.time_base = pts, time_base
        written.append(pts)
        container.mux(stream.encode(frame))
        if sstream is not None and i % 4 == 0:
            text = f"subtitle {i}".encode()
            if subtitle_codec == "mov_text":  # a 16-bit length before the text
                text = len(text).to_bytes(2, "big") + text
            packet = av.Packet(text)
            packet.stream, packet.time_base = sstream, Fraction(1, 1000)
            packet.pts = packet.dts = int(pts * time_base * 1000)
            packet.duration = 100
            container.mux(packet)
        pts += durations[i % len(durations)]
    container.mux(stream.encode(None))
    if astream is not None:
        total = int(pts * time_base * 48000)
        for start in range(0, total, 1024):
            samples = np.sin(np.arange(start, start + 1024) / 20.0)[None].astype(np.float32) * 0.2
            aframe = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
            aframe.sample_rate, aframe.pts = 48000, start
            container.mux(astream.encode(aframe))
        container.mux(astream.encode(None))
    container.close()
    return written


def probe(path: Path) -> dict:
    """Frame pts, frame count, size, pix_fmt, colour tags and per-stream packet counts."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info = {
            "streams": [s.type for s in c.streams],
            "time_base": v.time_base,
            "pix_fmt": v.codec_context.pix_fmt,
            "size": (v.codec_context.width, v.codec_context.height),
        }
        frames = list(c.decode(video=0))
        info["pts_seconds"] = [float(f.pts * f.time_base) for f in frames]
        info["frames"] = len(frames)
        info["first"] = frames[0] if frames else None
        info["colorspace"] = int(frames[0].colorspace)
        info["color_range"] = int(frames[0].color_range)
    with av.open(str(path)) as c:
        counts: dict[str, int] = {}
        for p in c.demux():
            if p.size:
                counts[p.stream.type] = counts.get(p.stream.type, 0) + 1
        info["packets"] = counts
    return info


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m rtderain ARGS`` as a user would; returns the completed process."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "rtderain", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )
