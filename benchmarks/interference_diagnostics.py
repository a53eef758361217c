"""How well the predictive strategy's interference estimates match the simulator's hidden traits.

Runs ``predictive`` on one PlanetLab day in the CloudSim setup (settings of
``benchmarks/closed_loop.conf``, forecaster trained on the other days, risk heuristic) and prints
the day's metrics, migrations by reason, conflict-minutes by interference archetype, and the
correlation of the learnt sensitivity and cache pressure with the hidden ones. The hidden traits
are read only here, to judge the estimates; ``--oracle-pressure`` plans with the true pressures
instead of the learnt ones, to show what a perfect pressure estimate would be worth;
``--unweighted-pressure`` fits the pressures without weighing slowdown samples by the slope of the
load curve, to show what that weighting is worth. ``--seed`` draws other hidden traits and noise
for the same day (the benchmark uses seed 0): the spread over seeds is the noise a setting's
difference on one day has to beat. Several seeds (``--seed 1-4``, ``--seed 1,3``) print one report
each and then their mean; ``--jobs 2`` runs two at a time.

    .venv/bin/python benchmarks/interference_diagnostics.py 20110306 [--set planner.X=Y ...] \
        [--seed 1-4] [--jobs 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_closed_loop as bench  # noqa: E402

from cotenancy.conf import make_conf  # noqa: E402
from cotenancy.sim.runner import make_cloud, make_workload, run_cloud  # noqa: E402
from cotenancy.strategies.predictive import PredictiveStrategy  # noqa: E402

METRICS = ("energy_kwh", "slav", "migrations", "conflict_minutes")


def run_seed(args: argparse.Namespace, seed: int) -> tuple[dict[str, float], str]:
    """One run of the day on the hidden traits of ``seed``: its metrics and the printed report."""
    conf = make_conf([], config_files=[str(bench.REPO / "benchmarks" / "closed_loop.conf")])
    for item in args.set:
        key, _, value = item.partition("=")
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=group or None)
    forecaster = bench.forecaster_without(args.day, bench.DAYS, conf)
    risk = bench.risk_without(args.day, bench.DAYS, conf, False)
    strategy = PredictiveStrategy(conf, risk_model=risk, forecaster=forecaster)
    cloud = make_cloud(make_workload(bench._day_path(args.day)), "cloudsim", seed=seed, interference=True)
    traits = cloud._traits
    true_pressure = dict(zip(cloud.vm_ids, traits.pressure.tolist(), strict=True))
    risk._interference.weighted = not args.unweighted_pressure
    if args.oracle_pressure:
        risk._interference.pressure = lambda vm_ids: np.array([true_pressure.get(v, 1.0) for v in vm_ids])
    reasons: dict[str, int] = {}
    planner_plan = strategy.plan

    def plan(state):
        result = planner_plan(state)
        for step in result.migrations:
            key = step.reason.split(":")[0].split(" of ")[0].split(" from ")[0][:40]
            key = "predicted slowdown" if key.startswith("predicted slowdown") else key
            key = "pair risk" if key.startswith("pair risk") else key
            reasons[key] = reasons.get(key, 0) + 1
        return result

    strategy.plan = plan
    started = time.perf_counter()
    metrics = run_cloud(cloud, strategy, conf).metrics
    lines = [
        f"{args.day} {args.set} oracle pressure: {args.oracle_pressure}, "
        f"unweighted pressure: {args.unweighted_pressure}, seed {seed}"
    ]
    lines += [f"  {name:18s} {metrics[name]:,.6g}" for name in METRICS]
    lines.append(f"  wall seconds       {time.perf_counter() - started:.0f}")
    lines.append("migrations by reason")
    lines += [f"  {count:7,d}  {key}" for key, count in sorted(reasons.items(), key=lambda kv: -kv[1])]
    minutes = np.zeros(len(cloud.vm_ids))
    index = {v: i for i, v in enumerate(cloud.vm_ids)}
    for event in cloud.events:
        for vm_id in event.vm_ids:
            minutes[index[vm_id]] += event.duration / 60.0
    lines.append("conflict-minutes by archetype (hidden)")
    for k, name in enumerate(cloud._interference.archetype_names):
        chosen = traits.archetype == k
        lines.append(f"  {name:15s} {int(chosen.sum()):5d} VMs  {minutes[chosen].sum():10,.0f}")
    ids = list(cloud.vm_ids)
    memory = risk._interference
    learnt_s = memory.sensitivity(ids, np.zeros(len(ids)))
    lines.append(
        f"learnt sensitivity vs hidden: correlation {np.corrcoef(learnt_s, traits.sensitivity)[0, 1]:.3f}"
    )
    if not args.oracle_pressure:
        learnt_p = memory.pressure(ids)
        diagonal = memory._gram.diagonal()
        evidence = np.array([diagonal[memory._index[v]] if v in memory._index else 0.0 for v in ids])
        seen = evidence > 1.0
        lines.append(
            f"learnt pressure vs hidden: correlation {np.corrcoef(learnt_p, traits.pressure)[0, 1]:.3f} "
            f"(all VMs), {np.corrcoef(learnt_p[seen], traits.pressure[seen])[0, 1]:.3f} "
            f"({int(seen.sum())} VMs that sat next to a sensitive one)"
        )
    return {name: float(metrics[name]) for name in METRICS}, "\n".join(lines)


def seed_list(text: str) -> list[int]:
    """``"1,2,3"`` or ``"1-4"`` (or a mix) as a list of seeds."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        seeds.extend(range(int(low), int(high) + 1) if dash else [int(low)])
    if not seeds:
        raise argparse.ArgumentTypeError("no seed given")
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("day")
    parser.add_argument("--set", action="append", default=[], metavar="GROUP.OPTION=VALUE")
    parser.add_argument("--oracle-pressure", action="store_true")
    parser.add_argument("--unweighted-pressure", action="store_true")
    parser.add_argument("--seed", type=seed_list, default=[0], help="one seed, a list (1,2) or a range (1-4)")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run at once (2 cores here)")
    args = parser.parse_args(argv)
    results: list[dict[str, float]] = []
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for metrics, report in pool.map(run_seed, [args] * len(args.seed), args.seed):
            print(report, flush=True)
            results.append(metrics)
    if len(results) > 1:
        print(f"mean over seeds {','.join(map(str, args.seed))}")
        for name in METRICS:
            print(f"  {name:18s} {float(np.mean([r[name] for r in results])):,.6g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
