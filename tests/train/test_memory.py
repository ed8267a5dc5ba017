"""Memory read (Eq. 2-4) and update (Eq. 5-6) against the equations written out by hand."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from rtderain.models import build_model
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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_zero_query_in_half_precision_reads_the_mean_item(dtype) -> None:
    """fp16 turns F.normalize's eps (1e-12) into 0: an all-zero query must still read a
    finite value (every cosine 0 -> uniform weights -> the mean item), not NaN."""
    mem = RainMemory(20, 16, seed=3)
    q = torch.zeros(1, 16, 3, 4, dtype=dtype)
    q[..., 0, 0] = 1.0  # one live query beside the dead ones
    out = mem.read(q)
    assert out.dtype == dtype and torch.isfinite(out).all()
    mean = mem.items.mean(0).to(dtype).float()
    assert torch.allclose(out[0, :, 2, 3].float(), mean, atol=1e-2)
    assert torch.allclose(out.float(), mem.read(q.float()), atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dead_bottleneck_in_half_precision_gives_finite_frames(dtype) -> None:
    """A checkpoint whose last encoder stage is dead (all zero) in fp16/bf16: no NaN."""
    model = build_model("mgid-rt").eval()
    with torch.no_grad():
        for p in model.encoders[-1].parameters():
            p.zero_()
        model.head.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(0))
        x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 2 - 1
        assert not model.forward_train(x)["query"].any()  # the query map is all zero
        out = model.to(dtype)(x.to(dtype))
    assert torch.isfinite(out).all()
