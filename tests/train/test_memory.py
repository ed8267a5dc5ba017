"""Memory read (Eq. 2-4) and update (Eq. 5-6) against the equations written out by hand."""

from __future__ import annotations

import copy
import math

import torch

from rtderain.models.memory import RainMemory
from rtderain.train.distributed import update_memory


def _manual_read(items: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    n, c, h, w = q.shape
    out = torch.zeros_like(q)
    for b in range(n):
        for y in range(h):
            for x in range(w):
                qk = q[b, :, y, x]
                cos = torch.stack([torch.dot(p, qk) / (p.norm() * qk.norm()) for p in items])
                alpha = torch.exp(cos) / torch.exp(cos).sum()
                out[b, :, y, x] = (alpha[:, None] * items).sum(0)
    return out


def test_read_is_softmax_over_items_of_cosines() -> None:
    torch.manual_seed(0)
    mem = RainMemory(5, 4, seed=1)
    q = torch.randn(2, 4, 2, 3)
    assert torch.allclose(mem.read(q), _manual_read(mem.items, q), atol=1e-5)


def test_update_softmax_over_queries_then_normalise() -> None:
    torch.manual_seed(1)
    mem = RainMemory(3, 4, seed=2)
    q = torch.randn(2, 4, 1, 2)
    p = mem.items.clone()
    qs = [q[b, :, 0, x] / q[b, :, 0, x].norm() for b in range(2) for x in range(2)]
    expected = []
    for m in range(3):
        scores = [math.exp(float(torch.dot(p[m], qk))) for qk in qs]  # p_m unit, q_k unit
        total = sum(scores)
        new = p[m] + sum(s / total * qk for s, qk in zip(scores, qs, strict=True))
        expected.append(new / new.norm())
    mem.update(q)
    assert torch.allclose(mem.items, torch.stack(expected), atol=1e-5)
    assert torch.allclose(mem.items.norm(dim=1), torch.ones(3), atol=1e-6)


def test_trainer_update_matches_the_model_update_in_one_process() -> None:
    torch.manual_seed(2)
    a = RainMemory(20, 16, seed=3)
    b = copy.deepcopy(a)
    q = torch.randn(4, 16, 3, 5) * 3
    a.update(q)
    update_memory(b, q)
    assert torch.allclose(a.items, b.items, atol=1e-6)
