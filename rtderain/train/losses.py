"""The Siamese time-lapse losses of ``shared/spec/NETWORK.md`` (paper Eq. 7-13).

Every image tensor is (N, 3, H, W) float in [-1, 1], RGB; ``w`` and ``v`` are the two
frames of the same clip, ``B̂ = clamp(I − R̂, −1, 1)`` the network's background and ``R̂``
its rain layer. Query maps are (N, C, h, w). All terms are means over elements.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rtderain.config import check_range


@dataclass(frozen=True)
class LossWeights:
    """Weights of the terms; ``pseudo`` (temporal-median pseudo ground truth) is optional.

    Attributes:
        background: λb of Lb (Eq. 7).
        cross: λc of Lc (Eq. 8).
        self: λs of Ls (Eq. 9, with the clamped background).
        bsw: λw of the background selective whitening loss Lw (Eq. 10-13).
        pseudo: weight of ‖B̂ − P‖₁, P a robust temporal statistic of the clip's rainy
            frames (the paper's ablation baseline); 0 disables it.
        bsw_groups: h, the number of 1-D k-means groups of the covariance variance.
        bsw_low: l, how many lowest-variance groups are whitened.
        teacher: weight of ‖B̂ − B̂ₜ‖₁ against a frozen teacher network's background
            (``run.teacher``, e.g. the shipped ``mgid`` distilled into ``mgid-rt``); the
            teacher was itself trained without clean ground truth. 0 disables it.
    """

    background: float = 1.0
    cross: float = 0.001
    self: float = 0.1
    bsw: float = 0.1
    pseudo: float = 0.0
    bsw_groups: int = 4
    bsw_low: int = 2
    teacher: float = 0.0

    def __post_init__(self) -> None:
        for name in ("background", "cross", "self", "bsw", "pseudo", "teacher"):
            check_range(name, getattr(self, name), 0.0)
        check_range("bsw_groups", self.bsw_groups, 1, 64)
        check_range("bsw_low", self.bsw_low, 0, self.bsw_groups)


def background_consistency(b_w: torch.Tensor, b_v: torch.Tensor) -> torch.Tensor:
    """Lb = ‖B̂_w − B̂_v‖₁ (Eq. 7)."""
    return (b_w - b_v).abs().mean()


def cross_information(
    i_w: torch.Tensor, i_v: torch.Tensor, b_w: torch.Tensor, b_v: torch.Tensor
) -> torch.Tensor:
    """Lc = ‖I_w − B̂_v‖₁ + ‖I_v − B̂_w‖₁ (Eq. 8)."""
    return (i_w - b_v).abs().mean() + (i_v - b_w).abs().mean()


def self_consistency(i: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Ls = ‖I − (B̂ + R̂)‖₁ for one frame (Eq. 9).

    With the clamped background this is the mean amount by which ``I − R̂`` leaves
    [-1, 1]: zero for in-range backgrounds, positive only for out-of-range ones.
    """
    return (i - (b + r)).abs().mean()


def standardized_covariance(q: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Σ_s(q) = X Xᵀ / K with X each channel of q standardised over positions.

    Args:
        q: (N, C, h, w) query map.
    Returns:
        (N, C, C) covariance (the diagonal is ~1 by construction).
    """
    n, c, h, w = q.shape
    x = q.reshape(n, c, h * w).float()
    x = (x - x.mean(dim=2, keepdim=True)) / (x.std(dim=2, unbiased=False, keepdim=True) + eps)
    return x @ x.transpose(1, 2) / (h * w)


def kmeans_1d(values: torch.Tensor, groups: int, iters: int = 20) -> torch.Tensor:
    """Lloyd's 1-D k-means per row; returns the group index of every value.

    Args:
        values: (N, P) values (no gradient needed).
        groups: number of groups h; groups are numbered by increasing centroid.
    Returns:
        (N, P) long tensor in [0, groups).
    """
    v = values.detach().float()
    qs = (torch.arange(groups, dtype=v.dtype, device=v.device) + 0.5) / groups
    cent = torch.quantile(v, qs, dim=1).t().contiguous()  # (N, h), sorted
    assign = torch.zeros_like(v, dtype=torch.long)
    for _ in range(iters):
        assign = (v[:, :, None] - cent[:, None, :]).abs().argmin(dim=2)
        onehot = torch.nn.functional.one_hot(assign, groups).to(v.dtype)  # (N, P, h)
        count = onehot.sum(dim=1)
        new = (onehot * v[:, :, None]).sum(dim=1) / count.clamp(min=1)
        new = torch.where(count > 0, new, cent)
        if torch.equal(new, cent):
            break
        cent = new
    # 1-D Lloyd keeps centroids ordered; sort defensively and renumber.
    order = cent.argsort(dim=1)
    rank = order.argsort(dim=1)
    return torch.gather(rank, 1, assign)


def bsw_mask(sigma_w: torch.Tensor, sigma_v: torch.Tensor, groups: int = 4, low: int = 2):
    """Eq. 10-12: mask (N, P) over the strict upper triangle, 1 on the ``low`` groups of
    lowest cross-pair variance. Also returns the triangle indices used."""
    c = sigma_w.shape[-1]
    iu = torch.triu_indices(c, c, offset=1, device=sigma_w.device)
    sw, sv = sigma_w[:, iu[0], iu[1]], sigma_v[:, iu[0], iu[1]]
    mu = (sw + sv) / 2
    var = ((sw - mu) ** 2 + (sv - mu) ** 2) / 2
    mask = (kmeans_1d(var, groups) < low).to(sw.dtype)
    return mask, iu


def bsw_loss(q_w: torch.Tensor, q_v: torch.Tensor, groups: int = 4, low: int = 2) -> torch.Tensor:
    """Lw = mean |Σ_s ⊙ M| over both query maps (Eq. 13), strict upper triangle."""
    s_w, s_v = standardized_covariance(q_w), standardized_covariance(q_v)
    mask, iu = bsw_mask(s_w, s_v, groups, low)
    lw = (s_w[:, iu[0], iu[1]] * mask).abs().mean()
    lv = (s_v[:, iu[0], iu[1]] * mask).abs().mean()
    return (lw + lv) / 2


def pseudo_gt_loss(b: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """‖B̂ − P‖₁ against a pseudo ground truth P (temporal statistic of rainy frames)."""
    return (b - target).abs().mean()


def siamese_losses(
    i_w: torch.Tensor,
    i_v: torch.Tensor,
    out_w: dict[str, torch.Tensor],
    out_v: dict[str, torch.Tensor],
    weights: LossWeights,
    pseudo: torch.Tensor | None = None,
    teacher: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """All terms and their weighted sum ``total`` for one pair.

    ``out_*`` are :meth:`MGID.forward_train` outputs; ``pseudo`` is (N, 3, H, W) or None;
    ``teacher`` the frozen teacher's backgrounds of ``i_w`` and ``i_v`` (or None).
    """
    b_w, b_v = out_w["background"].float(), out_v["background"].float()
    r_w, r_v = out_w["rain"].float(), out_v["rain"].float()
    terms = {
        "lb": background_consistency(b_w, b_v),
        "lc": cross_information(i_w, i_v, b_w, b_v),
        "ls": self_consistency(i_w, b_w, r_w) + self_consistency(i_v, b_v, r_v),
        "lw": bsw_loss(out_w["query"], out_v["query"], weights.bsw_groups, weights.bsw_low)
        if weights.bsw > 0
        else b_w.new_zeros(()),
    }
    total = (
        weights.background * terms["lb"]
        + weights.cross * terms["lc"]
        + weights.self * terms["ls"]
        + weights.bsw * terms["lw"]
    )
    if pseudo is not None and weights.pseudo > 0:
        terms["lp"] = (pseudo_gt_loss(b_w, pseudo) + pseudo_gt_loss(b_v, pseudo)) / 2
        total = total + weights.pseudo * terms["lp"]
    if teacher is not None and weights.teacher > 0:
        t_w, t_v = (t.float() for t in teacher)
        terms["lt"] = (pseudo_gt_loss(b_w, t_w) + pseudo_gt_loss(b_v, t_v)) / 2
        total = total + weights.teacher * terms["lt"]
    terms["total"] = total
    return terms
