"""Rain-prototype memory read at the bottleneck (paper Sec. III-C, Eq. 2-6)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RainMemory(nn.Module):
    """``M`` unit-length items ``p_m`` of ``C`` channels.

    The items are a buffer (saved in the state dict, exported as a constant of the graph),
    never optimiser parameters: only :meth:`update` changes them, once per training step,
    without gradient.
    """

    def __init__(self, num_items: int = 20, channels: int = 64, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        items = torch.randn(num_items, channels, generator=gen)
        self.register_buffer("items", F.normalize(items, dim=1))

    @staticmethod
    def _flat_queries(q: torch.Tensor) -> torch.Tensor:
        """(N, C, h, w) -> (N, K, C) L2-normalised query vectors, K = h*w."""
        n, c, h, w = q.shape
        return F.normalize(q.reshape(n, c, h * w).transpose(1, 2), dim=2)

    def read(self, q: torch.Tensor) -> torch.Tensor:
        """Eq. 2-4: ``p̂_k = Σ_m softmax_m(cos(p_m, q_k)) p_m``.

        Runs in float32 whatever the dtype of ``q``: ``F.normalize``'s eps (1e-12) is 0 in
        fp16, so an all-zero query (a dead channel group, black input) would be 0/0 = NaN
        and a black block in the output. The read is a few small matmuls at 1/8 or 1/16
        resolution, so fp32 costs nothing measurable.

        Args:
            q: query map (N, C, h, w), any float dtype.
        Returns:
            read map p̂ (N, C, h, w), same dtype as ``q``.
        """
        n, c, h, w = q.shape
        qn = self._flat_queries(q.float())
        items = self.items.float()
        attn = torch.softmax(qn @ items.t(), dim=2)  # (N, K, M)
        read = attn @ items  # (N, K, C)
        return read.transpose(1, 2).reshape(n, c, h, w).to(q.dtype)

    @torch.no_grad()
    def update(self, q: torch.Tensor) -> None:
        """Eq. 5-6 (training only): ``p_m <- L2norm(p_m + Σ_k softmax_k(cos(p_m, q_k)) q_k)``.

        The softmax runs over every query of the whole batch (N*K vectors), not over items.
        ``q`` is detached here; call it after the optimiser step with the step's queries.
        """
        qn = self._flat_queries(q.detach().float()).reshape(-1, q.shape[1])  # (N*K, C)
        beta = torch.softmax(qn @ self.items.t(), dim=0)  # (N*K, M), softmax over queries
        self.items.copy_(F.normalize(self.items + beta.t() @ qn, dim=1))
