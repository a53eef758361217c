"""``cotenancy simulate``: run a strategy on a simulated cloud and report CloudSim's metrics."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from cotenancy import loading
from cotenancy.cli.common import (
    check_writable_file,
    non_negative_int,
    open_store,
    positive_float,
    positive_int,
)
from cotenancy.exceptions import ConfigurationError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay a trace (or the synthetic workload) on a simulated cloud",
        description="Run a strategy through the control loop on a simulated cloud and print energy, "
        "SLA and conflict metrics. Without --trace the embedded synthetic workload is used. Given a "
        "folder of PlanetLab days or several strategies, runs each strategy on each day and prints "
        "one table per day and the mean; predictive's forecaster is then trained on the other days.",
    )
    parser.add_argument(
        "--trace",
        metavar="PATH",
        help="PlanetLab day folder, a folder of PlanetLab days, or Bitbrains CSV folder",
    )
    parser.add_argument(
        "--strategy",
        default="lr-mmt",
        help="strategy name, or several separated by commas (default: lr-mmt)",
    )
    parser.add_argument(
        "--setup",
        choices=("default", "cloudsim"),
        default=None,
        help="cloud setup (default: [simulator] setup)",
    )
    parser.add_argument(
        "--days", type=positive_float, default=None, help="simulated span in days (default: 1)"
    )
    parser.add_argument(
        "--vms", type=positive_int, default=None, help="VMs of the synthetic workload (at least 1)"
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="seed of the synthetic workload and hidden traits (0 or more)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    parser.add_argument("--report", metavar="FILE.html", help="write a self-contained HTML report with plots")
    parser.add_argument(
        "--model-dir",
        metavar="DIR",
        help="where the forecasters trained for a comparison are kept for the next run "
        "(default: a temporary folder, removed afterwards)",
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="record the run in this history store as cotenancy run --driver simulated does "
        "(telemetry, inventory, events, plans, stamped in the trace's time), for cotenancy train "
        "and cotenancy api --store URL (default: nothing is recorded)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conf) -> int:
    from cotenancy.sim import compare
    from cotenancy.sim.runner import make_cloud, make_workload, run_cloud, summary_rows

    sim = conf.simulator
    setup = args.setup or sim.setup
    days = args.days if args.days is not None else sim.days
    seed = args.seed if args.seed is not None else sim.seed
    n_vms = args.vms if args.vms is not None else sim.synthetic_vms
    if not math.isfinite(days) or days <= 0:
        raise ConfigurationError(f"[simulator] days must be a finite number above 0, got {days}")
    if seed < 0:
        raise ConfigurationError(f"[simulator] seed must be 0 or more, got {seed}")
    for option, target in (("--json", args.json), ("--report", args.report)):
        if target:
            check_writable_file(target, option)
    names = [name.strip() for name in args.strategy.split(",") if name.strip()]
    if not names:
        raise ConfigurationError("--strategy names no strategy")
    trace_days = compare.trace_days(args.trace) if args.trace else []
    if len(names) > 1 or len(trace_days) > 1:
        return _compare(args, conf, trace_days, names, setup, seed, days)
    strategy = loading.load_plugin(loading.STRATEGIES, names[0], conf)
    # opened first, so a store that cannot be opened stops the command before the trace is read
    store = open_store(conf, args.store) if args.store else None
    try:
        workload = make_workload(args.trace, days=days, n_vms=n_vms, seed=seed)
        cloud = make_cloud(
            workload, setup, seed=seed, interference=sim.interference, headroom=sim.host_headroom
        )
        result = run_cloud(cloud, strategy, conf, store=store, progress=not args.no_progress)
    finally:
        if store is not None:
            store.close()
    width = max(len(name) for name, _ in summary_rows(result))
    print(
        f"{result.strategy} on {result.setup}: {result.n_vms} VMs, {result.n_hosts} hosts, "
        f"{result.steps} rounds"
    )
    for name, value in summary_rows(result):
        print(f"  {name:<{width}}  {value}")
    failures: list[str] = []
    if args.json and (
        error := _write_json(args.json, {**result.as_dict(), "anomalies": result.extra["anomalies"]})
    ):
        failures.append(error)
    if args.report:
        from cotenancy.sim.report import write_report

        try:
            write_report(result, args.report)
        except OSError as exc:
            failures.append(f"--report: cannot write {args.report}: {exc.strerror or exc}")
    if failures:
        raise ConfigurationError("; ".join(failures))
    return 0


def _write_json(path: str, document: dict) -> str | None:
    """Write ``document`` to ``path``; what went wrong, or None when it was written."""
    try:
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        return f"--json: cannot write {path}: {exc.strerror or exc}"
    return None


def _compare(
    args: argparse.Namespace, conf, days: list[Path], names: list[str], setup: str, seed: int, span: float
) -> int:
    """Every strategy on every day: a table per day, then the mean over the days."""
    import tempfile

    from cotenancy.sim import compare

    if not days:
        raise ConfigurationError("comparing strategies needs --trace (a PlanetLab day or a folder of days)")
    if args.report:
        raise ConfigurationError("--report is for one strategy on one day; use --json for a comparison")
    if args.store:
        # several runs of one trace would write their clouds over each other at the same times
        raise ConfigurationError("--store records one strategy on one day; run them one at a time")
    for name in names:
        loading.plugin_class(loading.STRATEGIES, name)
    with tempfile.TemporaryDirectory(prefix="cotenancy-models-") as scratch:
        model_dir = Path(args.model_dir) if args.model_dir else Path(scratch)
        model_dir.mkdir(parents=True, exist_ok=True)
        results = compare.compare(
            days,
            names,
            conf,
            model_dir,
            setup=setup,
            seed=seed,
            days_span=span,
            interference=conf.simulator.interference,
            progress=not args.no_progress,
        )
    metrics = {key: {k: float(v) for k, v in r.metrics.items()} for key, r in results.items()}
    day_names = [d.name for d in days]
    for day in day_names:
        print(compare.table(f"{day} ({setup} setup)", {s: metrics[(day, s)] for s in names}))
        print()
    mean = compare.means(metrics, day_names, names)
    print(compare.table(f"mean over {len(day_names)} days", mean))
    if args.json:
        document = {
            "days": {d: {s: metrics[(d, s)] for s in names} for d in day_names},
            "mean": mean,
        }
        if error := _write_json(args.json, document):
            raise ConfigurationError(error)
    return 0
