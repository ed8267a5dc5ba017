"""``rtderain bench quality`` on a tiny data root the test makes (no shared data needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from rtderain.cli.bench import bench
from rtderain.evaluation import metrics
from rtderain.media.images import write_image


def _dataset(root, make_rainy_clip):
    rainy, clean, _ = make_rainy_clip(n=5, h=48, w=64)
    for sub, frames in (("rain", rainy), ("gt", clean)):
        (root / "nturain_a1" / sub).mkdir(parents=True)
        for i, f in enumerate(frames):
            write_image(root / "nturain_a1" / sub / f"{i + 1:05d}.png", f)
    return rainy, clean


def _run(*args):
    return CliRunner().invoke(bench, ["quality", *map(str, args)], catch_exceptions=False)


def test_quality_table_json_grid_and_merge(tmp_path, make_rainy_clip):
    rainy, clean = _dataset(tmp_path / "data", make_rainy_clip)
    out = tmp_path / "out"
    common = ["--data-root", tmp_path / "data", "--dataset", "nturain_a1", "--out", out]
    res = _run(*common, "--method", "identity")
    assert res.exit_code == 0, res.output
    res = _run(*common, "--method", "temporal-median", "--merge")
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "quality.json").read_text())
    rows = {r["method"]: r for r in doc["results"]}
    assert list(rows) == ["identity", "temporal-median"]
    want = np.mean([metrics.psnr(a, b) for a, b in zip(rainy, clean, strict=True)])
    assert rows["identity"]["psnr"] == pytest.approx(want)
    assert rows["temporal-median"]["psnr"] > rows["identity"]["psnr"] + 3
    assert rows["temporal-median"]["fps"] > 0
    assert len(doc["commands"]) == 2
    md = (out / "quality.md").read_text()
    assert "| temporal-median | nturain_a1" in md and "--merge" in md
    assert (out / "grid_nturain_a1.png").read_bytes()[:4] == b"\x89PNG"


def test_images_dataset_lists_video_baselines_as_identity(tmp_path, make_rainy_clip):
    rainy, clean, _ = make_rainy_clip(n=2, h=48, w=64)
    for sub, frames in (("rain", rainy), ("gt", clean)):
        (tmp_path / "data" / "rain100h_dev" / sub).mkdir(parents=True)
        for i, f in enumerate(frames):
            write_image(tmp_path / "data" / "rain100h_dev" / sub / f"{i + 1}.png", f)
    res = _run(
        "--data-root",
        tmp_path / "data",
        "--dataset",
        "rain100h_dev",
        "--out",
        tmp_path / "out",
        "--method",
        "identity",
        "--method",
        "garg-nayar",
    )
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "out" / "quality.json").read_text())
    assert [r["method"] for r in doc["results"]] == ["identity"]
    assert any("garg-nayar needs neighbouring frames" in n for n in doc["notes"])
