"""Fixtures of the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.lifecycle_world import World


@pytest.fixture
def _world(tmp_path: Path) -> Iterator[World]:
    """A fresh lifecycle world (``tests.lifecycle_world``), closed after the test."""
    world = World(tmp_path)
    yield world
    world.ledger.close()
