"""Watcher's own strategies next to ``cotenancy_predictive`` on the same simulated cloud.

Each strategy gets a fresh copy of the same cloud: CloudSim's PlanetLab reference setup
(G4/G5 hosts, four VM types, 5-minute rounds) replaying a PlanetLab day, scaled to ``--vms``
VMs with hosts in the reference ratio (800 hosts per 1052 VMs). Every round the strategy is
loaded by name through Watcher's ``DefaultStrategyLoader``, reads the cloud through a Watcher
datasource and a Watcher compute model, and its actions are carried out on the simulated cloud.
Prints one table per day (SLAV, energy, migrations, conflict-minutes, median seconds per round),
one table over all days, the issue's target clause by clause, and a secondary comparison among
the strategies that consolidate (clearly labelled: it does not replace the target).
``--explain`` adds, for Watcher's balancing strategies, what their trigger saw every round.

Watcher lives in its own venv; run from anywhere::

    .venv/bin/python benchmarks/bench_watcher_side_by_side.py --vms 200 --days 20110303,20110322 \
        --jobs 2 --explain

(the script re-executes itself with ``.cache/venvs/watcher/bin/python``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import multiprocessing
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
WATCHER_PYTHON = REPO_ROOT / ".cache" / "venvs" / "watcher" / "bin" / "python"
WATCHER_STRATEGIES = ["workload_stabilization", "workload_balance", "vm_workload_consolidation", "basic"]
OURS = "cotenancy_predictive"
#: the secondary comparison's "consolidating" strategies: energy within this factor of the lowest
COMPARABLE_ENERGY = 1.25

_watcher_configured = False


def in_watcher_venv() -> bool:
    try:
        import watcher  # noqa: F401
    except ImportError:
        return False
    return True


def reexec_in_watcher_venv() -> None:
    if not WATCHER_PYTHON.exists():
        sys.exit(f"Watcher venv missing at {WATCHER_PYTHON}: run scripts/setup.d/50-watcher.sh")
    os.execv(str(WATCHER_PYTHON), [str(WATCHER_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    shared = Path(os.environ.get("COTENANCY_SHARED", REPO_ROOT.parent / "shared"))
    parser.add_argument(
        "--traces", type=Path, default=shared / "traces" / "planetlab", help="PlanetLab folder"
    )
    parser.add_argument(
        "--days", "--day", dest="days", default="20110303", help="comma-separated PlanetLab day folders"
    )
    parser.add_argument("--vms", type=int, default=100, help="first N VMs of the day (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hidden interference traits")
    parser.add_argument("--no-interference", action="store_true", help="capacity contention only")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument(
        "--strategies",
        default=",".join([*WATCHER_STRATEGIES, OURS]),
        help="comma-separated Watcher strategy names",
    )
    parser.add_argument(
        "--cotenancy-config",
        type=Path,
        help="cotenancy.conf for cotenancy_predictive (Watcher option cotenancy_config_file)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="(day, strategy) runs in parallel processes")
    parser.add_argument(
        "--explain",
        action="store_true",
        help="record what the triggers of workload_stabilization and workload_balance saw",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


def setup_watcher(cotenancy_config: Path | None) -> None:
    """Watcher's config and logging, once per process."""
    # Watcher's fixture module picks the oslo.service backend; it must come before other Watcher imports.
    import watcher.tests.unit.decision_engine.model.faker_cluster_state  # noqa: F401
    from oslo_config import cfg

    global _watcher_configured
    if not _watcher_configured:  # a forked worker inherits its parent's parsed config
        cfg.CONF([], project="watcher")
        _watcher_configured = True
    # Watcher's strategies log every decision; the table is the output here.
    logging.getLogger().setLevel(logging.ERROR)
    if cotenancy_config:
        from cotenancy.plugins.watcher.strategy import CotenancyPredictiveStrategy

        group = "watcher_strategies.cotenancy_predictive"
        with contextlib.suppress(cfg.DuplicateOptError):
            cfg.CONF.register_opts(CotenancyPredictiveStrategy.get_config_opts(), group=group)
        cfg.CONF.set_override("cotenancy_config_file", str(cotenancy_config.resolve()), group=group)


