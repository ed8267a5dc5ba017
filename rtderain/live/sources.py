"""Live sources: webcam index or device, network URLs FFmpeg opens, and files.

One abstraction, :class:`SourceReader`, a thread that opens the source, decodes frames into
a :class:`~rtderain.live.queues.LatestQueue`, and on a dropped or stalled network stream
reconnects with exponential backoff (logged; no frame is ever invented for the gap).

Every frame leaves with a monotonic, gap-preserving timestamp (``pts`` in ``time_base``):
within one connection it is the source's own pts; after a reconnect the new connection is
placed after the old one by the wall-clock gap, so a recording shows the outage as a pause,
not as black or repeated frames.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from rtderain.errors import MediaError
from rtderain.live.capture import (
    AVCapture,
    CVCapture,
    SourceOptions,
    classify,
    open_capture,
)
from rtderain.live.queues import LatestQueue
from rtderain.live.stats import LiveStats
from rtderain.media.colour import ColourInfo
from rtderain.media.reader import i420_planes
from rtderain.util import redact_url

log = logging.getLogger(__name__)

DEFAULT_TIME_BASE = Fraction(1, 90000)
DISCONTINUITY = 5.0  # seconds off the source clock that mean a timestamp jump, not lateness


@dataclass(frozen=True)
class LiveFrame:
    """One decoded frame on its way through the live path.

    The conversion to RGB happens on first access of :attr:`rgb` (in the inference thread),
    so frames replaced in the latest-frame queue are never converted.

    Attributes:
        raw: the decoded frame (``av.VideoFrame``, or a BGR array from OpenCV).
        convert: ``convert(raw, colour)`` -> (H, W, 3) uint8 RGB.
        pts: presentation time in ``time_base`` units, strictly increasing.
        time_base: seconds per ``pts`` tick.
        t_capture: ``time.monotonic()`` when the frame was captured, on the source's clock
            for paced sources (see :meth:`SourceReader._pump`).
        index: running frame number from the source (0-based, across reconnects).
        session: connection number (0 = first connection; +1 per reconnect).
        colour: the source's colour description (matrix, range, tags), for the recording.
    """

    raw: Any
    convert: Callable[[Any, ColourInfo], np.ndarray]
    pts: int
    time_base: Fraction
    t_capture: float
    index: int
    session: int
    colour: ColourInfo

    @functools.cached_property
    def rgb(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB, C-contiguous (converted once, on first use)."""
        return self.convert(self.raw, self.colour)

    @property
    def size(self) -> tuple[int, int]:
        """(H, W), without converting the frame."""
        if isinstance(self.raw, av.VideoFrame):
            return (self.raw.height, self.raw.width)
        return tuple(self.raw.shape[:2])  # type: ignore[return-value]

    def planes(self) -> np.ndarray | None:
        """The decoder's 8-bit 4:2:0 planes as one I420 array (3H/2, W) uint8 (a copy), or
        None for any other frame (another format, an odd size, an OpenCV BGR array)."""
        return i420_planes(self.raw)


class Stamper:
    """Monotonic, gap-preserving output timestamps across reconnects (see module doc)."""

    def __init__(self) -> None:
        self.time_base: Fraction | None = None
        self.last_pts: int | None = None
        self.last_t: float | None = None
        self._offset = 0
        self._first_src: int | None = None
        self._first_t = 0.0
        self._new_session = True

    def new_session(self) -> None:
        self._new_session = True

    def stamp(self, pts: int | None, tb: Fraction | None, t: float) -> int:
        if self.time_base is None:
            self.time_base = tb if (tb is not None and pts is not None) else DEFAULT_TIME_BASE
        out_tb = self.time_base
        if self._new_session:
            self._new_session = False
            self._first_src = pts if (pts is not None and tb is not None) else None
            self._first_t = t
            if self.last_pts is None:
                self._offset = 0
            else:
                gap = max(0.0, t - (self.last_t or t))
                self._offset = self.last_pts + max(1, round(gap / out_tb))
        if self._first_src is not None and pts is not None and tb is not None:
            ticks = round((pts - self._first_src) * tb / out_tb)
        else:
            ticks = round((t - self._first_t) / out_tb)
        out = self._offset + ticks
        if self.last_pts is not None and out <= self.last_pts:
            out = self.last_pts + 1
        self.last_pts, self.last_t = out, t
        return out


