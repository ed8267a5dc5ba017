"""Classical baselines: rain removal on a synthesised clip with known rain, and edge frames."""

from __future__ import annotations

import numpy as np
import pytest

from rtderain.errors import RTDerainError
from rtderain.evaluation import metrics
from rtderain.evaluation.methods import METHODS, create_method

# Every video baseline of the registry, so a new one is tested.
BASELINES = [name for name, info in METHODS.items() if info.kind == "video"]


def _mean_psnr(frames, clean) -> float:
    return float(
        np.mean(
            [
                metrics.psnr(a, b) if not np.array_equal(a, b) else 99.0
                for a, b in zip(frames, clean, strict=True)
            ]
        )
    )


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_removes_known_rain(name, make_rainy_clip):
    rainy, clean, _ = make_rainy_clip(n=14)
    out = list(create_method(name)(list(rainy)))
    assert len(out) == len(rainy)
    assert all(o.shape == rainy[0].shape and o.dtype == np.uint8 for o in out)
    before, after = _mean_psnr(rainy, clean), _mean_psnr(out, clean)
    assert after > before + 3.0, (name, before, after)
    # the edge frames are de-rained too, not passed through
    for i in (0, len(rainy) - 1):
        assert _mean_psnr([out[i]], [clean[i]]) > _mean_psnr([rainy[i]], [clean[i]]) + 2.0


@pytest.mark.parametrize("name", [*BASELINES, "identity"])
def test_one_frame_clip(name, make_rainy_clip):
    """A single image: temporal baselines return it unchanged; FastDeRain keeps its spatial
    priors (no temporal term), so it only has to return one frame of the same size."""
    rainy, clean, _ = make_rainy_clip(n=1)
    out = list(create_method(name)([rainy[0]]))
    assert len(out) == 1 and out[0].shape == rainy[0].shape
    if name != "fastderain":
        assert np.array_equal(out[0], rainy[0])


def test_median_window_slides_inward_at_the_ends():
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, (6, 7, 3), dtype=np.uint8) for _ in range(9)]
    out = list(create_method("temporal-median", size=5)(frames))
    stack = np.stack(frames)
    assert np.array_equal(out[0], np.median(stack[0:5], axis=0).astype(np.uint8))
    assert np.array_equal(out[1], np.median(stack[0:5], axis=0).astype(np.uint8))
    assert np.array_equal(out[4], np.median(stack[2:7], axis=0).astype(np.uint8))
    assert np.array_equal(out[8], np.median(stack[4:9], axis=0).astype(np.uint8))
    short = list(create_method("temporal-median", size=5)(frames[:3]))
    assert np.array_equal(short[2], np.median(stack[:3], axis=0).astype(np.uint8))


def _streak_clip(n: int, rain_at: int):
    """Flat grey frames; a bright vertical streak only in frame ``rain_at``."""
    frames = [np.full((24, 24, 3), 100 + 2 * t, np.uint8) for t in range(n)]
    frames[rain_at] = frames[rain_at].copy()
    frames[rain_at][4:16, 10] += 60
    return frames


def test_garg_nayar_edge_frames_use_the_two_nearest_frames():
    gn = create_method("garg-nayar")
    first = list(gn(_streak_clip(5, 0)))[0]
    # frame 0's neighbours are frames 1 and 2 (values 102 and 104): replaced by their mean
    assert first[10, 10, 0] == 103 and first[0, 0, 0] == 100
    last = list(gn(_streak_clip(5, 4)))[4]
    assert last[10, 10, 0] == (106 + 104) // 2 and last[0, 0, 0] == 108
    two = list(gn(_streak_clip(2, 1)))[1]  # one neighbour, used twice
    assert two[10, 10, 0] == 100


def test_zhang_edge_frames_and_chromatic_check():
    frames = _streak_clip(9, 0)
    out = list(create_method("zhang2006")(frames))
    # streak in frame 0 removed: the background estimate is the mean of the other frames
    assert out[0][10, 10, 0] == round(np.mean([100 + 2 * t for t in range(1, 9)]))
    coloured = _streak_clip(9, 8)
    coloured[8][4:16, 10] = [200, 100, 100]  # a red change is not rain (chromatic property)
    out = list(create_method("zhang2006")(coloured))
    assert np.array_equal(out[8][10, 10], [200, 100, 100])


def test_fastderain_keeps_order_and_count_across_blocks(make_rainy_clip):
    rainy, clean, _ = make_rainy_clip(n=7)
    method = create_method("fastderain", block=3, context=1, iterations=8)
    out = list(method(list(rainy)))
    assert len(out) == 7
    gains = [
        metrics.psnr(o, c) - metrics.psnr(r, c) for o, r, c in zip(out, rainy, clean, strict=True)
    ]
    assert min(gains) > 1.0, gains


@pytest.mark.parametrize("name", BASELINES)
def test_mixed_frame_sizes_are_an_error(name):
    frames = [np.zeros((20, 20, 3), np.uint8)] * 3 + [np.zeros((20, 22, 3), np.uint8)]
    with pytest.raises(RTDerainError, match="frame 3"):
        list(create_method(name)(frames))


def test_registry_and_unknown_names():
    from rtderain.models import MODELS

    assert {"temporal-median", "garg-nayar", "zhang2006", "fastderain"} <= set(BASELINES)
    assert {n for n, i in METHODS.items() if i.kind == "network"} == set(MODELS)
    with pytest.raises(RTDerainError, match="unknown method 'nope'"):
        create_method("nope")
    with pytest.raises(RTDerainError, match="temporal-median"):
        create_method("temporal-median", window=3)


def test_network_method_pads_and_crops_odd_sizes(tmp_path):
    """An untrained network is the identity; odd frame sizes come back unchanged."""
    from rtderain.models import build_model
    from rtderain.models.checkpoint import save_checkpoint

    untrained = tmp_path / "untrained.pt"
    save_checkpoint(build_model("mgid-rt"), untrained)
    rng = np.random.default_rng(4)
    frames = [rng.integers(0, 256, (37, 53, 3), dtype=np.uint8) for _ in range(2)]
    method = create_method("mgid-rt", weights=untrained, engine="torch", device="cpu")
    assert method.params()["weights"] == str(untrained)
    out = list(method(frames))
    assert len(out) == 2
    for a, b in zip(out, frames, strict=True):
        assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1
