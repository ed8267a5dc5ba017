"""Live sinks: recording file, stream out (RTSP/RTMP publish, MPEG-TS over UDP), window.

Each sink runs in its own :class:`SinkWorker` thread behind a bounded queue. Display-like
sinks (window, stream out, web page) drop their oldest frame when they fall behind; the
recording is lossless for the frames that reach it (its queue blocks the inference loop,
which then drops at the source queue instead). Every sink is closed in the worker's
``finally``; the recording is renamed into place there, a valid file even after Ctrl-C.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import av
import cv2
import numpy as np

from rtderain.errors import MediaError, RTDerainError
from rtderain.live.queues import Closed, LatestQueue
from rtderain.live.sources import LiveFrame
from rtderain.media.colour import ColourInfo, frame_to_rgb, planes_to_frame, rgb_to_frame
from rtderain.media.writer import EncodeOptions, VideoWriter
from rtderain.util import redact_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OutputFrame:
    """A de-rained frame with its source frame.

    Attributes:
        source: the captured frame (``rgb`` is the raw input, pts/time_base its timestamp).
        pixels: the de-rained frame in ``layout``: ``rgb``, (H, W, 3) uint8 RGB, or
            ``i420``, the decoder's 4:2:0 planes (3H/2, W) uint8 (the YUV-native path of a
            luma network: :func:`rtderain.media.batching.derain_planes`).
        t_output: ``time.monotonic()`` when the de-rained frame was ready.
    """

    source: LiveFrame
    pixels: np.ndarray
    t_output: float
    layout: str = "rgb"

    @functools.cached_property
    def derained(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, same size as ``source.rgb`` (converted once, on first use,
        by the first sink that needs RGB: a recording takes the planes as they are)."""
        if self.layout == "rgb":
            return self.pixels
        colour = self.source.colour
        return frame_to_rgb(planes_to_frame(self.pixels, colour), colour)


class Sink(Protocol):
    """Where de-rained frames go. ``write`` and ``close`` run in the sink's own thread."""

    name: str
    lossless: bool

    def write(self, item: OutputFrame) -> None: ...

    def close(self) -> None: ...


class SinkWorker(threading.Thread):
    """Feeds one sink from a bounded queue in its own thread; closes the sink at the end.

    A sink error is kept in ``error`` and sets ``stop`` (the run ends with that error).
    """

    def __init__(self, sink: Sink, stop: threading.Event, depth: int = 8) -> None:
        super().__init__(name=f"rtderain-sink-{sink.name}", daemon=True)
        self.sink = sink
        self.stop_event = stop
        self.queue: LatestQueue[OutputFrame] = LatestQueue(
            maxsize=depth if sink.lossless else 2, drop=not sink.lossless
        )
        self.error: BaseException | None = None

    def submit(self, item: OutputFrame) -> None:
        """Hand over a frame (blocks while a lossless sink's queue is full)."""
        while not self.queue.put(item, timeout=0.2):
            if self.queue.closed or self.stop_event.is_set() or not self.is_alive():
                return

    def run(self) -> None:
        try:
            while True:
                try:
                    item = self.queue.get(timeout=0.5)
                except Closed:
                    break
                if item is not None and self.error is None:
                    self.sink.write(item)
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            self.stop_event.set()
            self.queue.close()
        finally:
            try:
                self.sink.close()
            except BaseException as exc:
                log.error("closing %s sink: %s", self.sink.name, exc)
                self.error = self.error or exc

    def finish(self, timeout: float = 30.0) -> None:
        """No more frames: drain, close the sink, join."""
        self.queue.close()
        self.join(timeout)
        if self.is_alive():
            log.error("%s sink did not finish within %.0f s", self.sink.name, timeout)


