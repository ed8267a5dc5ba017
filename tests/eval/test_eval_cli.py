"""``rtderain eval``: inputs (folders, images, video), outputs (table, JSON, CSV, plot), errors."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
from click.testing import CliRunner

from rtderain.cli.eval import eval_command
from rtderain.errors import RTDerainError
from rtderain.evaluation import metrics
from rtderain.media.images import write_image
from tests.mediagen import run_cli, write_video


def _frames(n: int, seed: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([100 + 50 * np.sin(xx / 5 + c) * np.cos(yy / 7) for c in range(3)], -1)
    return [np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8) for _ in range(n)]


def _folder(path, frames):
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        write_image(path / f"{i:05d}.png", f)
    return path


def _invoke(*args):
    return CliRunner().invoke(eval_command, [str(a) for a in args], catch_exceptions=True)


def test_folders_json_csv_plot(tmp_path):
    pred, gt = _frames(5, 1), _frames(5, 2)
    p, g = _folder(tmp_path / "pred", pred), _folder(tmp_path / "gt", gt)
    res = _invoke(
        p,
        g,
        "--json",
        tmp_path / "s.json",
        "--csv",
        tmp_path / "s.csv",
        "--plot",
        tmp_path / "s.png",
    )
    assert res.exit_code == 0, res.output
    assert "PSNR" in res.output and "rgb2ycbcr" in res.output
    doc = json.loads((tmp_path / "s.json").read_text())
    seq = doc["results"][0]
    expect = [metrics.compute(a, b) for a, b in zip(pred, gt, strict=True)]
    for key in ("psnr", "ssim", "vif", "fsim"):
        assert seq[key] == pytest.approx(np.mean([e[key] for e in expect]))
        assert [f[key] for f in seq["per_frame"]] == pytest.approx([e[key] for e in expect])
    assert doc["convention"]["channel"] == "y"
    rows = list(csv.DictReader((tmp_path / "s.csv").open()))
    assert len(rows) == 6 and rows[-1]["frame"] == "mean"
    assert float(rows[0]["psnr"]) == pytest.approx(expect[0]["psnr"])
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_rgb_crop_skip(tmp_path):
    pred, gt = _frames(6, 3), _frames(6, 4)
    p, g = _folder(tmp_path / "pred", pred), _folder(tmp_path / "gt", gt)
    res = _invoke(
        p,
        g,
        "--rgb",
        "--crop",
        4,
        "--skip-first",
        1,
        "--skip-last",
        2,
        "--metrics",
        "psnr,ssim",
        "--json",
        tmp_path / "s.json",
    )
    assert res.exit_code == 0, res.output
    seq = json.loads((tmp_path / "s.json").read_text())["results"][0]
    assert [f["index"] for f in seq["per_frame"]] == [1, 2, 3]
    want = np.mean([metrics.psnr(pred[i], gt[i], channel="rgb", crop=4) for i in (1, 2, 3)])
    assert seq["psnr"] == pytest.approx(want)
    assert "vif" not in seq


def test_single_images_identical_gives_inf(tmp_path):
    img = _frames(1, 5)[0]
    write_image(tmp_path / "a.png", img)
    write_image(tmp_path / "b.png", img)
    res = _invoke(tmp_path / "a.png", tmp_path / "b.png", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    seq = json.loads((tmp_path / "s.json").read_text())["results"][0]
    assert math.isinf(seq["psnr"]) and seq["ssim"] == pytest.approx(1.0)


def test_video_against_itself(tmp_path):
    video = tmp_path / "clip.mp4"
    write_video(video, frames=6, width=64, height=48)
    res = _invoke(video, video, "--metrics", "psnr", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    seq = json.loads((tmp_path / "s.json").read_text())["results"][0]
    assert seq["frames"] == 6 and math.isinf(seq["psnr"])


def test_method_on_dataset_matches_direct_scores(tmp_path):
    rain, gt = _frames(4, 6), _frames(4, 7)
    _folder(tmp_path / "ds" / "rain", rain)
    _folder(tmp_path / "ds" / "gt", gt)
    res = _invoke(
        "--method",
        "identity",
        "--method",
        "temporal-median",
        "--dataset",
        tmp_path / "ds",
        "--metrics",
        "psnr",
        "--json",
        tmp_path / "s.json",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "s.json").read_text())
    ident = next(r for r in doc["results"] if r["method"] == "identity")
    want = np.mean([metrics.psnr(a, b) for a, b in zip(rain, gt, strict=True)])
    assert ident["psnr"] == pytest.approx(want)
    assert {r["method"] for r in doc["results"]} == {"identity", "temporal-median"}
    assert ident["seconds_per_frame"] is not None


@pytest.mark.parametrize(
    "case, match",
    [
        ("count", "frame counts differ: .*pred has 4 frames, .*gt has 3"),
        ("size", "frame 0: .*pred is 64x48 but .*gt is 60x48"),
        ("empty", "no images in folder"),
        ("method", "unknown method 'nope'"),
        ("nodata", "no rain/ and gt/"),
        ("missing", "not found"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, case, match):
    p = _folder(tmp_path / "pred", _frames(4, 1))
    if case == "count":
        args = [p, _folder(tmp_path / "gt", _frames(3, 2))]
    elif case == "size":
        args = [p, _folder(tmp_path / "gt", _frames(4, 2, w=60))]
    elif case == "empty":
        (tmp_path / "gt").mkdir()
        args = [p, tmp_path / "gt"]
    elif case == "method":
        args = ["--method", "nope", "--dataset", tmp_path]
    elif case == "nodata":
        args = ["--method", "identity", "--dataset", tmp_path]
    else:
        args = [p, tmp_path / "absent"]
    res = _invoke(*args)
    assert isinstance(res.exception, RTDerainError), res.output
    assert len(str(res.exception).splitlines()) == 1
    assert re.search(match, str(res.exception)), str(res.exception)


def test_cli_error_is_one_line_exit_1(tmp_path):
    p = _folder(tmp_path / "pred", _frames(2, 1))
    g = _folder(tmp_path / "gt", _frames(3, 1))
    proc = run_cli("eval", str(p), str(g))
    assert proc.returncode == 1
    assert proc.stderr.strip().startswith("rtderain: error: frame counts differ")
    assert "Traceback" not in proc.stderr


def test_temporal_metrics_rank_a_flickering_output_below_a_stable_one(tmp_path, make_rainy_clip):
    """On a static rainy clip the rainy input (identity) flickers and warps more than the
    temporal median, and both are reported in the table and the JSON."""
    rainy, clean, _ = make_rainy_clip(n=10)
    _folder(tmp_path / "ds" / "rain", rainy)
    _folder(tmp_path / "ds" / "gt", clean)
    out = tmp_path / "scores.json"
    res = _invoke("--method", "identity", "--method", "temporal-median", "--dataset",
                  tmp_path / "ds", "--metrics", "psnr", "--json", out)
    assert res.exit_code == 0, res.output
    assert "warp err" in res.output and "flicker static" in res.output
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    ident, median = rows["identity"], rows["temporal-median"]
    assert ident["flicker"] > 2 * median["flicker"]
    assert ident["warp"] > 2 * median["warp"]
    assert ident["warp_rel"] == pytest.approx(ident["warp"])  # the clean clip does not change
    res = _invoke("--method", "identity", "--dataset", tmp_path / "ds", "--metrics", "psnr",
                  "--no-temporal-metrics")
    assert res.exit_code == 0 and "warp err" not in res.output


@pytest.mark.parametrize("option", ["--json", "--csv", "--plot"])
def test_report_into_a_missing_or_blocked_folder_is_refused_before_scoring(
    tmp_path, monkeypatch, option
):
    import rtderain.evaluation.scoring as scoring

    p, g = _folder(tmp_path / "pred", _frames(2, 1)), _folder(tmp_path / "gt", _frames(2, 2))

    def no_scoring(*args, **kwargs):
        raise AssertionError("scored before the report path was checked")

    monkeypatch.setattr(scoring, "score_frames", no_scoring)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for target, needle in ((tmp_path / "nope" / "s.out", "output folder does not exist"),
                           (blocker / "s.out", "output folder does not exist")):
        res = _invoke(p, g, option, target)
        assert isinstance(res.exception, RTDerainError), res.output
        assert needle in str(res.exception) and str(target) in str(res.exception)


@pytest.mark.parametrize("side", [5, 10])
def test_images_smaller_than_the_ssim_window_are_one_line(tmp_path, side):
    p = _folder(tmp_path / "pred", _frames(1, 1, side, side))
    g = _folder(tmp_path / "gt", _frames(1, 2, side, side))
    result = run_cli("eval", str(p), str(g), "--metrics", "psnr,ssim")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"rtderain: error: SSIM needs images of at least 11x11 pixels (its 11x11 window), "
        f"got {side}x{side}; leave it out with --metrics psnr"
    ]
    assert run_cli("eval", str(p), str(g), "--metrics", "psnr").returncode == 0


def test_network_method_takes_engine_and_precision(tmp_path):
    """--engine / --precision reach a network method (a figure measured in fp32 on one
    CPU can be reproduced in fp32 on a bf16 one); a named engine is not a fallback."""
    _folder(tmp_path / "ds" / "rain", _frames(2, 8))
    _folder(tmp_path / "ds" / "gt", _frames(2, 9))
    res = _invoke("--method", "mgid-rt", "--engine", "torch", "--precision", "fp32",
                  "--dataset", tmp_path / "ds", "--metrics", "psnr", "--orient", "off",
                  "--no-temporal-metrics", "--json", tmp_path / "s.json")
    assert res.exit_code == 0, res.output
    (row,) = json.loads((tmp_path / "s.json").read_text())["results"]
    assert row["params"]["engine"] == "torch eager fp32 on cpu", row
