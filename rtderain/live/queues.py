"""Bounded queues for the live path: the newest frame wins, drops are counted."""

from __future__ import annotations

import collections
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class Closed(Exception):
    """Raised by :meth:`LatestQueue.get` once the queue is closed and empty."""


class LatestQueue(Generic[T]):
    """A bounded FIFO whose ``put`` drops the oldest item when full (``drop=True``).

    With ``drop=False`` a full queue blocks the producer instead (files read faster than
    real time: every frame is kept). ``dropped`` counts the items thrown away.

    Args:
        maxsize: capacity (>= 1).
        drop: drop the oldest item when full instead of blocking.
    """

    def __init__(self, maxsize: int = 1, drop: bool = True) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self.drop = drop
        self.dropped = 0
        self._items: collections.deque[T] = collections.deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item: T, timeout: float | None = None) -> bool:
        """Add ``item``; returns False if the queue is closed (or a blocking put timed out)."""
        with self._cond:
            if not self.drop:
                ok = self._cond.wait_for(
                    lambda: self._closed or len(self._items) < self.maxsize, timeout
                )
                if not ok:
                    return False
            if self._closed:
                return False
            while len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> T | None:
        """The oldest item; None on timeout; raises :class:`Closed` when closed and empty."""
        with self._cond:
            self._cond.wait_for(lambda: self._closed or self._items, timeout)
            if self._items:
                item = self._items.popleft()
                self._cond.notify_all()
                return item
            if self._closed:
                raise Closed
            return None

    def close(self) -> None:
        """No more puts; getters drain what is left, then see :class:`Closed`."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
