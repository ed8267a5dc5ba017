"""Each loss term on tiny tensors with answers worked out by hand."""

from __future__ import annotations

import pytest
import torch

from rtderain.train import losses as L


def test_background_consistency_zero_for_equal_and_l1_otherwise() -> None:
    b = torch.rand(2, 3, 4, 4) * 2 - 1
    assert L.background_consistency(b, b.clone()).item() == 0.0
    assert L.background_consistency(b, b + 0.25).item() == pytest.approx(0.25)


def test_cross_information_sums_both_directions() -> None:
    i_w, i_v = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 0.5)
    b_w, b_v = torch.full((1, 3, 2, 2), 0.1), torch.full((1, 3, 2, 2), 0.3)
    # |0 - 0.3| + |0.5 - 0.1|
    assert L.cross_information(i_w, i_v, b_w, b_v).item() == pytest.approx(0.7)


def test_self_consistency_penalises_only_out_of_range_backgrounds() -> None:
    i = torch.tensor([0.5, -0.5, 0.9, -0.9]).reshape(1, 1, 2, 2)
    r_ok = torch.tensor([0.2, -0.2, 0.5, -0.05]).reshape(1, 1, 2, 2)  # I - R in range
    b_ok = torch.clamp(i - r_ok, -1, 1)
    assert L.self_consistency(i, b_ok, r_ok).item() == pytest.approx(0.0, abs=1e-7)
    r_bad = torch.tensor([0.2, 0.0, -0.4, 0.0]).reshape(1, 1, 2, 2)  # 0.9 + 0.4 = 1.3 > 1
    b_bad = torch.clamp(i - r_bad, -1, 1)
    assert L.self_consistency(i, b_bad, r_bad).item() == pytest.approx(0.3 / 4)


def test_standardized_covariance_of_known_channels() -> None:
    a = torch.tensor([1.0, -1.0, 1.0, -1.0])
    q = torch.stack([a, a, -a, torch.tensor([1.0, 1.0, -1.0, -1.0])]).reshape(1, 4, 2, 2)
    cov = L.standardized_covariance(q)[0]
    expected = torch.tensor(
        [[1, 1, -1, 0], [1, 1, -1, 0], [-1, -1, 1, 0], [0, 0, 0, 1]], dtype=torch.float32
    )
    assert torch.allclose(cov, expected, atol=1e-4)


def test_kmeans_1d_separates_obvious_groups_in_order() -> None:
    v = torch.tensor([[0.0, 0.01, 10.0, 10.1, 5.0, 5.1, 20.0, 20.2]])
    groups = L.kmeans_1d(v, 4)[0].tolist()
    assert groups == [0, 0, 2, 2, 1, 1, 3, 3]


def test_bsw_mask_selects_the_low_variance_entries() -> None:
    c = 4  # 6 strict-upper entries: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
    s_w = torch.zeros(1, c, c)
    s_v = torch.zeros(1, c, c)
    # Entries differing a lot between the pair (rain) vs equal (background).
    diffs = {(0, 1): 0.0, (0, 2): 0.0, (0, 3): 0.9, (1, 2): 0.01, (1, 3): 0.5, (2, 3): 0.3}
    for (r, k), d in diffs.items():
        s_w[0, r, k] = 0.4 + d
        s_v[0, r, k] = 0.4 - d
    mask, iu = L.bsw_mask(s_w, s_v, groups=4, low=2)
    picked = {(int(r), int(k)) for r, k, m in zip(iu[0], iu[1], mask[0], strict=True) if m > 0}
    assert picked == {(0, 1), (0, 2), (1, 2)}


def test_bsw_loss_zero_for_white_queries_and_positive_for_correlated() -> None:
    # Orthogonal +-1 channels (Hadamard rows): covariance is the identity -> Lw = 0.
    h = torch.tensor(
        [[1, 1, 1, 1], [1, -1, 1, -1], [1, 1, -1, -1], [1, -1, -1, 1]], dtype=torch.float32
    )
    q = h.reshape(1, 4, 2, 2)
    assert L.bsw_loss(q, q.clone()).item() == pytest.approx(0.0, abs=1e-5)
    corr = torch.stack([h[1], h[1], h[1], h[1]]).reshape(1, 4, 2, 2)
    assert L.bsw_loss(corr, corr.clone()).item() > 0.4


def test_siamese_total_is_the_weighted_sum() -> None:
    torch.manual_seed(0)
    i_w, i_v = torch.rand(2, 3, 8, 8) * 2 - 1, torch.rand(2, 3, 8, 8) * 2 - 1
    def out(i: torch.Tensor) -> dict[str, torch.Tensor]:
        r = torch.rand_like(i) * 0.5
        b = torch.clamp(i - r, -1, 1)
        return {"rain": r, "background": b, "query": torch.randn(2, 6, 2, 2)}
    w = L.LossWeights(background=1, cross=0.5, self=0.25, bsw=2, pseudo=3)
    pseudo = torch.zeros(2, 3, 8, 8)
    t = L.siamese_losses(i_w, i_v, out(i_w), out(i_v), w, pseudo)
    expected = t["lb"] + 0.5 * t["lc"] + 0.25 * t["ls"] + 2 * t["lw"] + 3 * t["lp"]
    assert t["total"].item() == pytest.approx(expected.item())
    assert t["ls"].item() > 0  # rain pushed some backgrounds below -1
