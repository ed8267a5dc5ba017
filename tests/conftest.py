"""Shared fixtures. Media generators live in :mod:`tests.mediagen`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.mediagen import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared benchmark data not found at {SHARED_DATA}")
    return SHARED_DATA
