"""The two reference points of every table: the rainy input, and a temporal median."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from rtderain.errors import RTDerainError
from rtderain.evaluation.baselines.window import check_frame, sliding_windows


class Identity:
    """Returns the rainy input unchanged (the "rainy input" row of a results table)."""

    name = "identity"
    temporal = False

    def params(self) -> dict:
        return {}

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for i, frame in enumerate(frames):
            check_frame(frame, i, None)
            yield frame


class TemporalMedian:
    """Per-pixel, per-channel median over a centred window of ``size`` frames.

    Rain covers a pixel in few frames, so the median keeps the background where the scene is
    static (and blurs motion). Window edges: see :mod:`rtderain.evaluation.baselines.window`.
    An even ``size`` is allowed (median of an even count = mean of the two middle values).
    """

    name = "temporal-median"
    temporal = True

    def __init__(self, size: int = 5) -> None:
        if size < 1:
            raise RTDerainError(f"temporal median window must be >= 1, got {size}")
        self.size = size

    def params(self) -> dict:
        return {"size": self.size}

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for window, _ in sliding_windows(frames, self.size):
            if len(window) % 2:
                # uint8 odd-count median is exact; np.median would go through float64.
                yield np.partition(window, len(window) // 2, axis=0)[len(window) // 2]
            else:
                yield np.round(np.median(window, axis=0)).astype(np.uint8)
