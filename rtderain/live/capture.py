"""Opening sources: what a SOURCE string is, the FFmpeg options for it, and the decoders.

:class:`AVCapture` reads anything FFmpeg opens (network URLs, files, V4L2 devices) with PyAV;
:class:`CVCapture` reads a webcam by index with OpenCV. Both yield decoded frames and convert
to RGB only on request (a frame dropped as late is never converted).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from rtderain.errors import MediaError, RTDerainError
from rtderain.media.colour import ColourInfo, frame_to_rgb
from rtderain.util import redact_url

log = logging.getLogger(__name__)

NETWORK_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "srt", "tcp", "rtp")


@dataclass(frozen=True)
class SourceOptions:
    """How to open and keep a source.

    Attributes:
        realtime: play files at their own frame rate (else as fast as they are consumed,
            every frame kept).
        loop: play a file again from the start when it ends (a file as an endless camera).
        low_latency: apply :func:`low_latency_options` to network streams.
        input_options: extra FFmpeg demuxer options; they override the defaults, an empty
            value removes a default.
        open_timeout: seconds to wait for a connection.
        stall_timeout: seconds without data before a network stream counts as lost.
        late_threshold: seconds behind the source's own clock after which a decoded frame
            is dropped before conversion (paced sources only; see ``SourceReader._pump``).
        reconnect_delay: first reconnect delay in seconds (doubles each failed attempt).
        reconnect_max_delay: cap of the reconnect delay.
        max_reconnects: give up after this many failed attempts in a row (None: never).
        capture_size: (width, height) asked of a webcam/device, or None.
        capture_fps: frame rate asked of a webcam/device, or None.
    """

    realtime: bool = False
    loop: bool = False
    low_latency: bool = True
    input_options: dict[str, str] = field(default_factory=dict)
    open_timeout: float = 10.0
    stall_timeout: float = 5.0
    late_threshold: float = 0.25
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 8.0
    max_reconnects: int | None = None
    capture_size: tuple[int, int] | None = None
    capture_fps: float | None = None


def classify(source: str) -> str:
    """``webcam`` (an index like ``0``), ``device`` (``/dev/video*``), ``network`` or ``file``.

    A file that does not exist is an error naming it.
    """
    if re.fullmatch(r"\d+", source):
        return "webcam"
    scheme = source.split("://", 1)[0].lower() if "://" in source else ""
    if scheme in NETWORK_SCHEMES:
        return "network"
    if scheme:
        raise RTDerainError(f"unsupported source URL scheme {scheme!r} in {redact_url(source)!r}")
    if source.startswith("/dev/video"):
        return "device"
    if not Path(source).is_file():
        raise RTDerainError(f"source not found: {source}")
    return "file"


def low_latency_options(url: str) -> dict[str, str]:
    """Default FFmpeg options for a network URL: small probe, no input buffering, TCP RTSP."""
    opts = {
        "fflags": "nobuffer",
        "flags": "low_delay",
        "probesize": "65536",
        "analyzeduration": "500000",
    }
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("rtsp", "rtsps"):
        opts["rtsp_transport"] = "tcp"
    if scheme == "udp":
        opts["overrun_nonfatal"] = "1"
        opts["fifo_size"] = "50000"
    return opts


def input_options_for(source: str, kind: str, options: SourceOptions) -> dict[str, str]:
    """The FFmpeg options used to open ``source``: defaults, then the user's overrides."""
    opts: dict[str, str] = {}
    if kind == "network" and options.low_latency:
        opts.update(low_latency_options(source))
    if kind == "device":
        if options.capture_size:
            opts["video_size"] = "{}x{}".format(*options.capture_size)
        if options.capture_fps:
            opts["framerate"] = f"{options.capture_fps:g}"
    for key, value in options.input_options.items():
        if value == "":
            opts.pop(key, None)
        else:
            opts[key] = value
    return opts


# (decoded frame, pts or None, time_base or None, colour); to_rgb() converts the frame.
Captured = tuple[Any, "int | None", "Fraction | None", ColourInfo]


