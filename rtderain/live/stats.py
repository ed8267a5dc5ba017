"""Live statistics: frame counters, fps and latency percentiles (thread-safe)."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import asdict, dataclass

import numpy as np

# The next faster network of each (docs/live.md: mgid-lite keeps up with a 1080p camera).
FASTER = {"mgid": "mgid-rt", "mgid-rt": "mgid-lite"}


@dataclass(frozen=True)
class StatsSnapshot:
    """One consistent view of the counters (seconds for times, frames per second for fps).

    ``fps_in``/``fps_out`` cover the last couple of seconds (0 while stalled);
    ``mean_fps_in``/``mean_fps_out`` the whole run so far.
    """

    captured: int
    processed: int
    dropped: int
    stale: int
    reconnects: int
    gap_seconds: float
    fps_in: float
    fps_out: float
    latency_p50: float
    latency_p95: float
    latency_max: float
    mean_fps_in: float
    mean_fps_out: float
    elapsed: float
    source_state: str

    def as_dict(self) -> dict:
        return asdict(self)

    def keep_up_hint(self, model: str, temporal: str) -> str | None:
        """One line for a run that fell behind (over 10 % of at least 30 captured frames
        dropped or stale): what would keep up; None when it kept up."""
        lost = self.dropped + self.stale
        if self.captured < 30 or lost <= 0.1 * self.captured:
            return None
        faster = [f"--model {FASTER[model]}"] if model in FASTER else []
        if temporal != "off":
            faster.append("--temporal off")
        advice = f"; faster: {' or '.join(faster)}" if faster else ""
        return (f"hint: {100 * lost / self.captured:.0f} % of the frames were dropped, the "
                f"network did not keep up with the source{advice} (docs/live.md)")

    def line(self, mean: bool = False) -> str:
        """One human line: recent fps for the periodic status, ``mean`` for the summary."""
        fin, fout = (self.mean_fps_in, self.mean_fps_out) if mean else (self.fps_in, self.fps_out)
        return (
            f"in {self.captured} ({fin:.1f} fps), out {self.processed} "
            f"({fout:.1f} fps), dropped {self.dropped + self.stale}, "
            f"latency p50 {self.latency_p50 * 1000:.0f} ms p95 {self.latency_p95 * 1000:.0f} ms, "
            f"reconnects {self.reconnects}"
        )


class LiveStats:
    """Counters of the live path.

    ``latency`` is capture -> output: from the moment the source delivered a decoded frame
    (or, for ``--realtime`` files, the moment the frame was due) to the moment its
    de-rained version was handed to the sinks. Percentiles cover the last ``window`` frames;
    fps covers the last ``fps_window`` seconds.
    """

    def __init__(self, window: int = 600, fps_window: float = 2.0) -> None:
        self._lock = threading.Lock()
        self._latencies: collections.deque[float] = collections.deque(maxlen=window)
        self._t_in: collections.deque[float] = collections.deque(maxlen=4096)
        self._t_out: collections.deque[float] = collections.deque(maxlen=4096)
        self._fps_window = fps_window
        self._start = time.monotonic()
        self._end: float | None = None
        self.captured = 0
        self.processed = 0
        self.stale = 0
        self.reconnects = 0
        self.gap_seconds = 0.0
        self.source_state = "starting"
        self.queue_dropped = 0  # mirrored from the queues by the runner

    def restart_clock(self) -> None:
        """Count ``elapsed`` from now (after opening the source and warming up the engine)."""
        with self._lock:
            self._start = time.monotonic()
            self._end = None

    def stop_clock(self) -> None:
        """Freeze ``elapsed`` (the run is over; closing the sinks does not count)."""
        with self._lock:
            self._end = self._end or time.monotonic()

    def on_capture(self, t: float) -> None:
        with self._lock:
            self.captured += 1
            self._t_in.append(t)

    def on_output(self, t_capture: float, t_out: float) -> None:
        with self._lock:
            self.processed += 1
            self._t_out.append(t_out)
            self._latencies.append(max(0.0, t_out - t_capture))

    def on_stale(self) -> None:
        with self._lock:
            self.stale += 1

    def on_reconnect(self, gap: float) -> None:
        with self._lock:
            self.reconnects += 1
            self.gap_seconds += gap

    def set_state(self, state: str) -> None:
        with self._lock:
            self.source_state = state

    def _fps(self, times: collections.deque[float], now: float) -> float:
        recent = [t for t in times if now - t <= self._fps_window]
        if len(recent) < 2:
            return 0.0
        span = recent[-1] - recent[0]
        return (len(recent) - 1) / span if span > 0 else 0.0

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            now = self._end or time.monotonic()
            elapsed = max(now - self._start, 1e-9)
            lat = np.asarray(self._latencies, dtype=np.float64)
            p50, p95, pmax = (
                (float(np.percentile(lat, 50)), float(np.percentile(lat, 95)), float(lat.max()))
                if lat.size
                else (0.0, 0.0, 0.0)
            )
            return StatsSnapshot(
                captured=self.captured,
                processed=self.processed,
                dropped=self.queue_dropped,
                stale=self.stale,
                reconnects=self.reconnects,
                gap_seconds=round(self.gap_seconds, 3),
                fps_in=self._fps(self._t_in, now),
                fps_out=self._fps(self._t_out, now),
                latency_p50=p50,
                latency_p95=p95,
                latency_max=pmax,
                mean_fps_in=self.captured / elapsed,
                mean_fps_out=self.processed / elapsed,
                elapsed=elapsed,
                source_state=self.source_state,
            )
