"""``cotenancy evaluate``: compare the predictors with baselines on traces given by path."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import time
from pathlib import Path

from cotenancy.cli.common import check_writable_file, positive_float, positive_int
from cotenancy.exceptions import ConfigurationError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 60, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float:
    """``30m``, ``2h``, ``1800s`` (a bare number means minutes) -> seconds."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ConfigurationError(f"cannot read duration {text!r}: use e.g. 30m, 2h, 1800s")
    return float(match.group(1)) * _UNIT[match.group(2)]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("evaluate", help="compare the predictors with baselines on traces")
    kinds = parser.add_subparsers(dest="what", required=True, metavar="WHAT")
    forecast = kinds.add_parser(
        "forecast", help="demand forecasts vs last value, yesterday, moving max, ARIMA"
    )
    forecast.add_argument("--trace", required=True, type=Path, help="Bitbrains or PlanetLab trace folder")
    forecast.add_argument("--train-days", type=positive_float, default=21.0)
    forecast.add_argument("--horizon", default="30m", help="how far ahead (e.g. 30m, 2h)")
    forecast.add_argument("--limit", type=positive_int, default=None, help="first N VMs only")
    forecast.add_argument("--json", type=Path, required=True, metavar="FILE")
    forecast.set_defaults(func=run_forecast)
    conflicts = kinds.add_parser("conflicts", help="pair risk vs reactive host rule and LR-MMT")
    conflicts.add_argument("--setup", default="cloudsim", choices=["cloudsim", "default"])
    conflicts.add_argument("--strategy", default="lr-mmt", help="strategy that runs the simulated cloud")
    conflicts.add_argument("--train", nargs="+", required=True, type=Path, metavar="PATH")
    conflicts.add_argument("--test", nargs="+", required=True, type=Path, metavar="PATH")
    conflicts.add_argument("--from", dest="label_from", default="15m", help="label window start")
    conflicts.add_argument("--horizon", default="30m", help="label window end")
    conflicts.add_argument("--json", type=Path, required=True, metavar="FILE")
    conflicts.add_argument(
        "--save-model",
        type=Path,
        metavar="FILE",
        help="also write the trained risk model there, to serve from [predict] model_dir",
    )
    conflicts.set_defaults(func=run_conflicts)


def _say(started: float):
    return lambda msg: print(f"[{time.perf_counter() - started:7.1f} s] {msg}", file=sys.stderr)


def _standard(value: object) -> object:
    """``value`` with every non-finite number as ``None``: strict JSON readers refuse ``Infinity``
    and ``NaN`` (a threshold no score reaches is infinite)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _standard(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_standard(item) for item in value]
    return value


def _write(path: Path, result: dict) -> None:
    try:
        path.write_text(json.dumps(_standard(result), indent=2, allow_nan=False))
    except OSError as exc:
        raise ConfigurationError(f"cannot write {path}: {exc}") from exc


def run_forecast(args: argparse.Namespace, conf) -> int:
    from cotenancy.predict.evaluation import evaluate_forecast, format_table
    from cotenancy.sim.setups import load_trace

    check_writable_file(args.json, "--json")
    horizon = parse_duration(args.horizon)
    if horizon <= 0:
        raise ConfigurationError("--horizon must be later than now")
    started = time.perf_counter()
    workload = load_trace(args.trace, limit=args.limit)
    resources = tuple(r for r in ("cpu", "memory") if r in {k.value for k in workload.utilisation})
    if workload.sizes is None:
        raise ConfigurationError(f"{args.trace}: the trace gives no VM sizes, so no demand in project units")
    try:
        result = evaluate_forecast(workload, resources, args.train_days, horizon, progress=_say(started))
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    print(format_table(result))
    _write(args.json, result)
    return 0


def _check_conflict_traces(paths: list[Path], setup: str) -> None:
    """Refuse a trace the setup is not defined on, and warn of a long one, before anything runs.

    Each path is simulated whole before anything is scored. CloudSim's reference setup is defined
    on PlanetLab day folders (a day of 288 steps); a Bitbrains folder is a month of thousands of
    VMs, hours of simulation, so it is refused there and announced with its span in ``default``.
    """
    from cotenancy.sim.setups import detect_trace_format
    from cotenancy.sim.traces import load_bitbrains

    for path in paths:
        if detect_trace_format(path) == "planetlab":
            continue
        if setup == "cloudsim":
            raise ConfigurationError(
                f"{path}: a Bitbrains trace; the cloudsim setup is defined on PlanetLab day folders "
                "(one day each): give PlanetLab days, or --setup default to simulate this trace whole"
            )
        # one VM's span: reading every file to learn it would take as long as loading the trace
        sample = load_bitbrains(path, limit=1)
        days = sample.n_steps * sample.step_seconds / 86400.0
        if days > 1.0:
            print(
                f"cotenancy: warning: {path} spans about {days:.1f} days: it is simulated whole "
                f"({sample.n_steps:,} rounds), which takes about {days:.0f} times as long as a day",
                file=sys.stderr,
            )


def run_conflicts(args: argparse.Namespace, conf) -> int:
    from cotenancy.predict.evaluation import ConflictExperiment, evaluate_conflicts, format_conflict_table

    check_writable_file(args.json, "--json")
    if args.save_model is not None and args.save_model.is_dir():
        raise ConfigurationError(f"--save-model: {args.save_model} is a folder; give a file name")
    label_from, horizon = parse_duration(args.label_from), parse_duration(args.horizon)
    if horizon <= 0 or label_from > horizon:
        raise ConfigurationError("--horizon must be later than now and not before --from")
    _check_conflict_traces([*args.train, *args.test], args.setup)
    started = time.perf_counter()
    try:
        experiment = ConflictExperiment(
            train=args.train,
            test=args.test,
            setup=args.setup,
            strategy=args.strategy,
            label_from_minutes=label_from / 60,
            horizon_minutes=horizon / 60,
        )
        result = evaluate_conflicts(experiment, progress=_say(started), save_model=args.save_model)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    print(format_conflict_table(result))
    _write(args.json, result)
    return 0
