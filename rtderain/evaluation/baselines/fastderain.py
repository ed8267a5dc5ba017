"""FastDeRain-family baseline: directional-gradient sparsity of the rain layer, solved by ADMM.

After Jiang, Huang, Zhao, Deng, Wang, "FastDeRain: A Novel Video Rain Streak Removal Method
Using Directional Gradient Priors", IEEE TIP 28(4), 2019. On the luminance ``O`` of a block
of frames (0-1 scale) it finds the rain layer ``R`` minimising

    a1 ||D_y R||_1 + a2 ||R||_1 + a3 ||D_x (O - R)||_1 + a4 ||D_t (O - R)||_1,  0 <= R <= O

(rain is smooth along its (vertical) fall direction and sparse; the background is smooth
across it (horizontally) and along time), with ADMM: every sub-problem is closed form,
soft-thresholding for the four L1 terms (the box constraint folded into the ``R`` copy) and
one linear solve per iteration, diagonal in the 3-D DCT because the difference operators use
Neumann (replicate) boundaries; hence no wrap-around between the first and last frame.
The rain layer is removed equally from R, G and B (rain is achromatic).

Differences from the paper: vertical rain only (no rotation for slanted rain), a fixed
penalty ``mu`` and iteration count, and the clip is processed in blocks of ``block`` frames
with ``context`` extra frames each side (only the block's own frames are kept), so memory
is bounded. Edges: the first and last frames have context on one side only (the Neumann
boundary stops ``D_t`` there); a one-frame clip (a single image) keeps the spatial priors.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch
from scipy import fft

from rtderain.evaluation.baselines.window import Y_WEIGHTS, check_frame


def _diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Forward difference along ``dim`` with a zero last entry (Neumann boundary)."""
    if x.shape[dim] == 1:
        return torch.zeros_like(x)
    return torch.diff(x, dim=dim, append=x.narrow(dim, x.shape[dim] - 1, 1))


def _diff_t(y: torch.Tensor, dim: int) -> torch.Tensor:
    """Adjoint of :func:`_diff`: ``(D^T y)[j] = y[j-1] - y[j]``, taking ``y[-1] = y[n-1] = 0``."""
    n = y.shape[dim]
    if n == 1:
        return torch.zeros_like(y)
    head = y.narrow(dim, 0, n - 1)
    zero = torch.zeros_like(y.narrow(dim, 0, 1))
    return torch.cat([zero, head], dim) - torch.cat([head, zero], dim)


def _laplace_eig(n: int) -> np.ndarray:
    """Eigenvalues of ``D^T D`` (Neumann) in the DCT-II basis: ``4 sin^2(pi k / 2n)``."""
    return (4.0 * np.sin(np.pi * np.arange(n) / (2 * n)) ** 2).astype(np.float32)


class FastDeRain:
    """ADMM directional-gradient de-raining of luminance (see module doc); CPU, numpy/scipy."""

    name = "fastderain"
    temporal = True

    def __init__(
        self,
        a1: float = 0.01,
        a2: float = 0.05,
        a3: float = 0.01,
        a4: float = 0.02,
        mu: float = 1.0,
        iterations: int = 15,
        block: int = 12,
        context: int = 1,
        threads: int = 1,
    ) -> None:
        self.a = (a1, a2, a3, a4)
        self.mu, self.iterations = mu, iterations
        self.block, self.context = block, context
        self.threads = threads

    def params(self) -> dict:
        a1, a2, a3, a4 = self.a
        return {
            "a1": a1,
            "a2": a2,
            "a3": a3,
            "a4": a4,
            "mu": self.mu,
            "iterations": self.iterations,
            "block": self.block,
            "context": self.context,
            "threads": self.threads,
        }

    def rain_layer(self, o: np.ndarray) -> np.ndarray:
        """Rain layer ``R`` of luminance ``o``: float32 ``(T, H, W)`` in [0, 1] -> same shape.

        Runs on ``threads`` CPU threads (torch and the DCT); torch's own default of all
        cores spin-waits badly on a busy 2-core machine, so the default is 1.
        """
        old_threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return self._admm(o)
        finally:
            torch.set_num_threads(old_threads)

    def _admm(self, o: np.ndarray) -> np.ndarray:
        a = self.a
        mu = self.mu
        t, h, w = o.shape
        denom = torch.from_numpy(
            1.0
            + _laplace_eig(t)[:, None, None]
            + _laplace_eig(h)[None, :, None]
            + _laplace_eig(w)[None, None, :]
        )
        ot = torch.from_numpy(np.ascontiguousarray(o, dtype=np.float32))
        dx_o, dt_o = _diff(ot, 2), _diff(ot, 0)
        # Scaled ADMM: v = copies of (D_y R, R, D_x B, D_t B), u = multipliers / mu.
        v = [torch.zeros_like(ot) for _ in range(4)]
        u = [torch.zeros_like(ot) for _ in range(4)]
        r = torch.zeros_like(ot)
        for _ in range(self.iterations):
            rhs = _diff_t(v[0] - u[0], 1) + (v[1] - u[1])
            rhs += _diff_t(dx_o - v[2] + u[2], 2)
            rhs += _diff_t(dt_o - v[3] + u[3], 0)
            spec = fft.dctn(rhs.numpy(), norm="ortho", workers=self.threads)
            spec /= denom.numpy()
            r = torch.from_numpy(
                fft.idctn(spec, norm="ortho", workers=self.threads, overwrite_x=True)
            )
            a_r = [_diff(r, 1), r, dx_o - _diff(r, 2), dt_o - _diff(r, 0)]
            for i in range(4):
                v[i] = torch.nn.functional.softshrink(a_r[i] + u[i], a[i] / mu)
            v[1] = torch.minimum(v[1].clamp_(min=0.0), ot)
            for i in range(4):
                u[i] += a_r[i] - v[i]
        return torch.minimum(r.clamp(min=0.0), ot).numpy()

    def derain_block(self, frames: np.ndarray) -> np.ndarray:
        """uint8 ``(T, H, W, 3)`` RGB -> de-rained uint8 ``(T, H, W, 3)`` RGB."""
        y = frames.astype(np.float32) @ (Y_WEIGHTS / 219.0)  # luma on 0-1 (studio Y / 219)
        rain = self.rain_layer(y) * 255.0  # back to RGB levels (Y change * 255/219 per channel)
        out = frames.astype(np.float32) - rain[..., None]
        return np.clip(np.round(out), 0, 255).astype(np.uint8)

    def __call__(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        ctx, block = self.context, self.block
        history: list[np.ndarray] = []  # previous block's last `ctx` frames
        pending: list[np.ndarray] = []  # current block + look-ahead
        shape = None
        count = 0
        for count, frame in enumerate(frames, start=1):
            shape = check_frame(frame, count - 1, shape)
            pending.append(frame)
            if len(pending) == block + ctx:
                yield from self._run(history, pending, block)
                history = (history + pending[:block])[-ctx:] if ctx else []
                pending = pending[block:]
        while pending:
            n = min(block, len(pending))
            yield from self._run(history, pending, n)
            history = (history + pending[:n])[-ctx:] if ctx else []
            pending = pending[n:]

    def _run(self, history: list[np.ndarray], pending: list[np.ndarray], n: int):
        stack = np.stack(history + pending)
        out = self.derain_block(stack)
        start = len(history)
        yield from out[start : start + n]
