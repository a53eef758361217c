"""Watcher's own strategies next to ``cotenancy_predictive`` on the same simulated cloud.

Each strategy gets a fresh copy of the same cloud: CloudSim's PlanetLab reference setup
(G4/G5 hosts, four VM types, 5-minute rounds) replaying a PlanetLab day, scaled to ``--vms``
VMs with hosts in the reference ratio (800 hosts per 1052 VMs). Every round the strategy is
loaded by name through Watcher's ``DefaultStrategyLoader``, reads the cloud through a Watcher
datasource and a Watcher compute model, and its actions are carried out on the simulated cloud.
Prints one table: SLAV, energy, migrations and conflict-minutes per strategy.

Watcher lives in its own venv; run from anywhere::

    .venv/bin/python benchmarks/bench_watcher_side_by_side.py --vms 100 --hours 24

(the script re-executes itself with ``.cache/venvs/watcher/bin/python``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
WATCHER_PYTHON = REPO_ROOT / ".cache" / "venvs" / "watcher" / "bin" / "python"
WATCHER_STRATEGIES = ["workload_stabilization", "workload_balance", "vm_workload_consolidation", "basic"]


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
    parser.add_argument("--day", default="20110303", help="PlanetLab day folder")
    parser.add_argument("--vms", type=int, default=100, help="first N VMs of the day (0: all)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the hidden interference traits")
    parser.add_argument("--no-interference", action="store_true", help="capacity contention only")
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument(
        "--strategies",
        default=",".join([*WATCHER_STRATEGIES, "cotenancy_predictive"]),
        help="comma-separated Watcher strategy names",
    )
    parser.add_argument(
        "--cotenancy-config",
        type=Path,
        help="cotenancy.conf for cotenancy_predictive (Watcher option cotenancy_config_file)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures here")
    return parser.parse_args()


def main() -> int:
    if not in_watcher_venv():
        reexec_in_watcher_venv()
    args = parse_args()

    # Watcher's fixture module picks the oslo.service backend; it must come before other Watcher imports.
    import watcher.tests.unit.decision_engine.model.faker_cluster_state  # noqa: F401
    from oslo_config import cfg

    cfg.CONF([], project="watcher")
    # Watcher's strategies log every decision; the table is the output here.
    logging.getLogger().setLevel(logging.ERROR)

    from cotenancy.plugins.watcher import simulation
    from cotenancy.plugins.watcher.strategy import CotenancyPredictiveStrategy

    if args.cotenancy_config:
        group = "watcher_strategies.cotenancy_predictive"
        cfg.CONF.register_opts(CotenancyPredictiveStrategy.get_config_opts(), group=group)
        cfg.CONF.set_override("cotenancy_config_file", str(args.cotenancy_config.resolve()), group=group)

    folder = args.traces / args.day
    if not folder.is_dir():
        sys.exit(f"no PlanetLab day at {folder} (set COTENANCY_SHARED or --traces)")

    def fresh_driver():
        return simulation.reference_cloud(
            folder, vms=args.vms or None, seed=args.seed, interference=not args.no_interference
        )

    probe = fresh_driver().cloud
    rounds = int(args.hours * 3600 / probe.step_seconds)

    results = []
    for name in [s.strip() for s in args.strategies.split(",") if s.strip()]:
        driver = fresh_driver()
        params = {}
        if name == "cotenancy_predictive":
            params = {
                "mhz_per_vcpu": simulation.SIM_MHZ_PER_VCPU,
                "flavors": [
                    {"name": f.name, "vcpus": f.vcpus, "ram": f.ram, "disk": f.disk}
                    for f in simulation.sim_flavors(driver)
                ],
            }
        runner = simulation.WatcherOnSimulator(name, driver, params)
        started = time.perf_counter()
        for _ in range(rounds):
            if driver.cloud.finished:
                break
            runner.run_round()
            driver.wait(driver.cloud.step_seconds)
        metrics = driver.cloud.metrics()
        errors = [r.error for r in runner.rounds if r.error]
        results.append(
            {
                "strategy": name,
                **metrics,
                "failed_actions": sum(len(r.failed) for r in runner.rounds),
                "failed_rounds": len(errors),
                "first_error": errors[0] if errors else "",
                "median_round_seconds": statistics.median(r.seconds for r in runner.rounds)
                if runner.rounds
                else 0.0,
                "wall_seconds": time.perf_counter() - started,
                "rounds": len(runner.rounds),
            }
        )
        print(f"# {name}: done in {results[-1]['wall_seconds']:.0f} s", file=sys.stderr, flush=True)

    print(
        f"PlanetLab {args.day}, {probe.n_vms} VMs on {probe.n_hosts} hosts (CloudSim reference setup, "
        f"interference {'off' if args.no_interference else 'on'}, seed {args.seed}), "
        f"{rounds} rounds of {probe.step_seconds:.0f} s, "
        "strategies loaded by Watcher 17's DefaultStrategyLoader"
    )
    header = (
        f"{'strategy':<26} {'SLAV %':>9} {'SLATAH %':>9} {'PDM %':>8} {'energy kWh':>11} "
        f"{'migrations':>10} {'conflict-min':>12} {'failed':>7} {'round s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        failed = r["failed_actions"] + r["failed_rounds"]
        print(
            f"{r['strategy']:<26} {r['slav']:>9.2e} {r['slatah']:>9.3f} {r['pdm']:>8.4f} "
            f"{r['energy_kwh']:>11.2f} {r['migrations']:>10d} {r['conflict_minutes']:>12.0f} "
            f"{failed:>7d} {r['median_round_seconds']:>8.3f}"
        )
    for r in results:
        if r["first_error"]:
            print(f"{r['strategy']}: {r['failed_rounds']} rounds failed, first: {r['first_error']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
