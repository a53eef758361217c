"""Planning speed and optimality gap of the CP-SAT planner, per round, on this machine.

Two clouds, as in issue 4:

* ``planetlab``: the CloudSim reference setup on one PlanetLab day (800 hosts, 1,052 VMs on
  20110303), target: median under 1 s per round;
* ``large``: 1,000 hosts and 10,000 VMs of the synthetic workload, target: under 10 s per round.

Each cloud is replayed through the simulated driver with no strategy acting, and every
``--every`` steps one planning round is timed: the forecast (the ``default`` forecaster; cold
fallback unless a trained model is installed), then the planner (candidates, CP-SAT with its time
limit, greedy fallback, ordering), which calls the risk model for the pairs it considers. The risk
model is the ``xgboost`` plugin when it can be loaded (cold or trained); ``--risk standin`` uses a
stand-in that scores pairs from their current CPU demand, so the planner's share can be measured
without the predictors.

Run: ``.venv/bin/python benchmarks/bench_planner.py [--cloud planetlab|large|both]``. The product
defaults often leave only a few dozen candidates; ``--set planner.underloaded_hosts=12`` offers
enough hosts for emptying that rounds reach ``max_candidate_vms``, the largest model the defaults
allow.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cotenancy import loading
from cotenancy.conf import make_conf
from cotenancy.model import ActionPlan, ClusterState
from cotenancy.sim.cloud import SimulatedCloud
from cotenancy.sim.runner import _simulation_loop_class, make_workload
from cotenancy.sim.setups import build_setup, default_setup
from cotenancy.sim.synthetic import generate_synthetic
from cotenancy.strategies.base import Strategy
from cotenancy.strategies.predictive import PredictiveStrategy

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("COTENANCY_SHARED", REPO.parent / "shared"))


class _Idle(Strategy):
    """Lets the cloud run untouched while telemetry accumulates."""

    name = "idle"

    def plan(self, state: ClusterState) -> ActionPlan:
        return ActionPlan("idle")


class DemandStandInRisk:
    """Stand-in risk: busy pairs are riskier (sum of their latest CPU shares, squashed)."""

    def __init__(self) -> None:
        self.state: ClusterState | None = None

    def score_pairs(
        self, state: ClusterState, pairs: np.ndarray, hosts: np.ndarray | None = None
    ) -> np.ndarray:
        cpu = np.nan_to_num(state.telemetry.latest("cpu"))
        size = np.array([state.inventory.vms[v].size.cpu for v in state.telemetry.vm_ids])
        share = cpu / np.maximum(size, 1.0)
        z = 6.0 * (share[pairs[:, 0]] + share[pairs[:, 1]]) - 7.0
        return 1.0 / (1.0 + np.exp(-z))


def _cloud(kind: str) -> SimulatedCloud:
    if kind == "planetlab":
        workload = make_workload(SHARED / "traces" / "planetlab" / "20110303")
        return SimulatedCloud(workload, build_setup(workload, "cloudsim"))
    workload = generate_synthetic(10_000, 1.0, step_seconds=300.0, seed=1)
    low, high = 0.5, 4.0
    setup = default_setup(workload, 1.0)
    for _ in range(40):  # headroom that gives exactly 1,000 hosts
        mid = (low + high) / 2
        setup = default_setup(workload, mid)
        if setup.hosts.n_hosts == 1000:
            break
        low, high = (mid, high) if setup.hosts.n_hosts < 1000 else (low, mid)
    return SimulatedCloud(workload, setup)


def bench(
    kind: str,
    rounds: int,
    every: int,
    warmup: int,
    risk: str,
    time_limit: float | None,
    overrides: Sequence[str] = (),
) -> dict:
    from cotenancy.drivers.simulated.driver import SimulatedDriver

    conf = make_conf([], config_files=[])
    if time_limit is not None:
        conf.set_override("time_limit", time_limit, group="planner")
    for item in overrides:
        key, _, value = item.partition("=")
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=None if group in ("", "DEFAULT") else group)
    cloud = _cloud(kind)
    driver = SimulatedDriver(conf, cloud=cloud)
    conf.set_override("interval", int(round(cloud.step_seconds)))
    loop = _simulation_loop_class()(conf, driver, _Idle(conf), dry_run=True)
    risk_model = DemandStandInRisk() if risk == "standin" else None
    if risk == "plugin":
        risk_model = loading.load_plugin(loading.RISK_MODELS, "xgboost", conf)
    strategy = PredictiveStrategy(conf, risk_model=risk_model)
    for _ in range(warmup):
        loop.run_once()
        driver.wait(loop.interval)
    forecast_s, plan_s, total_s, gaps, statuses, migrations, candidates = [], [], [], [], [], [], []
    options: list[float] = []
    for _ in range(rounds):
        now = driver.now()
        _, events = loop.collect(now)
        state = loop.observe(now, events)
        t0 = time.perf_counter()
        forecast = strategy.demand_forecast(state)
        t1 = time.perf_counter()
        plan = strategy.planner.plan(state.inventory, forecast, strategy.pair_risk(state), state.migrating)
        t2 = time.perf_counter()
        forecast_s.append(t1 - t0)
        plan_s.append(t2 - t1)
        total_s.append(t2 - t0)
        gap = plan.stats.get("optimality_gap")
        gaps.append(float(gap) if gap is not None else math.nan)
        statuses.append(f"{plan.stats.get('solver')}/{plan.stats.get('solver_status', '-')}")
        migrations.append(len(plan.migrations))
        candidates.append(float(plan.stats.get("candidates", 0)))
        options.append(float(plan.stats.get("options", 0)))
        for _ in range(every):
            driver.wait(loop.interval)
    finite = [g for g in gaps if not math.isnan(g)]
    return {
        "cloud": kind,
        "hosts": cloud.n_hosts,
        "vms": cloud.n_vms,
        "rounds": rounds,
        "risk": risk,
        "median_round_s": statistics.median(total_s),
        "max_round_s": max(total_s),
        "median_forecast_s": statistics.median(forecast_s),
        "median_plan_s": statistics.median(plan_s),
        "median_gap": statistics.median(finite) if finite else math.nan,
        "max_gap": max(finite) if finite else math.nan,
        "solver": ", ".join(f"{s} x{statuses.count(s)}" for s in sorted(set(statuses))),
        "median_candidates": statistics.median(candidates),
        "median_options": statistics.median(options),
        "median_migrations": statistics.median(migrations),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cloud", choices=["planetlab", "large", "both"], default="both")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--every", type=int, default=24, help="simulated steps between timed rounds")
    parser.add_argument("--warmup", type=int, default=12, help="steps of telemetry before the first round")
    parser.add_argument("--risk", choices=["plugin", "standin", "none"], default="plugin")
    parser.add_argument("--time-limit", type=float, default=None, help="override [planner] time_limit")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.OPTION=VALUE",
        help="configuration override, e.g. planner.underloaded_hosts=12 for full-size models",
    )
    args = parser.parse_args(argv)
    kinds = ["planetlab", "large"] if args.cloud == "both" else [args.cloud]
    targets = {"planetlab": 1.0, "large": 10.0}
    print(
        f"{'cloud':10} {'hosts':>6} {'vms':>6} {'median s':>9} {'max s':>7} {'forecast':>9} "
        f"{'planner':>8} {'gap med':>8} {'gap max':>8} {'cands':>6} {'opts':>6} {'moves':>6}  solver"
    )
    for kind in kinds:
        r = bench(kind, args.rounds, args.every, args.warmup, args.risk, args.time_limit, args.set)
        verdict = "meets" if r["median_round_s"] < targets[kind] else "MISSES"
        print(
            f"{r['cloud']:10} {r['hosts']:>6} {r['vms']:>6} {r['median_round_s']:>9.3f} "
            f"{r['max_round_s']:>7.3f} {r['median_forecast_s']:>9.3f} {r['median_plan_s']:>8.3f} "
            f"{r['median_gap']:>8.4f} {r['max_gap']:>8.4f} {r['median_candidates']:>6.0f} "
            f"{r['median_options']:>6.0f} "
            f"{r['median_migrations']:>6.0f}  {r['solver']}"
        )
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"  -> {verdict} the target of {targets[kind]:.0f} s per round (risk model: {r['risk']}, "
            f"{r['rounds']} rounds, load average {load} on {os.cpu_count()} cores)"
        )
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
