"""The file pipeline: threaded decode -> batched inference -> threaded encode.

::

    source thread                 calling thread                     sink thread
    VideoReader.frames  --q-->    batch N, pad, engine.infer, crop  --q-->  VideoWriter
                                        |                            ^
                                        +--q--> temporal thread --q--+  (with a stage)
    copied packets ---------------------------------------------------q-->  (muxed as-is)

A batch never mixes frame sizes: a size change mid-stream (concatenated TS, a camera
changing mode) ends the batch, and the new size gets its own engine (``engine_for``).
Queues are bounded (frames block, none is dropped), each carries an end marker or the
error that stopped its thread, which the calling thread re-raises. The output is renamed
into place only after the encoder is flushed; on any error or Ctrl-C it is removed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtderain.backends.base import Engine, takes_planes
from rtderain.errors import MediaError
from rtderain.media.batching import derain_frames, derain_planes, submit_frames
from rtderain.media.colour import frame_to_rgb, planes_to_frame, rgb_to_frame
from rtderain.media.reader import DecodedFrame, VideoReader, planar_source
from rtderain.media.streams import StreamPlan, plan_streams, report_dropped
from rtderain.media.threads import (
    End,
    Failed,
    StageWorker,
    describe_temporal,
    get,
    new_stage,
    put,
)
from rtderain.media.writer import EncodeOptions, VideoWriter, check_container, check_copies
from rtderain.temporal import TemporalSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PipelineOptions:
    """Settings of :func:`derain_video`.

    Attributes:
        batch: frames per inference call (throughput only; the model is per frame).
        queue_frames: capacity of each frame queue (bounds memory whatever the length).
        encode: encoder settings.
        temporal: the temporal stage after the network (:mod:`rtderain.temporal`); None
            or mode ``off``: every frame on its own. ``window`` holds ``radius`` frames of
            look-ahead (memory stays bounded), every frame is still written once, in
            order, with its own pts.
        overwrite: the finished output may replace a file at the output path; without it
            the final rename never replaces one (not even one created during the run).
        strict: a stream of the input that the output cannot keep is an error before any
            work (else one warning each; see :mod:`rtderain.media.streams`).
        planes: the YUV-native path where it applies: a luma network's engine
            (``luma_planes``), an 8-bit 4:2:0 source of even size, a ``yuv420p`` output.
            Frames then stay in the decoder's planes, the network reads and changes Y
            alone, the temporal stage (if any) fuses the Y planes, and the encoder takes
            them as they are (no conversion to RGB and back:
            :func:`rtderain.media.batching.derain_planes`).
    """

    batch: int = 1
    queue_frames: int = 8
    encode: EncodeOptions = EncodeOptions()
    temporal: TemporalSettings | None = None
    overwrite: bool = False
    strict: bool = False
    planes: bool = True


@dataclass
class Summary:
    """What a run did."""

    input: Path
    output: Path
    frames: int
    seconds: float
    undecodable: int
    copied_streams: int
    engine: str
    colour: str
    temporal: str = "off"
    truncated: int = 0  # frames missing from a truncated input (0: complete)
    planes: bool = False  # the YUV-native path ran

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else float("nan")

    def line(self) -> str:
        extra = f", {self.undecodable} undecodable packets skipped" if self.undecodable else ""
        return (
            f"{self.output}: {self.frames} frames in {self.seconds:.1f} s ({self.fps:.1f} fps), "
            f"{self.engine}{', YUV-native' if self.planes else ''}, temporal {self.temporal}, "
            f"{self.copied_streams} stream(s) copied, "
            f"{self.colour}{extra}"
            + (f", truncated: about {self.truncated} frames missing" if self.truncated else "")
        )


def derain_video(
    input_path: str | Path,
    output_path: str | Path,
    engine: Engine,
    options: PipelineOptions = PipelineOptions(),
    progress: Callable[[int, int], None] | None = None,
    engine_for: Callable[[int, int], Engine] | None = None,
) -> Summary:
    """De-rain ``input_path`` into ``output_path`` with ``engine``.

    Every decodable frame is written with its source pts; audio and subtitle streams are
    copied as packets; colour matrix, range and bit depth are kept.

    Args:
        progress: called as ``progress(frames_done, frames_total_estimate)`` after each batch.
        engine_for: ``engine_for(height, width)``, the engine for frames of another size
            than the first (a size change mid-stream); None: ``engine`` takes every size.
    Raises:
        MediaError: unreadable input, no video stream, nothing decodable, write failure.
    """
    check_container(options.encode, output_path)
    start = time.perf_counter()
    reader = VideoReader(input_path)
    try:
        plan = plan_streams(reader, Path(output_path))
        report_dropped(plan, input_path, output_path, strict=options.strict)
        check_copies(plan.copy, output_path)  # before any frame is de-rained
    except BaseException:
        reader.close()
        raise
    reader.copy_streams = plan.copy
    reader.planes = options.planes and _planar(reader, engine, options)
    stop = threading.Event()
    frames_q: queue.Queue = queue.Queue(maxsize=options.queue_frames)
    out_q: queue.Queue = queue.Queue(maxsize=options.queue_frames)
    # Copied packets: unbounded, but the source blocks on frames_q, so this holds at most
    # the packets demuxed alongside a queue's worth of video.
    packets_q: queue.Queue = queue.Queue()
    state: dict[str, Any] = {"writer": None}
    stage = new_stage(options.temporal)
    worker: StageWorker | None = None

    def source() -> None:
        try:
            for frame in reader.frames(on_packet=packets_q.put):
                put(frames_q, frame, stop)
                if stop.is_set():
                    return
            put(frames_q, End(), stop)
        except BaseException as exc:  # handed to the calling thread
            put(frames_q, Failed(exc), stop)

    def sink() -> None:
        pending: list[Any] = []
        try:
            while True:
                item = get(out_q, stop)
                writer = state["writer"]
                while True:  # copied packets first: the muxer interleaves by timestamp
                    try:
                        pending.append(packets_q.get_nowait())
                    except queue.Empty:
                        break
                if isinstance(item, End):
                    break
                if writer is None:
                    writer = state["writer"] = _open_writer(output_path, reader, item, options,
                                                                plan)
                for packet in pending:
                    writer.mux(packet)
                pending.clear()
                writer.write(item.pixels, item.pts, item.layout)
            if state["writer"] is not None and not stop.is_set():
                for packet in pending:
                    state["writer"].mux(packet)
        except BaseException as exc:
            state["error"] = exc
            stop.set()

    threads = [
        threading.Thread(target=source, name="rtderain-decode", daemon=True),
        threading.Thread(target=sink, name="rtderain-encode", daemon=True),
    ]
    for t in threads:
        t.start()
    if stage is not None:
        worker = StageWorker(stage, out_q, stop, state)
    done = 0
    engines = {(reader.height, reader.width): engine}
    pending: tuple[list[DecodedFrame], Callable[[], Any]] | None = None
    try:
        ended = False
        held: DecodedFrame | None = None  # the first frame of a new size: the next batch's
        while not ended:
            batch: list[DecodedFrame] = [held] if held is not None else []
            held = None
            while len(batch) < options.batch:
                item = get(frames_q, stop) if not batch else _poll(frames_q)
                if item is None:
                    break
                if isinstance(item, Failed):
                    raise item.exc
                if isinstance(item, End):
                    ended = True
                    break
                if batch and (item.pixels.shape, item.layout) != (batch[0].pixels.shape,
                                                                  batch[0].layout):
                    held = item
                    break
                batch.append(item)
            if "error" in state:
                raise state["error"]
            queued = None
            if batch:
                size = batch[0].size
                if size not in engines:
                    log.log(logging.INFO if done else logging.DEBUG, "%s: frame %d is %dx%d",
                            input_path, batch[0].index, *size[::-1])
                    engines[size] = engine_for(*size) if engine_for is not None else engine
                # One batch in flight: batch k+1 is queued (uploading, computing on a GPU)
                # before batch k is collected, encoded and the next one decoded.
                queued = (batch, _submit(engines[size], batch, reader,
                                         keep_input=stage is not None))
            if pending is not None:
                done += _emit(worker, *pending, out_q, stop)
                if progress:
                    progress(done, reader.frame_count)
            pending = queued
        if pending is not None:
            done += _emit(worker, *pending, out_q, stop)
            if progress:
                progress(done, reader.frame_count)
        if worker is not None:
            worker.finish()  # a stage error sets stop: the sink ends, and it is raised below
        put(out_q, End(), stop)
        threads[1].join()
        if "error" in state:
            raise state["error"]
        writer = state["writer"]
        if writer is None:
            raise MediaError(f"{input_path}: no frame could be decoded")
        writer.close()
    except BaseException:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        if worker is not None:
            worker.join(timeout=5)
        if state["writer"] is not None:
            state["writer"].abort()
        raise
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=5)
        reader.close()
    return Summary(
        input=Path(input_path),
        output=Path(output_path),
        frames=writer.frames,
        seconds=time.perf_counter() - start,
        undecodable=reader.undecodable,
        copied_streams=plan.kept,
        engine=engine.description,
        colour=reader.colour.describe() if reader.colour else "unknown colour",
        temporal=describe_temporal(options.temporal),
        truncated=reader.truncated,
        planes=reader.planes,
    )


def _planar(reader: VideoReader, engine: Engine, options: PipelineOptions) -> bool:
    """Whether the YUV-native path applies (see :attr:`PipelineOptions.planes`)."""
    return (
        takes_planes(engine)
        and planar_source(reader)
        and options.encode.pix_fmt in (None, "", "yuv420p")
    )


def _submit(engine: Engine, batch: list[DecodedFrame], reader: VideoReader,
            keep_input: bool = False) -> Callable[[], Any]:
    """Queue one batch of one size and layout; calling the result gives its frames' pixels
    in the batch's layout. I420 batches run in their planes where ``engine`` can (an engine
    for a later frame size may not: tiles), else through RGB and back. The planes are
    de-rained in place unless ``keep_input`` (the temporal stage reads the rainy Y)."""
    pixels = [f.pixels for f in batch]
    if batch[0].layout != "i420":
        return submit_frames(engine, pixels)
    assert reader.colour is not None
    colour = reader.colour
    if takes_planes(engine):
        frames = [p.copy() for p in pixels] if keep_input else pixels
        out = derain_planes(engine, frames, full_range=colour.color_range == 2)
        return lambda: out
    rgb = derain_frames(engine, [frame_to_rgb(planes_to_frame(p, colour), colour) for p in pixels])
    planar = [rgb_to_frame(f, "yuv420p", colour).to_ndarray() for f in rgb]
    return lambda: planar


def _poll(q: queue.Queue) -> Any:
    """Next item if one is ready now (fill a batch without waiting for a slow decoder)."""
    try:
        return q.get(timeout=0.005)
    except queue.Empty:
        return None


def _emit(
    worker: StageWorker | None,
    batch: list[DecodedFrame],
    result: Callable[[], Any],
    out_q: queue.Queue,
    stop: threading.Event,
) -> int:
    """Collect a submitted batch and hand its frames to the temporal stage's thread, or
    with no stage to the encoder; returns N."""
    out = result()
    frames = [DecodedFrame(f.index, out[i], f.pts, f.layout) for i, f in enumerate(batch)]
    if worker is not None:
        worker.submit(batch, frames)
    else:
        for item in frames:
            put(out_q, item, stop)
    return len(batch)


def _open_writer(
    output_path: str | Path, reader: VideoReader, first: DecodedFrame, options: PipelineOptions,
    plan: StreamPlan,
) -> VideoWriter:
    if reader.colour is None:
        raise RuntimeError("colour unknown before the first frame (a bug)")
    h, w = first.size
    return VideoWriter(
        output_path,
        width=w,
        height=h,
        time_base=reader.time_base,
        frame_rate=reader.frame_rate,
        colour=reader.colour,
        options=options.encode,
        copy_streams=plan.copy,
        attachments=plan.attachments,
        timecode=plan.timecode,
        overwrite=options.overwrite,
    )
