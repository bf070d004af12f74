"""Fixtures integration tests share."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.store import Store, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A real SQLite application store in ``tmp_path``, migrated; disposed after the test."""
    opened = open_store(f"sqlite:///{tmp_path / 'flightdeck.db'}")
    yield opened
    # Close the pool's connections, so no SQLite handle outlives the test's folder.
    opened.engine.dispose()
