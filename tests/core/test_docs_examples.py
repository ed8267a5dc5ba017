"""The Python blocks of docs/python.md run, in order, in one namespace, from the repo root."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "python.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.slow
def test_python_doc_examples_run(monkeypatch):
    blocks = _blocks()
    assert len(blocks) >= 5
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for i, block in enumerate(blocks):
            exec(compile(block, f"{DOC.name}[block {i}]", "exec"), namespace)  # noqa: S102
    lines = printed.getvalue().splitlines()
    # What the comments in the doc promise:
    assert lines[0] == "(360, 640, 3) uint8"
    assert lines[1] == "8 (360, 640, 3)"
    assert lines[2] == "132 1"
    assert "expected an (H, W, 3) RGB array" in lines[-1]
    assert Path(namespace["out"]).is_file()
