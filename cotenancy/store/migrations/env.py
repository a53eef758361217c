"""Alembic environment of the history store.

The store hands its own connection in ``config.attributes["connection"]`` so that migrations run
inside the store's engine (same SQLite pragmas, same PostgreSQL search_path); the alembic command
line passes ``-x url=...`` instead.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from cotenancy.store.schema import metadata

config = context.config


def _run(connection: sa.Connection) -> None:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database with: alembic -x url=<sqlalchemy url> ...")
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run_migrations_online()