class SourceReader(threading.Thread):
    """Thread: open ``source``, decode into ``queue``, reconnect network streams on failure.

    The first connection failing is an error (a typo should not retry forever); after a
    connection has delivered frames, a drop, a stall (``stall_timeout``) or an end of stream
    on a network source triggers reconnects with backoff. A file ends the run at its end.
    ``error`` holds the exception that ended the thread, for the main thread to re-raise.
    The queue is closed when the thread ends.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        queue: LatestQueue[LiveFrame],
        stats: LiveStats,
        stop: threading.Event,
        options: SourceOptions | None = None,
    ) -> None:
        super().__init__(name="rtderain-source", daemon=True)
        self.source = os.fspath(source)
        self.kind = classify(self.source)
        self.queue = queue
        self.stats = stats
        self.stop_event = stop
        self.options = options or SourceOptions()
        self.error: BaseException | None = None
        self._stamper = Stamper()
        self._index = 0
        self._session = -1
        self._capture: AVCapture | CVCapture | None = None
        self.opened = False
        self.size: tuple[int, int] | None = None

    def open(self) -> tuple[int, int] | None:
        """Open the source now (first-connection errors raise here, in the caller's thread).

        Returns the frame (width, height) when the source announces it, else None.
        """
        self._capture = open_capture(self.source, self.kind, self.options)
        self.opened = True
        self.size = self._capture.size
        log.info("opened %s (%s)", self.label, self.kind)
        return self.size

    def close(self) -> None:
        """Close a source opened by :meth:`open` whose thread never started."""
        if self._capture is not None:
            self._capture.close()
            self._capture = None

    @property
    def label(self) -> str:
        """The source with any password hidden, for logs."""
        return redact_url(self.source)

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # handed to the main thread, re-raised there
            self.error = exc
        finally:
            self.stats.set_state("ended")
            self.queue.close()

    def _run(self) -> None:
        capture = self._capture or open_capture(self.source, self.kind, self.options)
        self._capture = None
        lost_at: float | None = None
        failures = 0
        while not self.stop_event.is_set():
            self._session += 1
            self._stamper.new_session()
            if lost_at is not None:
                gap = time.monotonic() - lost_at
                self.stats.on_reconnect(gap)
                log.warning(
                    "reconnected to %s after a %.1f s gap (attempt %d); "
                    "no frames inserted for the gap",
                    self.label, gap, failures,
                )
            self.stats.set_state("live")
            delivered, reason = self._pump(capture)
            capture.close()
            if self.stop_event.is_set():
                return
            if self.kind == "file" and reason == "end of stream":
                if not (self.options.loop and delivered):
                    log.info("%s: end of file", self.label)
                    return
                log.info("%s: end of file, playing it again (--loop)", self.label)
                lost_at = None
                capture = open_capture(self.source, self.kind, self.options)
                continue
            if self.kind == "file":
                raise MediaError(f"{self.label}: {reason}")
            lost_at = self._stamper.last_t or time.monotonic()
            failures = 0 if delivered else failures
            self.stats.set_state("reconnecting")
            log.warning("lost %s: %s", self.label, reason)
            capture = None
            while capture is None and not self.stop_event.is_set():
                failures += 1
                limit = self.options.max_reconnects
                if limit is not None and failures > limit:
                    raise MediaError(f"gave up on {self.label} after {limit} reconnect attempts")
                delay = min(
                    self.options.reconnect_max_delay,
                    self.options.reconnect_delay * 2 ** (failures - 1),
                )
                log.warning(
                    "reconnecting to %s in %.1f s (attempt %d)", self.label, delay, failures
                )
                if self.stop_event.wait(delay):
                    return
                try:
                    capture = open_capture(self.source, self.kind, self.options)
                except MediaError as exc:
                    log.warning("reconnect attempt %d failed: %s", failures, exc)

    def _pump(self, capture: AVCapture | CVCapture) -> tuple[int, str]:
        """Decode until the stream ends or fails; returns (frames delivered, reason).

        Sources with timestamps that run at their own pace (network streams, ``--realtime``
        files) get a capture time on the source's clock: ``wall0 + (pts - pts0) * tb``,
        anchored so no frame is captured "in the future" (an early frame moves the anchor).
        A frame already ``late_threshold`` behind that clock when decoded is dropped
        before RGB conversion (counted as stale): the decoder catches up instead of
        falling further behind. Realtime files wait until each frame is due.
        """
        delivered = 0
        wall0: float | None = None
        pts0 = 0
        paced_kind = self.kind == "network" or (self.kind == "file" and self.options.realtime)
        try:
            for raw, pts, tb, colour in capture.frames():
                if self.stop_event.is_set():
                    return delivered, "stopped"
                t = time.monotonic()
                if paced_kind and pts is not None and tb:
                    if wall0 is None:
                        wall0, pts0 = t, pts
                    due = wall0 + float((pts - pts0) * tb)
                    if due > t and self.kind == "file":
                        if self.stop_event.wait(due - t):
                            return delivered, "stopped"
                    elif due > t or t - due > DISCONTINUITY:
                        wall0, due = t - float((pts - pts0) * tb), t  # re-anchor
                    self.stats.on_capture(due)
                    if time.monotonic() - due > self.options.late_threshold:
                        self.stats.on_stale()
                        continue
                    t = due
                else:
                    self.stats.on_capture(t)
                frame = LiveFrame(
                    raw=raw,
                    convert=capture.to_rgb,
                    pts=self._stamper.stamp(pts, tb, t),
                    time_base=self._stamper.time_base or DEFAULT_TIME_BASE,
                    t_capture=t,
                    index=self._index,
                    session=self._session,
                    colour=colour,
                )
                self._index += 1
                delivered += 1
                while not self.queue.put(frame, timeout=0.2):
                    if self.stop_event.is_set() or self.queue.closed:
                        return delivered, "stopped"
            return delivered, "end of stream"
        except av.error.FFmpegError as exc:
            return delivered, redact_url(f"{type(exc).__name__}: {exc.strerror or exc}")
        except OSError as exc:
            return delivered, redact_url(f"{type(exc).__name__}: {exc}")
