"""Pytest plugin: a history store on every supported backend.

Load it from ``tests/conftest.py`` with ``pytest_plugins = ["fixtures_store"]``. A test that asks
for ``history_store`` (or ``history_store_url``) runs once on SQLite and once on PostgreSQL. The
PostgreSQL case needs the server that ``scripts/setup.d/20-postgres.sh`` starts and FAILS, never
skips, when its URL file is missing or the server does not answer. Each PostgreSQL test gets a
fresh schema, dropped afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from cotenancy.store import HistoryStore

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_URL_FILE = REPO_ROOT / ".cache" / "postgres.url"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def postgres_admin_url() -> sa.URL:
    """URL written by the setup script; fails the test with a hint when it is not usable."""
    if not POSTGRES_URL_FILE.is_file():
        pytest.fail(
            f"{POSTGRES_URL_FILE} is missing: run scripts/setup.d/20-postgres.sh (as root) first",
            pytrace=False,
        )
    url = sa.make_url(POSTGRES_URL_FILE.read_text().strip())
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {url.render_as_string(hide_password=True)} does not answer "
            f"({exc.orig}); run scripts/setup.d/20-postgres.sh",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return url


@contextmanager
def empty_database_url(backend: str, folder: Path, name: str = "history") -> Iterator[str]:
    """The URL of an empty database on ``backend``: a SQLite file ``name`` in ``folder``, or a
    PostgreSQL schema of its own, dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'{name}.sqlite'}"
        return
    admin_url = postgres_admin_url()
    schema_name = f"test_{uuid.uuid4().hex[:16]}"
    engine = sa.create_engine(admin_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema_name}"'))
    try:
        yield admin_url.update_query_dict({"options": f"-csearch_path={schema_name}"}).render_as_string(
            hide_password=False
        )
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema_name}" CASCADE'))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def history_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database on each backend (SQLite file; PostgreSQL schema of its own)."""
    with empty_database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def another_history_store_url(history_store_url: str, tmp_path: Path) -> Iterator[str]:
    """A second empty database on the backend of ``history_store_url``, to compare two stores."""
    backend = sa.make_url(history_store_url).get_backend_name()
    with empty_database_url(backend, tmp_path, "another") as url:
        yield url


@pytest.fixture
def history_store(history_store_url: str) -> Iterator[HistoryStore]:
    """An opened (migrated) history store on each backend."""
    store = HistoryStore(history_store_url)
    try:
        yield store
    finally:
        store.close()
