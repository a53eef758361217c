"""Ingest and read speed of the history store on SQLite and PostgreSQL.

Prints the median over a few rounds of samples/s for ``add_samples`` and the time of a
``series`` read of the whole batch. PostgreSQL uses the URL that
``scripts/setup.d/20-postgres.sh`` writes to ``.cache/postgres.url`` (a scratch schema, dropped
afterwards).

    .venv/bin/python benchmarks/bench_store.py [--samples 200000] [--rounds 3] [--backend sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from cotenancy.model import MetricSample
from cotenancy.store import HistoryStore

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP = 300.0
T0 = 1_700_000_000.0


def make_samples(n: int, n_vms: int = 1000) -> list[MetricSample]:
    metrics = ("cpu", "memory", "cpu_ready")
    return [
        MetricSample(
            f"vm-{i % n_vms}", T0 + STEP * (i // (n_vms * 3)), metrics[(i // n_vms) % 3], float(i % 97) / 100
        )
        for i in range(n)
    ]


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/history.sqlite"


@contextmanager
def postgres_url() -> Iterator[str]:
    url_file = REPO_ROOT / ".cache" / "postgres.url"
    if not url_file.is_file():
        raise SystemExit(f"{url_file} missing: run scripts/setup.d/20-postgres.sh")
    admin = sa.make_url(url_file.read_text().strip())
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield admin.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def bench(name: str, url_factory, samples: list[MetricSample], rounds: int) -> None:
    rates, reads = [], []
    for _ in range(rounds):
        with url_factory() as url, HistoryStore(url) as store:
            started = time.perf_counter()
            report = store.add_samples(samples)
            rates.append(report.accepted / (time.perf_counter() - started))
            started = time.perf_counter()
            end = max(s.timestamp for s in samples) + STEP
            window = store.series(T0, end, STEP)
            reads.append(time.perf_counter() - started)
            assert window.values["cpu"].shape[0] == 1000
    print(
        f"{name:<11} {len(samples):>9,d} samples  ingest {statistics.median(rates):>10,.0f} samples/s"
        f"  series() {statistics.median(reads):6.2f} s   (median of {rounds})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    args = parser.parse_args()
    samples = make_samples(args.samples)
    if args.backend in ("sqlite", "all"):
        bench("sqlite", sqlite_url, samples, args.rounds)
    if args.backend in ("postgresql", "all"):
        bench("postgresql", postgres_url, samples, args.rounds)


if __name__ == "__main__":
    main()
