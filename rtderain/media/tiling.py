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

from rtderain.backends.base import Engine, FrameEngine
from rtderain.resources import OVERLAP, tile_starts

__all__ = ["DEFAULT_OVERLAP", "TiledEngine", "TiledFrameEngine", "tile_starts", "tiled"]

DEFAULT_OVERLAP = OVERLAP


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


def _chunked(fn: Callable[[Any], Any], x: Any, chunk: int, cat: Callable) -> Any:
    """``fn`` on ``x`` at most ``chunk`` items (batch first) at a time, outputs joined."""
    if len(x) <= chunk:
        return fn(x)
    return cat([fn(x[i:i + chunk]) for i in range(0, len(x), chunk)])


class TiledEngine:
    """``inner``, built for (tile_h, tile_w), run ``chunk`` tiles at a time on larger
    frames (frames no larger than a tile: ``chunk`` frames at a time, untouched)."""

    def __init__(self, inner: Engine, tile: tuple[int, int], overlap: int = DEFAULT_OVERLAP,
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

    def _blend(self, frame: Any, run: Callable[[Any], Any], stack: Callable, new: Callable,
               weight: Callable[[np.ndarray], Any], channel_last: bool) -> tuple[Any, Any]:
        """Accumulated weighted outputs and weights of one frame's tiles."""
        h, w = (frame.shape[0], frame.shape[1]) if channel_last else frame.shape[1:3]
        grid = self._grid(h, w)
        th, tw = grid[0][2].shape
        cut = ((lambda y, x: frame[y:y + th, x:x + tw]) if channel_last
               else (lambda y, x: frame[:, y:y + th, x:x + tw]))
        outs = run(stack([cut(y, x) for y, x, _ in grid]))  # run: chunked
        acc, norm = new(h, w)
        for (y, x, wt), out in zip(grid, outs, strict=True):
            wt = weight(wt)
            if channel_last:
                acc[y:y + th, x:x + tw] += out * wt[..., None]
                norm[y:y + th, x:x + tw] += wt[..., None]
            else:
                acc[:, y:y + th, x:x + tw] += out * wt
                norm[:, y:y + th, x:x + tw] += wt
        return acc, norm

    def infer(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) float32 [-1, 1] -> same: every frame tile by tile."""
        def new(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
            return (torch.zeros(3, h, w, device=x.device),
                    torch.zeros(1, h, w, device=x.device))

        def weight(wt: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(wt).to(x.device)

        run = lambda t: _chunked(self.inner.infer, t, self.chunk, torch.cat)  # noqa: E731
        if self._whole(*x.shape[2:]):
            return run(x)
        frames = []
        for frame in x:
            acc, norm = self._blend(frame, run, torch.stack, new, weight, False)
            frames.append(acc / norm)
        return torch.stack(frames)


class TiledFrameEngine(TiledEngine):
    """:class:`TiledEngine` for an inner engine that also takes uint8 frames."""

    def infer_frames(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) uint8 -> same: tiles in uint8, blended in float, rounded once."""
        inner: FrameEngine = self.inner  # type: ignore[assignment]

        def new(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
            return np.zeros((h, w, 3), np.float32), np.zeros((h, w, 1), np.float32)

        run = lambda t: _chunked(inner.infer_frames, t, self.chunk, np.concatenate)  # noqa: E731
        if self._whole(*frames.shape[1:3]):
            return run(frames)
        out = np.empty_like(frames)
        for i, frame in enumerate(frames):
            acc, norm = self._blend(frame, run, np.stack, new, lambda wt: wt, True)
            np.clip(np.rint(acc / norm), 0, 255, out=acc)
            out[i] = acc
        return out


def tiled(inner: Engine, tile: tuple[int, int], overlap: int = DEFAULT_OVERLAP,
          chunk: int = 1) -> TiledEngine:
    """A tiled wrapper of ``inner`` that keeps its uint8 path where it has one."""
    cls = TiledFrameEngine if isinstance(inner, FrameEngine) else TiledEngine
    return cls(inner, tile, overlap, chunk)
