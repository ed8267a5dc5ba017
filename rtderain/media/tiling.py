"""Tiled inference: an engine built for one tile shape de-rains frames of any larger size.

The same wrapper also bounds the batch of engines that take any batch (torch): frames, or
tiles, go to the inner engine ``chunk`` at a time, as the memory plan says.

A frame too large for the memory budget (:mod:`rtderain.resources`) is cut into tiles that
overlap by ``overlap`` pixels; each tile goes through the inner engine, and the outputs are
blended back with weights that ramp linearly across every overlap (and stay 1 at the
frame's own borders), so no seam shows. The network is fully convolutional: away from a
tile's border its output equals the untiled one, and the ramp hides what is left near the
borders (``tests/core/test_tiling.py`` measures tiled against untiled frames).

Tiles always have the inner engine's fixed shape (one engine build for every frame size);
only the last tile of a row or column is shifted back so that it ends at the frame's edge.
Memory: one frame's tiles and one float accumulator at a time, whatever the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rtderain.backends.base import Engine, FrameEngine, concat_batches
from rtderain.resources import OVERLAP, tile_starts


def _ramp(size: int, start: int, length: int, overlap: int) -> np.ndarray:
    """1-D blending weight of one tile: rising over the overlap it shares with the tile
    before it, falling over the next one; 1 at the frame's borders."""
    w = np.ones(size, np.float32)
    if overlap <= 0:
        return w
    ramp = (np.arange(overlap, dtype=np.float32) + 0.5) / overlap
    n = min(overlap, size)
    if start > 0:
        w[:n] = np.minimum(w[:n], ramp[:n])
    if start + size < length:
        w[size - n:] = np.minimum(w[size - n:], ramp[:n][::-1])
    return w


def _chunked(fn: Callable[[Any], Any], x: Any, chunk: int) -> Any:
    """``fn`` on ``x`` at most ``chunk`` items (batch first) at a time, outputs joined
    (unlike :func:`rtderain.backends.base.run_fixed_batch`, the last chunk is not padded)."""
    if len(x) <= chunk:
        return fn(x)
    return concat_batches([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])


class TiledEngine:
    """``inner``, built for (tile_h, tile_w), run ``chunk`` tiles at a time on larger
    frames (frames no larger than a tile: ``chunk`` frames at a time, untouched)."""

    def __init__(self, inner: Engine, tile: tuple[int, int], overlap: int = OVERLAP,
                 chunk: int = 1):
        self.inner, self.tile, self.chunk = inner, tile, max(1, chunk)
        self.overlap = max(0, min(overlap, min(tile) // 4))
        self.name, self.device, self.multiple = inner.name, inner.device, inner.multiple
        self.selection = getattr(inner, "selection", "")
        self.description = (f"{inner.description}, tiles {tile[1]}x{tile[0]} "
                            f"overlapping {self.overlap} px, {self.chunk} per call")

    def _whole(self, h: int, w: int) -> bool:
        return h <= self.tile[0] and w <= self.tile[1]

    def _grid(self, h: int, w: int) -> list[tuple[int, int, np.ndarray]]:
        th, tw = min(self.tile[0], h), min(self.tile[1], w)
        ys, xs = tile_starts(h, th, self.overlap), tile_starts(w, tw, self.overlap)
        return [(y, x, np.outer(_ramp(th, y, h, self.overlap), _ramp(tw, x, w, self.overlap)))
                for y in ys for x in xs]

    def _blend(self, frame: Any, run: Callable[[Any], Any], stack: Callable,
               zeros: Callable[[tuple[int, ...]], Any], weight: Callable[[np.ndarray], Any],
               channel_last: bool) -> Any:
        """One frame from its tiles: the inner engine's outputs, weighted and normalised
        (float; ``frame`` is (H, W, C) if ``channel_last`` else (C, H, W))."""
        h, w = frame.shape[:2] if channel_last else frame.shape[1:]
        grid = self._grid(h, w)
        th, tw = grid[0][2].shape
        lead = () if channel_last else (slice(None),)
        regions = [(*lead, slice(y, y + th), slice(x, x + tw)) for y, x, _ in grid]
        outs = run(stack([frame[r] for r in regions]))
        acc = zeros(frame.shape)
        norm = zeros((h, w, 1) if channel_last else (1, h, w))
        for r, (_, _, wt), out in zip(regions, grid, outs, strict=True):
            wt = weight(wt[..., None] if channel_last else wt[None])
            acc[r] += out * wt
            norm[r] += wt
        return acc / norm

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 [-1, 1] -> same: every frame tile by tile."""
        run = lambda t: _chunked(self.inner.infer, t, self.chunk)  # noqa: E731
        if self._whole(*x.shape[2:]):
            return run(x)
        zeros = lambda shape: torch.zeros(shape, device=x.device)  # noqa: E731
        weight = lambda wt: torch.from_numpy(wt).to(x.device)  # noqa: E731
        return torch.stack([self._blend(f, run, torch.stack, zeros, weight, False) for f in x])


class TiledFrameEngine(TiledEngine):
    """:class:`TiledEngine` for an inner engine that also takes uint8 frames."""

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> same: tiles in uint8, blended in float, rounded once."""
        inner: FrameEngine = self.inner  # type: ignore[assignment]
        run = lambda t: _chunked(inner.infer_frames, t, self.chunk)  # noqa: E731
        if self._whole(*frames.shape[1:3]):
            return run(frames)
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            blended = self._blend(frame, run, np.stack, lambda shape: np.zeros(shape, np.float32),
                                  lambda wt: wt, True)
            out[i] = np.clip(np.rint(blended), 0, 255)
        return out


def tiled(inner: Engine, tile: tuple[int, int], overlap: int = OVERLAP,
          chunk: int = 1) -> TiledEngine:
    """A tiled wrapper of ``inner`` that keeps its uint8 path where it has one."""
    cls = TiledFrameEngine if isinstance(inner, FrameEngine) else TiledEngine
    return cls(inner, tile, overlap, chunk)
