"""Pytest plugin: an opened history store on a fresh SQLite file, for tests about something other
than the store itself (which run on every backend through ``fixtures_store``).

Listed in ``tests/conftest.py``'s ``pytest_plugins``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cotenancy.store import HistoryStore


def sqlite_url(folder: Path) -> str:
    """The URL of a history database file in ``folder``; the store creates it when opened."""
    return f"sqlite:///{folder / 'history.sqlite'}"


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[HistoryStore]:
    """An opened (migrated) store in the test's own folder, closed after the test."""
    store = HistoryStore(sqlite_url(tmp_path))
    try:
        yield store
    finally:
        store.close()
