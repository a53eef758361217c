"""What recording the inventory every round costs: writing it whole, or writing what changed.

Until 2026-12-08 ``HistoryStore.upsert_inventory`` upserted every host and VM each round; now it
marks the listed records seen in one UPDATE and writes whole only those that changed. Both paths
run here side by side (the whole write as ``FullWriteStore``, the code before, kept in this file):

1. ``upsert_inventory`` alone, per round, on a cloud of ``--vms`` VMs (and 1,000 and 5,000 by
   default) where 1 % of the VMs change each round: median of ``--rounds`` rounds, SQLite and
   PostgreSQL (the URL ``scripts/setup.d/20-postgres.sh`` writes; a scratch schema, dropped after).
2. ``cotenancy simulate --store`` on SQLite: the embedded synthetic workload, 200 VMs, one day
   (288 rounds), writing the inventory whole, then writing what changed: the wall time of the
   simulation, the time all the store's writes took in it, and the time ``upsert_inventory``
   took (medians of ``--sim-repeats``, default 1: one run takes 15 to 40 s).

    .venv/bin/python benchmarks/bench_store_inventory.py [--rounds 30] [--backend sqlite] [--no-sim]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from bench_store import postgres_url, sqlite_url

from cotenancy.model import VM, Host, Inventory, Resources
from cotenancy.store import HistoryStore, schema
from cotenancy.store.history import _host_row, _vm_row

T0 = 1_700_000_000.0
STEP = 300.0


class FullWriteStore(HistoryStore):
    """The store as it recorded inventories before 2026-12-08: every listed record written whole."""

    def upsert_inventory(self, inventory: Inventory, at: float) -> None:
        hosts = [_host_row(h) | {"seen_at": at, "gone_at": None} for h in inventory.hosts.values()]
        vms = [_vm_row(v) | {"seen_at": at, "gone_at": None} for v in inventory.vms.values()]
        with self.engine.begin() as connection:
            self._upsert(connection, schema.hosts, hosts)
            self._upsert(connection, schema.vms, vms)
            for table in (schema.hosts, schema.vms):
                connection.execute(
                    table.update().where(table.c.gone_at.is_(None), table.c.seen_at < at).values(gone_at=at)
                )


def cloud(n_vms: int, round_index: int) -> Inventory:
    """``n_vms`` VMs on ``n_vms // 20`` hosts; each round 1 % of the VMs sit on another host."""
    n_hosts = max(2, n_vms // 20)
    hosts = {f"h{i}": Host(f"h{i}", f"host-{i}", Resources(cpu=32000, memory=131072)) for i in range(n_hosts)}
    moved = max(1, n_vms // 100)
    vms = {}
    for i in range(n_vms):
        vm = VM(f"vm-{i}", f"vm-{i}", f"h{i % n_hosts}", Resources(cpu=2000, memory=4096), vcpus=2)
        if (i - round_index * moved) % n_vms < moved:
            vm = replace(vm, host_id=f"h{(i + 1) % n_hosts}")
        vms[vm.id] = vm
    return Inventory(hosts=hosts, vms=vms)


def per_round_ms(url_factory: Callable, n_vms: int, rounds: int) -> tuple[float, float]:
    """Median milliseconds of one ``upsert_inventory`` after the first (which writes everything),
    writing whole and writing changes, the two stores taking turns so that what else runs on
    the machine slows both alike."""
    inventories = [cloud(n_vms, r) for r in range(rounds + 1)]
    with (
        url_factory() as whole_url,
        url_factory() as changes_url,
        FullWriteStore(whole_url) as whole,
        HistoryStore(changes_url) as changes,
    ):
        spent: dict[HistoryStore, list[float]] = {whole: [], changes: []}
        for store in spent:
            store.upsert_inventory(inventories[0], T0)
        for r, inventory in enumerate(inventories[1:], start=1):
            for store in (whole, changes) if r % 2 else (changes, whole):
                started = time.perf_counter()
                store.upsert_inventory(inventory, T0 + STEP * r)
                spent[store].append((time.perf_counter() - started) * 1000.0)
    return statistics.median(spent[whole]), statistics.median(spent[changes])


def bench_rounds(backends: list[tuple[str, Callable]], sizes: list[int], rounds: int) -> None:
    print(f"upsert_inventory per round, 1 % of the VMs changed, median of {rounds} rounds (ms)")
    print(f"{'backend':<11} {'VMs':>6} {'whole':>9} {'changes':>9} {'ratio':>7}")
    for name, url_factory in backends:
        for n_vms in sizes:
            whole, changes = per_round_ms(url_factory, n_vms, rounds)
            print(f"{name:<11} {n_vms:>6,d} {whole:>9.1f} {changes:>9.1f} {whole / changes:>6.1f}x")


#: the store's writes the control loop makes each round, timed in the simulated day
WRITES = ("upsert_inventory", "add_samples", "add_events", "save_plan", "update_step")


def timed_store(store_class: type[HistoryStore]) -> type[HistoryStore]:
    """``store_class`` adding the seconds each of its ``WRITES`` took to ``self.spent``."""

    def timing(name: str) -> Callable:
        method = getattr(store_class, name)

        def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started

        return timed

    return type(f"Timed{store_class.__name__}", (store_class,), {name: timing(name) for name in WRITES})


def simulate_seconds(store_classes: list[type[HistoryStore]], repeats: int) -> list[list[float]]:
    """Per store class, the medians of the wall time of the simulation of a day of 200 VMs
    recorded by it, of the time its writes took, and of the time ``upsert_inventory`` took; the
    classes take turns, so that what else runs on the machine slows them alike."""
    from cotenancy.conf import make_conf
    from cotenancy.sim.runner import make_cloud, make_workload, run_cloud

    walls: dict[type, list[float]] = {c: [] for c in store_classes}
    writes: dict[type, list[float]] = {c: [] for c in store_classes}
    inventories: dict[type, list[float]] = {c: [] for c in store_classes}
    for repeat in range(repeats):
        for store_class in store_classes if repeat % 2 == 0 else store_classes[::-1]:
            conf = make_conf([], config_files=[])
            workload = make_workload(None, days=1.0, n_vms=200, seed=conf.simulator.seed)
            sim = make_cloud(
                workload,
                conf.simulator.setup,
                seed=conf.simulator.seed,
                interference=conf.simulator.interference,
                headroom=conf.simulator.host_headroom,
            )
            with sqlite_url() as url, timed_store(store_class)(url) as store:
                store.spent = {}
                started = time.perf_counter()
                run_cloud(sim, "lr-mmt", conf, store=store)
                walls[store_class].append(time.perf_counter() - started)
                writes[store_class].append(sum(store.spent.values()))
                inventories[store_class].append(store.spent["upsert_inventory"])
    return [
        [statistics.median(walls[c]), statistics.median(writes[c]), statistics.median(inventories[c])]
        for c in store_classes
    ]


def bench_simulate(repeats: int) -> None:
    print(f"\ncotenancy simulate --store, 200 VMs, 1 day (288 rounds), SQLite, median of {repeats} (s)")
    print(f"{'':<18} {'whole':>9} {'changes':>9} {'ratio':>7}")
    whole, changes = simulate_seconds([FullWriteStore, HistoryStore], repeats)
    for i, what in enumerate(("simulation", "store writes", "upsert_inventory")):
        print(f"{what:<18} {whole[i]:>9.2f} {changes[i]:>9.2f} {whole[i] / changes[i]:>6.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, nargs="+", default=[200, 1000, 5000])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "all"], default="all")
    parser.add_argument("--no-sim", action="store_true", help="skip the simulated day")
    parser.add_argument("--sim-repeats", type=int, default=1)
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the simulated day's anomalies
    backends = [
        (n, f)
        for n, f in (("sqlite", sqlite_url), ("postgresql", postgres_url))
        if args.backend in (n, "all")
    ]
    bench_rounds(backends, args.vms, args.rounds)
    if not args.no_sim:
        bench_simulate(args.sim_repeats)


if __name__ == "__main__":
    main()
