"""`rtderain bench pipeline` prints both throughputs and the overhead (no speed asserts)."""

from __future__ import annotations

import json
import re

from tests.mediagen import run_cli


def test_bench_pipeline_reports_fps_and_overhead(tmp_path):
    out = tmp_path / "bench.json"
    result = run_cli(
        "bench", "pipeline", "--size", "160x96", "--frames", "12", "--repeat", "1",
        "--json", str(out),
    )
    assert result.returncode == 0, result.stderr
    for name in ("pyav decode+encode", "pyav decode+rgb+encode", "rtderain pipeline (identity)"):
        assert re.search(rf"{re.escape(name)}\s+[\d.]+ fps", result.stdout), result.stdout
    assert "pipeline overhead" in result.stdout
    payload = json.loads(out.read_text())
    frames = {r["frames"] for r in payload["results"].values()}
    assert frames == {12}  # every run saw every frame