def summarise_evidence(rounds: list[Any]) -> dict[str, float]:
    """Per-run summary of :func:`cotenancy.plugins.watcher.simulation.balancing_evidence`."""
    seen = [r.evidence for r in rounds if r.evidence]
    if not seen:
        return {}
    out: dict[str, float] = {"rounds": float(len(seen)), "threshold": seen[0]["threshold"]}
    out["max_host_cpu"] = max(e["max_host_cpu"] for e in seen)
    if "host_cpu_sd" in seen[0]:
        sds = [e["host_cpu_sd"] for e in seen]
        out["median_sd"] = statistics.median(sds)
        out["max_sd"] = max(sds)
        out["rounds_triggered"] = float(sum(sd > out["threshold"] for sd in sds))
    else:
        out["rounds_with_hosts_over"] = float(sum(e["hosts_over"] > 0 for e in seen))
        out["rounds_triggered"] = float(sum(e["hosts_over_with_a_movable_vm"] > 0 for e in seen))
    return out


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """One strategy on a fresh copy of one day's cloud, every round through Watcher's loader."""
    setup_watcher(job["cotenancy_config"])
    from cotenancy.plugins.watcher import simulation

    driver = simulation.reference_cloud(
        job["folder"], vms=job["vms"] or None, seed=job["seed"], interference=job["interference"]
    )
    name = job["strategy"]
    params: dict[str, Any] = {}
    if name == OURS:
        params = {
            "mhz_per_vcpu": simulation.SIM_MHZ_PER_VCPU,
            "flavors": [
                {"name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk}
                for f in simulation.sim_flavors(driver)
            ],
        }
    runner = simulation.WatcherOnSimulator(name, driver, params, explain=job["explain"])
    started = time.perf_counter()
    for _ in range(job["rounds"]):
        if driver.cloud.finished:
            break
        runner.run_round()
        driver.wait(driver.cloud.step_seconds)
    errors = [r.error for r in runner.rounds if r.error]
    result = {
        "day": job["day"],
        "strategy": name,
        "n_vms": driver.cloud.n_vms,
        "n_hosts": driver.cloud.n_hosts,
        **driver.cloud.metrics(),
        "failed_actions": sum(len(r.failed) for r in runner.rounds),
        "failed_rounds": len(errors),
        "first_error": errors[0] if errors else "",
        "median_round_seconds": statistics.median(r.seconds for r in runner.rounds) if runner.rounds else 0.0,
        "wall_seconds": time.perf_counter() - started,
        "rounds": len(runner.rounds),
        "evidence": summarise_evidence(runner.rounds),
    }
    print(f"# {job['day']} {name}: done in {result['wall_seconds']:.0f} s", file=sys.stderr, flush=True)
    return result


HEADER = (
    f"{'strategy':<26} {'SLAV %':>9} {'SLATAH %':>9} {'PDM %':>8} {'energy kWh':>11} "
    f"{'migrations':>10} {'conflict-min':>12} {'failed':>7} {'round s':>8}"
)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(HEADER)
    print("-" * len(HEADER))
    for r in rows:
        failed = r["failed_actions"] + r["failed_rounds"]
        print(
            f"{r['strategy']:<26} {r['slav']:>9.2e} {r['slatah']:>9.3f} {r['pdm']:>8.4f} "
            f"{r['energy_kwh']:>11.2f} {r['migrations']:>10d} {r['conflict_minutes']:>12.0f} "
            f"{failed:>7d} {r['median_round_seconds']:>8.3f}"
        )


def over_days(results: list[dict[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """Totals over the days (energy, migrations, conflict-minutes, failures), means of the
    percentages (SLAV, SLATAH, PDM) and the median of the per-day median round times."""
    rows = []
    for name in names:
        mine = [r for r in results if r["strategy"] == name]
        if not mine:
            continue
        rows.append(
            {
                "strategy": name,
                "slav": statistics.mean(r["slav"] for r in mine),
                "slatah": statistics.mean(r["slatah"] for r in mine),
                "pdm": statistics.mean(r["pdm"] for r in mine),
                "energy_kwh": sum(r["energy_kwh"] for r in mine),
                "migrations": sum(r["migrations"] for r in mine),
                "conflict_minutes": sum(r["conflict_minutes"] for r in mine),
                "failed_actions": sum(r["failed_actions"] for r in mine),
                "failed_rounds": sum(r["failed_rounds"] for r in mine),
                "median_round_seconds": statistics.median(r["median_round_seconds"] for r in mine),
            }
        )
    return rows


def judge(rows: list[dict[str, Any]], label: str) -> None:
    """The issue's target, clause by clause, among ``rows`` (ours included)."""
    ours = next((r for r in rows if r["strategy"] == OURS), None)
    others = [r for r in rows if r["strategy"] != OURS]
    if ours is None or not others:
        return
    movers = [r for r in others if r["migrations"] > 0]
    lowest_conflict = min(r["conflict_minutes"] for r in others)
    lowest_slav = min(r["slav"] for r in others)
    fewest_moves = min((r["migrations"] for r in movers), default=None)

    def verdict(ok: bool) -> str:
        return "yes" if ok else "NO"

    print(f"{label}:")
    print(
        f"  lowest conflict-minutes: {verdict(ours['conflict_minutes'] < lowest_conflict)} "
        f"({ours['conflict_minutes']:.0f} vs best other {lowest_conflict:.0f}"
        f"{', tied' if ours['conflict_minutes'] == lowest_conflict else ''})"
    )
    print(
        f"  lowest SLAV: {verdict(ours['slav'] < lowest_slav)} "
        f"({ours['slav']:.2e} vs best other {lowest_slav:.2e})"
    )
    if fewest_moves is None:
        print("  fewer migrations than every strategy that moves VMs: no other strategy moved a VM")
    else:
        print(
            "  fewer migrations than every strategy that moves VMs: "
            f"{verdict(ours['migrations'] < fewest_moves)} "
            f"({ours['migrations']} vs fewest {fewest_moves}: "
            f"{', '.join(r['strategy'] for r in movers if r['migrations'] == fewest_moves)})"
        )


def explain(results: list[dict[str, Any]]) -> None:
    for r in results:
        e = r.get("evidence") or {}
        if not e:
            continue
        if "median_sd" in e:
            print(
                f"  {r['day']} {r['strategy']}: std-dev of host CPU load median {e['median_sd']:.3f}, "
                f"max {e['max_sd']:.3f}; acts above {e['threshold']:.2f}: "
                f"{e['rounds_triggered']:.0f} of {e['rounds']:.0f} rounds; "
                f"busiest host {e['max_host_cpu']:.0f} %"
            )
        else:
            print(
                f"  {r['day']} {r['strategy']}: a host at >= {e['threshold']:.0f} % CPU in "
                f"{e['rounds_with_hosts_over']:.0f} of {e['rounds']:.0f} rounds "
                f"(busiest {e['max_host_cpu']:.0f} %), "
                f"one with a VM it may move in {e['rounds_triggered']:.0f}; migrations {r['migrations']}"
            )


def main() -> int:
    if not in_watcher_venv():
        reexec_in_watcher_venv()
    args = parse_args()
    setup_watcher(args.cotenancy_config)
    days = [d.strip() for d in args.days.split(",") if d.strip()]
    names = [s.strip() for s in args.strategies.split(",") if s.strip()]
    for day in days:
        if not (args.traces / day).is_dir():
            sys.exit(f"no PlanetLab day at {args.traces / day} (set COTENANCY_SHARED or --traces)")
    step_seconds = 300.0  # the reference setup's scheduling interval
    rounds = int(args.hours * 3600 / step_seconds)
    jobs = [
        {
            "day": day,
            "folder": args.traces / day,
            "strategy": name,
            "vms": args.vms,
            "seed": args.seed,
            "interference": not args.no_interference,
            "rounds": rounds,
            "explain": args.explain,
            "cotenancy_config": args.cotenancy_config,
        }
        for day in days
        for name in names
    ]
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(run_one, jobs))
    else:
        results = [run_one(job) for job in jobs]

    for day in days:
        rows = [r for r in results if r["day"] == day]
        print(
            f"PlanetLab {day}, {rows[0]['n_vms']} VMs on {rows[0]['n_hosts']} hosts "
            "(CloudSim reference setup, "
            f"interference {'off' if args.no_interference else 'on'}, seed {args.seed}), "
            f"{max(r['rounds'] for r in rows)} rounds of {step_seconds:.0f} s, "
            "strategies loaded by Watcher 17's DefaultStrategyLoader"
        )
        print_table(rows)
        print()
    total = over_days(results, names)
    if len(days) > 1:
        print(
            f"All {len(days)} days ({', '.join(days)}): energy, migrations and conflict-minutes summed, "
            "SLAV/SLATAH/PDM averaged, round s = median of the daily medians"
        )
        print_table(total)
        print()
    print("Target (issue 6): cotenancy_predictive has the lowest conflict-minutes and SLAV, with fewer")
    print("migrations than any of Watcher's strategies that move VMs")
    judge(total, f"  over {'all days' if len(days) > 1 else days[0]}")
    for day in days if len(days) > 1 else []:
        judge([r for r in results if r["day"] == day], f"  {day}")
    lowest_energy = min(r["energy_kwh"] for r in total)
    consolidating = [r for r in total if r["energy_kwh"] <= COMPARABLE_ENERGY * lowest_energy]
    print()
    print(
        f"SECONDARY comparison (not the issue's target): strategies that consolidate, i.e. whose energy is "
        f"within {COMPARABLE_ENERGY:.2f}x of the lowest ({', '.join(r['strategy'] for r in consolidating)})"
    )
    print_table(consolidating)
    judge(consolidating, "  among them")
    if args.explain:
        print()
        print("Why Watcher's balancing strategies (default audit parameters) move little or nothing:")
        explain(results)
    for r in results:
        if r["first_error"]:
            print(
                f"{r['day']} {r['strategy']}: {r['failed_rounds']} rounds failed, first: {r['first_error']}"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
