"""What the Watcher strategy pays per audit to reach cotenancy's history store.

Until 2026-12-07 every audit opened the store (a new engine and connection, and the Alembic
upgrade, which reads every migration script) and closed it again; now the first audit of a
decision engine opens it and each later one checks its schema revision on the open store
(``HistoryStore.schema_is_current``, what ``CotenancyPredictiveStrategy.shared_store`` runs).
Prints the median of both per audit on SQLite and PostgreSQL (the URL
``scripts/setup.d/20-postgres.sh`` writes to ``.cache/postgres.url``; a scratch schema, dropped
afterwards).

    .venv/bin/python benchmarks/bench_watcher_store.py [--audits 20] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from bench_store import postgres_url, sqlite_url

from cotenancy.store import HistoryStore


def timed(action: Callable[[], object], times: int) -> float:
    """Median wall time of ``action``, in milliseconds."""
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        action()
        spent.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(spent)


def bench(name: str, url_factory, audits: int) -> None:
    with url_factory() as url:
        HistoryStore(url).close()  # the first audit creates the schema, in both cases

        def open_and_close() -> None:
            HistoryStore(url).close()

        reopened = timed(open_and_close, audits)
        with HistoryStore(url) as kept:
            checked = timed(kept.schema_is_current, audits)
    print(
        f"{name:<11} open and close per audit {reopened:8.2f} ms   "
        f"revision check on the kept store {checked:6.2f} ms   ({reopened / checked:,.0f} x, "
        f"median of {audits})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audits", type=int, default=20)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    args = parser.parse_args()
    if args.backend in ("sqlite", "all"):
        bench("sqlite", sqlite_url, args.audits)
    if args.backend in ("postgresql", "all"):
        bench("postgresql", postgres_url, args.audits)


if __name__ == "__main__":
    main()
