"""Every script in tools/ answers --help (imports resolve, arguments parse) without data."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = sorted((ROOT / "tools").glob("*.py"))


def test_there_are_tools():
    assert TOOLS


@pytest.mark.parametrize("script", TOOLS, ids=lambda p: p.name)
def test_help(script):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RTDERAIN_DATA", None)  # --help must not need the data
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, env=env, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.lower().startswith("usage:")
