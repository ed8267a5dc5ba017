"""The live loop: source thread -> latest-frame queue -> de-rain -> sink threads.

:func:`run_live` owns the threads: it starts the source reader and one worker per sink,
runs inference in the calling thread, and on the end of the source, a duration or frame
limit, a sink error, ``stop`` being set (window ``q``, SIGTERM) or Ctrl-C, stops the
reader, drains and closes every sink (the recording becomes a valid file), joins the
threads with timeouts and re-raises the first error.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rtderain.backends.base import Engine, takes_planes
from rtderain.errors import RTDerainError
from rtderain.live.capture import SourceOptions
from rtderain.live.queues import Closed, LatestQueue
from rtderain.live.sinks import OutputFrame, Sink, SinkWorker
from rtderain.live.sources import LiveFrame, SourceReader
from rtderain.live.stats import LiveStats, StatsSnapshot
from rtderain.media.batching import derain_frames, derain_planes
from rtderain.temporal import TemporalSettings, TemporalStage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    """Settings of one live run.

    Attributes:
        source: how the source is opened and kept (see :class:`SourceOptions`).
        max_latency: seconds; a frame that would come out later than this after its
            capture (its age plus the recent inference time) is dropped before inference
            and counted as stale. None: only the latest-frame queue limits latency.
        queue_size: frames the source queue holds (1 = always the newest frame).
        duration: stop after this many seconds (None: until the source ends or Ctrl-C).
        max_frames: stop after this many de-rained frames.
        stats_interval: seconds between ``on_stats`` calls.
        temporal: the temporal stage, causal (past frames only: it never waits for a
            future frame) or None/``off``. A size change or a scene cut (e.g. a camera
            that comes back pointing elsewhere) resets it.
        planes: the YUV-native path where it applies (a luma network such as
            ``mgid-lite``, 8-bit 4:2:0 frames of even size): Y is de-rained (and fused by
            the causal stage) in the decoder's planes and a recording takes them as they
            are.
    """

    source: SourceOptions = field(default_factory=SourceOptions)
    max_latency: float | None = None
    queue_size: int = 1
    duration: float | None = None
    max_frames: int | None = None
    stats_interval: float = 5.0
    temporal: TemporalSettings | None = None
    planes: bool = True

    def __post_init__(self) -> None:
        if self.temporal is not None and self.temporal.mode == "window":
            raise RTDerainError(
                "live sources take --temporal causal or off (window waits for future frames)"
            )


def derain_frame(engine: Engine, rgb: np.ndarray) -> np.ndarray:
    """De-rain one (H, W, 3) uint8 RGB frame: pad to ``engine.multiple`` (reflect), infer,
    crop. Returns (H, W, 3) uint8 RGB."""
    return derain_frames(engine, rgb[None])[0]


class _LatencyGuard:
    """Decides whether a frame is too old to be worth de-raining (see ``max_latency``).

    A frame is stale when its age plus the slowest of the last few inference times would
    exceed the bound (a conservative prediction of when it would come out).
    """

    def __init__(self, max_latency: float | None) -> None:
        self.max_latency = max_latency
        self.recent: collections.deque[float] = collections.deque(maxlen=10)
        self._warned = False

    def stale(self, frame: LiveFrame, now: float) -> bool:
        if self.max_latency is None:
            return False
        predicted = max(self.recent, default=0.0)
        if predicted >= self.max_latency:
            if not self._warned:
                self._warned = True
                log.warning(
                    "inference takes %.0f ms, more than --max-latency %.0f ms: "
                    "the bound cannot be met", predicted * 1e3, self.max_latency * 1e3,
                )
            return False
        return now - frame.t_capture + predicted > self.max_latency

    def record(self, seconds: float) -> None:
        self.recent.append(seconds)


def make_reader(
    source: str | os.PathLike, options: LiveOptions, stats: LiveStats, stop: threading.Event
) -> SourceReader:
    """The source thread for ``source`` with its latest-frame queue (not started, not open).

    Files read without ``realtime`` keep every frame (their queue blocks instead of
    dropping); everything else drops the oldest frame when inference falls behind.
    """
    queue: LatestQueue[LiveFrame] = LatestQueue(options.queue_size, drop=True)
    reader = SourceReader(source, queue, stats, stop, options.source)
    if reader.kind == "file" and not options.source.realtime:
        queue.drop = False
    return reader


def run_live(
    source: str | os.PathLike | SourceReader,
    engine: Engine,
    sinks: Sequence[Sink],
    options: LiveOptions | None = None,
    stats: LiveStats | None = None,
    stop: threading.Event | None = None,
    on_stats: Callable[[StatsSnapshot], None] | None = None,
    engine_for: Callable[[int, int], Engine] | None = None,
) -> StatsSnapshot:
    """De-rain ``source`` live into ``sinks`` until it ends or is stopped; returns the stats.

    ``source`` is a source string, or a :class:`SourceReader` (made with the same ``stats``,
    ``stop`` and queue options) that may already be opened, e.g. to learn the frame size
    before building the engine.

    A frame size that changes (a camera changing mode, a reconnect at a new size) gets the
    engine ``engine_for(height, width)`` (None: ``engine`` takes every size); the sinks
    write each frame at its size where they can, else scale it (one warning).

    Ctrl-C (KeyboardInterrupt) in the calling thread is a normal stop. Errors of the source
    (e.g. the first connection failing, or giving up reconnecting) and of the sinks are
    re-raised after everything is closed.
    """
    options = options or LiveOptions()
    stats = stats or LiveStats()
    stop = stop or threading.Event()
    workers = [SinkWorker(sink, stop) for sink in sinks]
    guard = _LatencyGuard(options.max_latency)
    temporal = options.temporal
    stage = TemporalStage(settings=temporal) if temporal and temporal.mode != "off" else None
    reader: SourceReader | None = source if isinstance(source, SourceReader) else None
    engines: dict[tuple[int, int], Engine] = {}
    try:
        if reader is None:
            reader = make_reader(os.fspath(source), options, stats, stop)
        size = reader.size if reader.opened else reader.open()
        if size is not None:
            engines[(size[1], size[0])] = engine
            t0 = time.monotonic()
            derain_frame(engine, np.zeros((size[1], size[0], 3), np.uint8))
            log.info("engine warm-up at %dx%d: %.2f s", *size, time.monotonic() - t0)
    except BaseException:
        if reader is not None:
            reader.close()
        for sink in sinks:
            sink.close()
        raise
    log.info("live: %s -> %s with %s", reader.label,
             ", ".join(s.name for s in sinks) or "no sink", engine.description)
    queue = reader.queue
    for worker in workers:
        worker.start()
    stats.restart_clock()
    reader.start()
    t_start = time.monotonic()
    next_stats = t_start + options.stats_interval
    try:
        while not stop.is_set():
            now = time.monotonic()
            if options.duration is not None and now - t_start >= options.duration:
                break
            if on_stats is not None and now >= next_stats:
                next_stats = now + options.stats_interval
                stats.queue_dropped = queue.dropped
                on_stats(stats.snapshot())
            try:
                frame = queue.get(timeout=0.1)
            except Closed:
                break
            if frame is None:
                continue
            if guard.stale(frame, time.monotonic()):
                stats.on_stale()
                continue
            t0 = time.monotonic()
            shape = frame.size
            if shape not in engines:
                if engines:
                    log.info("live: frame size now %dx%d", shape[1], shape[0])
                engines[shape] = engine if engine_for is None or not engines else engine_for(
                    *shape)
            # YUV-native (a luma network, a 4:2:0 frame): Y alone is de-rained (and fused
            # by the causal stage) in the decoder's planes, RGB is made only for a sink
            # that needs it.
            planes = (frame.planes() if options.planes and takes_planes(engines[shape])
                      else None)
            if planes is not None:
                h = shape[0]
                rainy = planes[:h].copy() if stage is not None else None
                derain_planes(engines[shape], [planes], frame.colour.color_range == 2)
                if stage is not None:  # the stage keeps its own copies as past frames
                    [(y, _)] = stage.push(rainy, planes[:h].copy())
                    planes[:h] = y
                derained, layout = planes, "i420"
            else:
                derained, layout = derain_frame(engines[shape], frame.rgb), "rgb"
                if stage is not None:
                    [(derained, _)] = stage.push(frame.rgb, derained)  # causal: its own frame
            t_out = time.monotonic()
            guard.record(t_out - t0)
            stats.queue_dropped = queue.dropped
            stats.on_output(frame.t_capture, t_out)
            item = OutputFrame(frame, derained, t_out, layout)
            for worker in workers:
                worker.submit(item)
            if options.max_frames is not None and stats.processed >= options.max_frames:
                break
    except KeyboardInterrupt:
        log.warning("interrupted: closing the source and every sink")
    finally:
        stats.stop_clock()
        stop.set()
        queue.close()
        reader.join(10)
        if reader.is_alive():
            log.error("source thread did not stop within 10 s")
        for worker in workers:
            worker.finish()
    stats.queue_dropped = queue.dropped
    summary = stats.snapshot()
    errors = [reader.error] + [w.error for w in workers]
    for err in errors:
        if err is not None:
            raise err
    return summary
