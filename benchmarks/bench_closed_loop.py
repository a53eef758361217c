"""The closed loop side by side: ``noop``, ``reactive-threshold``, ``lr-mmt`` and ``predictive`` on
the five PlanetLab days in the CloudSim reference setup (800 hosts), one table per day and the mean.

Columns: energy (kWh), SLATAH (%), PDM (%), SLAV (%), ESV, migrations, conflict-minutes (VM-minutes
with less than 90 % of the CPU request delivered), as computed by the simulator
(:mod:`cotenancy.sim.cloud`). Every strategy runs through the product's control loop on the
``simulated`` driver (:func:`cotenancy.sim.runner.run_simulation`).

Models are never trained on the day they are tested on: for each test day the forecaster is
trained on the VMs of the other four days, and with ``--risk trained`` the ``xgboost`` risk model
on those days replayed under LR-MMT (default: the plugin's heuristic; ``--no-train`` serves the
cold-start forecaster too). The table says which models served.

Every run reads ``benchmarks/closed_loop.conf`` (``--config-file`` to change it): the settings an
operator of this consolidating cloud gives the predictive strategy. They were chosen on 20110306
alone, so the table also gives the mean over the other four days.

``--by-hour`` adds, for each day, the mean active hosts, energy, migrations and conflict-minutes
hour by hour.

Run: ``.venv/bin/python benchmarks/bench_closed_loop.py [--days 20110303,...] [--jobs 2] [--by-hour]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cotenancy.sim import compare

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("COTENANCY_SHARED", REPO.parent / "shared"))
DAYS = ["20110303", "20110306", "20110309", "20110322", "20110325"]
#: the day the settings in ``closed_loop.conf`` were chosen on
TUNING_DAY = "20110306"
DEFAULT_CONFIG = Path(__file__).resolve().parent / "closed_loop.conf"
STRATEGIES = ["noop", "reactive-threshold", "lr-mmt", "predictive"]


def _day_path(day: str) -> Path:
    return SHARED / "traces" / "planetlab" / day


def forecaster_without(test_day: str, days: list[str], conf):
    """The default forecaster serving a model trained without ``test_day`` (cached under .cache/)."""
    paths = [_day_path(d) for d in days]
    return compare.forecaster_without(_day_path(test_day), paths, conf, REPO / ".cache" / "bench")


def risk_without(test_day: str, days: list[str], conf, train: bool):
    """The ``xgboost`` risk model trained on the other days under LR-MMT (cached under .cache/, named
    by ``compare.risk_file_name``); with ``train`` false, the plugin's labelled heuristic (host load,
    ready time, past conflicts)."""
    from cotenancy.predict.evaluation import ConflictExperiment, train_conflict_model
    from cotenancy.predict.risk import XGBoostRiskModel

    if not train:
        return XGBoostRiskModel(conf, model_path=REPO / ".cache" / "bench" / "no-model.json")
    path = REPO / ".cache" / "bench" / compare.risk_file_name(test_day)
    risk = XGBoostRiskModel(conf, model_path=path)
    if not path.exists():
        others = [_day_path(d) for d in days if d != test_day]
        risk.save(train_conflict_model(ConflictExperiment(train=others)))
    return risk


def run_one(
    day: str,
    strategy_name: str,
    overrides: list[str],
    train: bool,
    days: list[str],
    config_files: list[str],
    trained_risk: bool,
) -> dict:
    """One (day, strategy) run in its own process; returns metrics or the error."""
    from cotenancy import loading
    from cotenancy.conf import make_conf
    from cotenancy.sim.runner import make_workload, run_simulation

    started = time.perf_counter()
    conf = make_conf([], config_files=config_files)
    for item in overrides:
        key, _, value = item.partition("=")
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=None if group in ("", "DEFAULT") else group)
    models = ""
    try:
        workload = make_workload(_day_path(day))
        if strategy_name == "predictive":
            from cotenancy.predict.forecast import HybridForecaster
            from cotenancy.strategies.predictive import PredictiveStrategy

            if train:
                forecaster = forecaster_without(day, days, conf)
                models = "forecast trained on the other days"
            else:
                forecaster = HybridForecaster(conf, model_path=REPO / ".cache" / "bench" / "no-model.json")
                models = "forecast fallback"
            risk = risk_without(day, days, conf, train and trained_risk)
            models += ", risk xgboost " + (
                "trained on the other days" if risk.trained else "cold fallback (heuristic)"
            )
            strategy = PredictiveStrategy(conf, risk_model=risk, forecaster=forecaster)
        else:
            strategy = loading.load_plugin(loading.STRATEGIES, strategy_name, conf)
        result = run_simulation(workload, setup="cloudsim", strategy=strategy, conf=conf)
        metrics = {k: float(v) for k, v in result.metrics.items()}
        return {
            "day": day,
            "strategy": strategy_name,
            "metrics": metrics,
            "round_seconds": _round_times(result.extra),
            "hourly": _hourly(result.series),
            "models": models,
            "seconds": time.perf_counter() - started,
        }
    except Exception as exc:
        return {
            "day": day,
            "strategy": strategy_name,
            "error": f"{type(exc).__name__}: {exc}",
            "trace": traceback.format_exc(),
            "seconds": time.perf_counter() - started,
        }


def _hourly(series: dict[str, list[float]]) -> list[dict[str, float]]:
    """Mean active hosts, energy, migrations and conflict-minutes in each hour of the day, so a
    difference can be traced to when it arose (a slow start or a steady excess)."""
    times = np.asarray(series.get("time", []), dtype=float)
    if times.size < 2:
        return []
    step = float(np.median(np.diff(times)))
    hours = ((times - times[0]) // 3600).astype(int)
    active = np.asarray(series["active_hosts"], dtype=float)
    used = np.asarray(series["energy_kwh"], dtype=float)
    moves = np.asarray(series["migrations"], dtype=float)
    degraded = np.asarray(series["degraded_vms"], dtype=float)
    return [
        {
            "hour": int(h),
            "active_hosts": float(active[hours == h].mean()),
            "energy_kwh": float(used[hours == h].max() - used[hours < h].max(initial=0.0)),
            "migrations": float(moves[hours == h].sum()),
            "conflict_minutes": float(degraded[hours == h].sum() * step / 60.0),
        }
        for h in np.unique(hours)
    ]


def _print_hourly(results: dict, days: list[str], strategies: list[str]) -> None:
    print()
    print("by hour of the day: mean active hosts / energy kWh / migrations / conflict-minutes")
    for d in days:
        rows = {s: results[(d, s)].get("hourly") or [] for s in strategies}
        if not any(rows.values()):
            continue
        print(f"  {d}  " + "".join(f"{s:>36}" for s in strategies))
        for h in range(max(len(r) for r in rows.values())):
            cells = ""
            for s in strategies:
                r = rows[s][h] if h < len(rows[s]) else None
                text = "-"
                if r:
                    text = f"{r['active_hosts']:.0f} / {r['energy_kwh']:.2f} / {r['migrations']:.0f}"
                    text += f" / {r['conflict_minutes']:.0f}"
                cells += f"{text:>36}"
            print(f"  {h:02d}:00     {cells}")


def _round_times(extra: dict) -> dict[str, float]:
    """Median, 95th percentile and largest time per round of the strategy (forecasts, risks, plan)
    and of its planner alone, and when the slowest round ran (trace seconds), so the closed loop's
    cost per round is printed next to what it achieved."""
    times: dict[str, float] = {}
    clock = extra.get("round_trace_seconds", [])
    for key in ("plan_seconds", "planner_seconds", "planner_build_seconds", "planner_solve_seconds"):
        values = np.asarray(extra.get(key, []), dtype=float)
        if len(values):
            name = key.removesuffix("_seconds")
            times[f"{name}_median"] = float(np.median(values))
            times[f"{name}_p95"] = float(np.quantile(values, 0.95))
            times[f"{name}_max"] = float(values.max())
            slowest = int(values.argmax())
            if slowest < len(clock):
                times[f"{name}_slowest_at"] = float(clock[slowest])
    return times


def _clock(trace_seconds: float | None) -> str:
    if trace_seconds is None:
        return "?"
    minutes = int(trace_seconds // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _print_round_times(results: dict, days: list[str], strategies: list[str]) -> None:
    print()
    print(
        "seconds per round, median / p95 / max, and when the slowest ran (trace time)"
        " (strategy: forecasts, risks and plan; planner: the plan alone):"
    )
    for s in strategies:
        for d in days:
            t = results[(d, s)].get("round_seconds") or {}
            if "plan_median" not in t:
                continue
            line = (
                f"  {s:20} {d}  strategy {t['plan_median']:.3f} / {t['plan_p95']:.2f} / {t['plan_max']:.2f}"
                f" at {_clock(t.get('plan_slowest_at'))}"
            )
            if t.get("planner_max", 0.0) > 0:
                line += (
                    f"  planner {t['planner_median']:.3f} / {t['planner_p95']:.2f} / {t['planner_max']:.2f}"
                    f" at {_clock(t.get('planner_slowest_at'))}"
                    f" (median build {t.get('planner_build_median', 0.0):.3f}"
                    f", CP-SAT {t.get('planner_solve_median', 0.0):.3f})"
                )
            print(line)


def _means(results: dict, days: list[str], strategies: list[str]) -> dict[str, dict[str, float] | str]:
    metrics = {key: r["metrics"] for key, r in results.items() if "metrics" in r}
    return compare.means(metrics, days, strategies)


def _print_ratios(title: str, means: dict[str, dict[str, float] | str]) -> None:
    """predictive / lr-mmt of the means, against the targets of issue 4."""
    p, lr = means.get("predictive"), means.get("lr-mmt")
    if not (isinstance(p, dict) and isinstance(lr, dict)):
        return
    targets = [("SLAV", "slav", 0.5), ("migrations", "migrations", 0.25), ("energy", "energy_kwh", 1.05)]
    targets.append(("conflict-minutes", "conflict_minutes", 0.5))
    print()
    print(f"predictive / lr-mmt ({title}) against the targets of issue 4:")
    for label, key, limit in targets:
        ratio = p[key] / lr[key] if lr[key] else math.inf
        verdict = "meets" if ratio <= limit else "MISSES"
        print(f"  {label:17} {ratio:8.3f}  (target <= {limit:g})  {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", default=",".join(DAYS))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument("--jobs", type=int, default=1, help="runs in parallel (this machine has 2 cores)")
    parser.add_argument(
        "--no-train", action="store_true", help="serve the cold-start forecaster and the risk heuristic"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.OPTION=VALUE",
        help="configuration override for every run, e.g. planner.max_migrations=20",
    )
    parser.add_argument(
        "--risk",
        choices=["heuristic", "trained"],
        default="heuristic",
        help="pair risk the predictive strategy plans with: the plugin's heuristic (default; the "
        "trained model, at the default risk threshold, moves VMs for pair risk every round) or "
        "the xgboost model trained on the other days",
    )
    parser.add_argument(
        "--config-file",
        type=Path,
        default=DEFAULT_CONFIG,
        help="configuration every run reads (default: %(default)s); --set overrides it",
    )
    parser.add_argument("--json", type=Path, help="write every result as JSON")
    parser.add_argument(
        "--by-hour",
        action="store_true",
        help="also print active hosts, energy, migrations and conflict-minutes hour by hour",
    )
    parser.add_argument("--train-only", action="store_true", help="only train (and cache) the forecasters")
    parser.add_argument(
        "--reuse",
        type=Path,
        action="append",
        default=[],
        help="JSON of an earlier run (same setup) whose (day, strategy) results are shown instead of rerun",
    )
    args = parser.parse_args(argv)
    days = [d for d in args.days.split(",") if d]
    strategies = [s for s in args.strategies.split(",") if s]
    all_days = DAYS if set(days) <= set(DAYS) else days
    if not args.config_file.is_file():
        parser.error(f"no such configuration file: {args.config_file}")
    config_files = [str(args.config_file)]
    if args.train_only:
        from cotenancy.conf import make_conf

        for day in days:
            started = time.perf_counter()
            forecaster_without(day, all_days, make_conf([], config_files=[]))
            risk_without(day, all_days, make_conf([], config_files=[]), train=True)
            print(f"forecaster and risk model without {day}: {time.perf_counter() - started:.0f} s")
        return 0
    earlier: dict[tuple[str, str], dict] = {}
    for path in args.reuse:
        for key, value in json.loads(path.read_text()).items():
            day, _, strategy = key.partition("/")
            if "metrics" in value:
                earlier[(day, strategy)] = value
    jobs = [(d, s) for d in days for s in strategies if (d, s) not in earlier]
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {
            job: pool.submit(
                run_one,
                job[0],
                job[1],
                args.set,
                not args.no_train,
                all_days,
                config_files,
                args.risk == "trained",
            )
            for job in jobs
        }
        results = {job: f.result() for job, f in futures.items()}
    if earlier:
        print(f"reused from {', '.join(map(str, args.reuse))}: {', '.join('/'.join(k) for k in earlier)}")
    results = {job: results.get(job) or earlier[job] for job in [(d, s) for d in days for s in strategies]}
    print(
        f"configuration: {args.config_file}; overrides: {args.set or 'none'}; "
        f"forecaster: {'fallback' if args.no_train else 'trained per day'}; risk: {args.risk}"
    )
    for (day, strategy), r in results.items():
        if "error" in r:
            print(f"{day} {strategy} failed: {r['error']}", file=sys.stderr)
    for day in days:
        rows = {
            s: results[(day, s)].get("metrics") or f"unavailable: {results[(day, s)]['error']}"
            for s in strategies
        }
        print()
        print(compare.table(f"PlanetLab {day} (cloudsim setup)", rows))
        models = results.get((day, "predictive"), {}).get("models")
        if models:
            print(f"  predictive models: {models}")
    _print_round_times(results, days, strategies)
    if args.by_hour:
        _print_hourly(results, days, strategies)
    means = _means(results, days, strategies)
    print()
    print(compare.table(f"mean over {len(days)} days", means))
    _print_ratios(f"mean over {len(days)} days", means)
    held_out = [d for d in days if d != TUNING_DAY]
    if TUNING_DAY in days and held_out:
        print()
        title = f"mean over the {len(held_out)} days the settings were not chosen on"
        kept = _means(results, held_out, strategies)
        print(compare.table(title, kept))
        _print_ratios(title, kept)
    if args.json:
        args.json.write_text(json.dumps({f"{d}/{s}": r for (d, s), r in results.items()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
