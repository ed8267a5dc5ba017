"""Hand-off between the file pipeline's threads, and the temporal stage's own thread.

Queues are bounded; :func:`put` and :func:`get` give up when the shared ``stop`` event is
set, so no thread hangs once another has failed. :class:`End` marks the end of a stream
and :class:`Failed` carries a worker's exception to the calling thread.

:class:`StageWorker` runs the temporal stage between inference and the encoder. On a CPU
the engine computes in the calling thread, so with the stage there too the two took
turns (the stage on one core while the other waited); in its own thread the stage fuses
batch k while the engine computes batch k+1. Order is kept: one thread, one FIFO queue.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import numpy as np

from rtderain.media.reader import DecodedFrame
from rtderain.temporal import TemporalSettings, TemporalStage


class End:
    """End-of-stream marker."""


class Failed:
    """Carries an exception from a worker thread to the calling thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def put(q: queue.Queue, item: Any, stop: threading.Event) -> None:
    """Blocking put that gives up when ``stop`` is set (so no thread hangs at exit)."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return
        except queue.Full:
            continue


def get(q: queue.Queue, stop: threading.Event) -> Any:
    """Blocking get; an :class:`End` once ``stop`` is set and nothing is left."""
    while True:
        try:
            return q.get(timeout=0.1)
        except queue.Empty:
            if stop.is_set():
                return End()


def new_stage(settings: TemporalSettings | None) -> TemporalStage | None:
    """The stage of ``settings``; None when it is off."""
    if settings is None or settings.mode == "off":
        return None
    return TemporalStage(settings=settings)


def describe_temporal(settings: TemporalSettings | None) -> str:
    """``off``, ``window r2`` or ``causal r2``: the temporal stage in a summary line."""
    if settings is None or settings.mode == "off":
        return "off"
    return f"{settings.mode} r{settings.resolved().radius}"


def fuse_batch(
    stage: TemporalStage, inputs: list[DecodedFrame], outputs: list[DecodedFrame]
) -> list[DecodedFrame]:
    """What the temporal stage releases after this batch (in order, each with its own
    pts). I420 frames are fused in their Y planes (a luma network's rain is grey)."""
    final = []
    for src, out in zip(inputs, outputs, strict=True):
        if out.layout == "i420":
            h = out.size[0]
            pushed = stage.push(src.pixels[:h], out.pixels[:h], out)
        else:
            pushed = stage.push(src.pixels, out.pixels, out)
        final += [fused_frame(pixels, item) for pixels, item in pushed]
    return final


def fused_frame(pixels: np.ndarray, item: DecodedFrame) -> DecodedFrame:
    """The output frame of the stage's result for ``item``: RGB as it is; for an I420
    frame the fused Y over the frame's own chroma, in a new array (the stage may still
    read ``item``'s Y as a neighbour)."""
    if item.layout != "i420":
        return DecodedFrame(item.index, pixels, item.pts)
    h = item.size[0]
    return DecodedFrame(item.index, np.concatenate((pixels, item.pixels[h:])), item.pts, "i420")


class StageWorker:
    """The temporal stage in its own thread: :meth:`submit` a batch's rainy inputs and
    network outputs, :meth:`finish` at the end of the stream (the stage's last frames
    follow); the fused frames go to ``out_q`` in order. An error is stored in
    ``state["error"]`` and sets ``stop``, as the pipeline's other threads do."""

    def __init__(self, stage: TemporalStage, out_q: queue.Queue, stop: threading.Event,
                 state: dict[str, Any]) -> None:
        self.stage, self.out_q, self.stop, self.state = stage, out_q, stop, state
        self._q: queue.Queue = queue.Queue(maxsize=2)  # batches waiting: bounded memory
        self._thread = threading.Thread(target=self._run, name="rtderain-temporal",
                                        daemon=True)
        self._thread.start()

    def submit(self, inputs: list[DecodedFrame], outputs: list[DecodedFrame]) -> None:
        put(self._q, (inputs, outputs), self.stop)

    def finish(self) -> None:
        """Flush the stage and wait for its last frame to be queued for the encoder."""
        put(self._q, End(), self.stop)
        self._thread.join()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                item = get(self._q, self.stop)
                if isinstance(item, End):
                    break
                for frame in fuse_batch(self.stage, *item):
                    put(self.out_q, frame, self.stop)
            if not self.stop.is_set():
                for pixels, frame in self.stage.flush():
                    put(self.out_q, fused_frame(pixels, frame), self.stop)
        except BaseException as exc:  # handed to the calling thread
            self.state["error"] = exc
            self.stop.set()
