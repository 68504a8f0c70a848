"""Helpers shared by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest


HERE = Path(__file__).parent
MINI = HERE / "topologies" / "mini.yaml"


@pytest.fixture
def mini_topology() -> Path:
    return MINI