class RecordingSink:
    """Record the de-rained frames to ``path`` with the source's timestamps and colour tags.

    Uses :class:`rtderain.media.writer.VideoWriter` (temporary name, renamed into place on
    close). The encoder is opened on the first frame (the size is known then). A write
    error (disk full) ends the recording but keeps it: the frames already written are
    finished as a valid file under the requested name, and the error says so.
    """

    name = "record"
    lossless = True

    def __init__(self, path: str | Path, options: EncodeOptions | None = None,
                 overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise RTDerainError(f"output exists: {self.path} (use --overwrite)")
        if not self.path.parent.is_dir():
            raise RTDerainError(f"output folder does not exist: {self.path.parent}")
        if not os.access(self.path.parent, os.W_OK):
            raise RTDerainError(f"output folder is not writable: {self.path.parent}")
        self.options = options or EncodeOptions(preset="veryfast")
        self.overwrite = overwrite
        self.writer: VideoWriter | None = None
        self.finished = False

    def write(self, item: OutputFrame) -> None:
        src = item.source
        if self.writer is None:
            h, w = src.size
            self.writer = VideoWriter(
                self.path, width=w, height=h, time_base=src.time_base, frame_rate=None,
                colour=src.colour, options=self.options, overwrite=self.overwrite,
            )
            log.info("recording %dx%d to %s", w, h, self.path)
        pts = round(src.pts * src.time_base / self.writer.time_base)
        try:
            self.writer.write(item.pixels, pts, item.layout)
        except (MediaError, OSError) as exc:
            self._keep_partial(exc)

    def _keep_partial(self, exc: BaseException) -> None:
        """Finish what was recorded before the write error, then raise one line saying so."""
        assert self.writer is not None
        self.finished = True
        reason = (getattr(exc, "strerror", None) or str(exc)).splitlines()[0]
        path = self.writer.close_partial()
        raise MediaError(
            f"recording to {self.path} stopped: {reason}; the {self.writer.muxed} frames "
            f"recorded before it are kept in {path}"
        ) from None

    def close(self) -> None:
        if self.finished:
            return
        if self.writer is None:
            log.warning("nothing recorded: no frame reached %s", self.path)
            return
        self.writer.close()
        log.info("recorded %d frames to %s", self.writer.frames, self.path)


def stream_format(url: str) -> tuple[str, dict[str, str]]:
    """Muxer and options for a stream-out URL (RTSP, RTMP publish, UDP/SRT/TCP MPEG-TS)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("rtsp", "rtsps"):
        return "rtsp", {"rtsp_transport": "tcp"}
    if scheme in ("rtmp", "rtmps"):
        return "flv", {}
    if scheme in ("udp", "srt", "tcp", "rtp"):
        return "mpegts", {}
    raise RTDerainError(
        f"unsupported stream-out URL {redact_url(url)!r} (use rtsp://, rtmp://, udp://, srt:// or tcp://)"
    )


class StreamSink:
    """Publish the de-rained frames: H.264 (x264 ultrafast, zerolatency) to ``url``.

    Timestamps are the source's; odd sizes are padded by one edge pixel (4:2:0 needs even).
    A frame of another size than the first is scaled to the stream's size (one warning).
    """

    name = "stream"
    lossless = False

    def __init__(self, url: str, crf: int = 23, gop_seconds: float = 1.0) -> None:
        self.url = url
        self.label = redact_url(url)  # what logs and errors show
        self.format, self.mux_options = stream_format(url)
        self.crf = crf
        self.gop_seconds = gop_seconds
        self.container: av.container.OutputContainer | None = None
        self.stream: av.VideoStream | None = None
        self.time_base: Fraction | None = None
        self.colour = ColourInfo(colorspace=1, color_range=1, color_primaries=1, color_trc=1)
        self.last_pts: int | None = None
        self.scaled = False

    def _open(self, rgb: np.ndarray, time_base: Fraction) -> None:
        h, w = rgb.shape[:2]
        try:
            self.container = av.open(
                self.url, mode="w", format=self.format, options=self.mux_options, timeout=10
            )
            stream = self.container.add_stream(
                "libx264",
                options={"preset": "ultrafast", "tune": "zerolatency", "crf": str(self.crf),
                         "g": str(max(1, round(25 * self.gop_seconds))), "bf": "0"},
            )
        except av.error.FFmpegError as exc:
            reason = exc.strerror or exc
            raise MediaError(redact_url(f"cannot publish to {self.url}: {reason}")) from None
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = time_base
        stream.codec_context.colorspace = 1
        stream.codec_context.color_range = 1
        self.stream, self.time_base = stream, time_base
        log.info("publishing %dx%d %s to %s", stream.width, stream.height, self.format, self.label)

    def write(self, item: OutputFrame) -> None:
        src = item.source
        rgb = item.derained
        if self.container is None:
            self._open(rgb, src.time_base)
        assert self.stream is not None and self.time_base is not None
        if rgb.shape[0] % 2 or rgb.shape[1] % 2:
            rgb = np.pad(rgb, ((0, rgb.shape[0] % 2), (0, rgb.shape[1] % 2), (0, 0)), mode="edge")
        size = (self.stream.width, self.stream.height)
        if rgb.shape[1::-1] != size:
            if not self.scaled:
                self.scaled = True
                log.warning("stream out: the frame size changes from %dx%d to %dx%d; frames "
                            "are scaled to %dx%d", *size, *rgb.shape[1::-1], *size)
            rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        pts = round(src.pts * src.time_base / self.time_base)
        if self.last_pts is not None and pts <= self.last_pts:
            return
        frame = rgb_to_frame(rgb, "yuv420p", self.colour)
        frame.pts, frame.time_base = pts, self.time_base
        self.last_pts = pts
        try:
            self.container.mux(self.stream.encode(frame))
        except av.error.FFmpegError as exc:
            reason = exc.strerror or exc
            raise MediaError(redact_url(f"stream out to {self.url} failed: {reason}")) from None

    def close(self) -> None:
        if self.container is None:
            return
        try:
            assert self.stream is not None
            self.container.mux(self.stream.encode(None))
        except av.error.FFmpegError as exc:
            log.warning("flushing stream out to %s: %s", self.label, redact_url(str(exc)))
        finally:
            self.container.close()


def side_by_side(raw: np.ndarray, derained: np.ndarray) -> np.ndarray:
    """(H, W, 3) raw | de-rained -> (H, 2W, 3) uint8 RGB."""
    return np.concatenate([raw, derained], axis=1)


class WindowSink:
    """An OpenCV window with the de-rained view (optionally input | de-rained side by side).

    ``q`` or Esc in the window (or closing it) stops the run.
    """

    name = "window"
    lossless = False

    def __init__(self, stop: threading.Event, both: bool = False,
                 title: str = "rtderain live") -> None:
        if os.name == "posix" and not (os.environ.get("DISPLAY")
                                       or os.environ.get("WAYLAND_DISPLAY")):
            raise RTDerainError("--show needs a display (DISPLAY is not set); try --serve")
        import cv2

        self.cv2 = cv2
        self.stop_event = stop
        self.both = both
        self.title = title
        self.opened = False

    def write(self, item: OutputFrame) -> None:
        cv2 = self.cv2
        rgb = side_by_side(item.source.rgb, item.derained) if self.both else item.derained
        if not self.opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self.opened = True
        elif cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
            log.info("window closed: stopping")
            self.stop_event.set()
            return
        cv2.imshow(self.title, np.ascontiguousarray(rgb[:, :, ::-1]))
        if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
            log.info("window: quit key pressed, stopping")
            self.stop_event.set()

    def close(self) -> None:
        if self.opened:
            self.cv2.destroyWindow(self.title)
            self.cv2.waitKey(1)
