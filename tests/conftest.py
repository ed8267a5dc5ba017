"""Shared fixtures. Media generators live in :mod:`tests.mediagen`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.mediagen import SHARED_DATA

# Engines built during the tests go to a throw-away cache, never the repository's engines/.
# Set at import so CLI subprocesses inherit it; tests of the cache itself override it.
os.environ.setdefault("RTDERAIN_ENGINES", tempfile.mkdtemp(prefix="rtderain-test-engines-"))
# Precision auto's int8 trial (a quantisation per new shape) is tested in
# tests/engines/test_int8.py; elsewhere it would only make every new shape slower to build.
os.environ["RTDERAIN_AUTO_INT8"] = "0"


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