class AVCapture:
    """Frames from anything FFmpeg opens.

    RGB is 8-bit whatever the source depth (the live path is 8-bit), converted with the
    source's own matrix and range, only for frames that are not dropped as late.
    """

    def __init__(self, source: str, kind: str, options: SourceOptions) -> None:
        opts = input_options_for(source, kind, options)
        log.debug("opening %s with %s", redact_url(source), opts)
        fmt = "v4l2" if kind == "device" else None
        timeout = (options.open_timeout, options.stall_timeout) if kind != "file" else None
        self.container = av.open(source, format=fmt, options=opts, timeout=timeout)
        if not self.container.streams.video:
            self.container.close()
            raise MediaError(f"{redact_url(source)}: no video stream")
        self.stream = self.container.streams.video[0]
        # Slice threads add no delay; frame threads would hold back one frame per thread.
        self.stream.thread_type = "SLICE" if kind != "file" else "AUTO"
        cc = self.stream.codec_context
        self.size = (cc.width, cc.height) if cc.width and cc.height else None

    def frames(self) -> Iterator[Captured]:
        colour: ColourInfo | None = None
        for frame in self.container.decode(self.stream):
            if colour is None:
                colour = dataclasses.replace(ColourInfo.from_frame(frame), bit_depth=8)
            yield frame, frame.pts, frame.time_base, colour

    @staticmethod
    def to_rgb(frame: av.VideoFrame, colour: ColourInfo) -> np.ndarray:
        return frame_to_rgb(frame, colour)

    def close(self) -> None:
        self.container.close()


class CVCapture:
    """Frames from an OpenCV webcam (index); no source pts (capture clock is used)."""

    def __init__(self, index: int, options: SourceOptions) -> None:
        import cv2

        self.cv2 = cv2
        self.cap = _quiet_open(cv2, index)
        if not self.cap.isOpened():
            raise MediaError(f"cannot open webcam {index} (no such camera, or it is busy)")
        if options.capture_size:
            self.cap.set(cv2.CAP_PROP_FRAME_WIDTH, options.capture_size[0])
            self.cap.set(cv2.CAP_PROP_FRAME_HEIGHT, options.capture_size[1])
        if options.capture_fps:
            self.cap.set(cv2.CAP_PROP_FPS, options.capture_fps)
        self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        w, h = (int(self.cap.get(p)) for p in (cv2.CAP_PROP_FRAME_WIDTH, cv2.CAP_PROP_FRAME_HEIGHT))
        self.size = (w, h) if w and h else None

    def frames(self) -> Iterator[Captured]:
        colour = ColourInfo(pix_fmt="yuv420p")
        while True:
            ok, bgr = self.cap.read()
            if not ok:
                raise OSError("webcam returned no frame")
            yield bgr, None, None, colour

    @staticmethod
    def to_rgb(bgr: np.ndarray, colour: ColourInfo) -> np.ndarray:
        return np.ascontiguousarray(bgr[:, :, ::-1])

    def close(self) -> None:
        self.cap.release()


def _quiet_open(cv2: Any, index: int) -> Any:
    """``cv2.VideoCapture(index)`` without OpenCV's own log lines: each backend it probes
    (V4L2, FFmpeg, Orbbec) logs its failure, which would bury our one-line error. The log
    level is process-wide, so it is restored at once."""
    levels = cv2.utils.logging
    before = levels.setLogLevel(levels.LOG_LEVEL_SILENT)  # returns the previous level
    try:
        return cv2.VideoCapture(index)
    finally:
        levels.setLogLevel(before)


def open_capture(source: str, kind: str, options: SourceOptions) -> AVCapture | CVCapture:
    """Open ``source`` (see :func:`classify`); errors are :class:`MediaError` naming it."""
    try:
        if kind == "webcam":
            return CVCapture(int(source), options)
        return AVCapture(source, kind, options)
    except av.error.FFmpegError as exc:
        raise MediaError(redact_url(f"cannot open {source}: {exc.strerror or exc}")) from None
    except OSError as exc:
        raise MediaError(redact_url(f"cannot open {source}: {exc}")) from None
