"""Process-group helpers and the memory update that keeps the items identical across ranks.

``torchrun --nproc_per_node=N -m rtderain train ...`` sets ``WORLD_SIZE``/``RANK``; we then
use DistributedDataParallel (gloo on CPU, nccl on CUDA). The memory items are a buffer,
not a parameter, so DDP does not average them: :func:`update_memory` computes Eq. 5-6 over
the queries of the *global* batch with three all-reduces (max, numerator, denominator),
which equals the single-process update on the concatenated batch, on every rank.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F

from rtderain.models.memory import RainMemory


def world() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_env(device: str) -> bool:
    """Start the process group when launched by torchrun; True when distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return dist.is_initialized()
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend=backend)
    return True


def shutdown() -> None:
    """Destroy the process group if one exists, once every rank has got here.

    Without the barrier a rank with less work left (not rank 0, which writes the final
    checkpoints) tears its gloo connections down while rank 0 still holds them, and gloo
    can abort that process ("terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


@torch.no_grad()
def update_memory(memory: RainMemory, q: torch.Tensor) -> None:
    """Eq. 5-6 over every query of the global batch:
    ``p_m <- L2norm(p_m + Σ_k softmax_k(cos(p_m, q_k)) q_k)``.

    Args:
        memory: the model's memory (items (M, C), updated in place).
        q: this rank's query map (N, C, h, w), any dtype; detached here.
    """
    n, c = q.shape[:2]
    qn = F.normalize(q.detach().float().reshape(n, c, -1).transpose(1, 2), dim=2).reshape(-1, c)
    items = memory.items.float()
    scores = qn @ items.t()  # (K, M)
    peak = scores.max(dim=0).values  # (M,)
    distributed = dist.is_available() and dist.is_initialized()
    if distributed:
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    e = torch.exp(scores - peak)
    num = e.t() @ qn  # (M, C)
    den = e.sum(dim=0)  # (M,)
    if distributed:
        dist.all_reduce(num)
        dist.all_reduce(den)
    memory.items.copy_(F.normalize(items + num / den[:, None], dim=1).to(memory.items.dtype))


@torch.no_grad()
def rank_spread(t: torch.Tensor) -> float:
    """Largest element-wise difference of ``t`` between ranks (0.0 in one process)."""
    if not (dist.is_available() and dist.is_initialized()):
        return 0.0
    hi, lo = t.detach().clone().float(), t.detach().clone().float()
    dist.all_reduce(hi, op=dist.ReduceOp.MAX)
    dist.all_reduce(lo, op=dist.ReduceOp.MIN)
    return float((hi - lo).abs().max())
