"""Demand forecasts on Bitbrains Rnd 2013-7: the model against last value, same time yesterday,
moving-window max and ARIMA (first 21 days train, rest test, 30 min ahead, CPU and memory).

    .venv/bin/python benchmarks/bench_forecast_bitbrains.py [--limit N] [--json out.json]
    .venv/bin/python benchmarks/bench_forecast_bitbrains.py --inside-training 3 [--set FIELD=VALUE ...]

``--inside-training D`` never reads the test period: it keeps the first ``--train-days`` only and
tests on their last D days (training on the ones before). Model changes are judged this way first.

Prints the table and the p95-pinball reduction against the best baseline. The same code serves
``cotenancy evaluate forecast``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from cotenancy.predict.evaluation import evaluate_forecast, format_table
from cotenancy.predict.forecast import TrainingConfig
from cotenancy.sim.traces import load_bitbrains

SHARED = Path(os.environ.get("COTENANCY_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(SHARED / "traces" / "bitbrains-rnd" / "2013-7"))
    parser.add_argument("--limit", type=int, default=None, help="first N VMs only (default: all)")
    parser.add_argument("--train-days", type=float, default=21.0)
    parser.add_argument("--horizon-minutes", type=float, default=30.0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--inside-training",
        type=float,
        default=None,
        metavar="DAYS",
        help="validate inside the training period: test on its last DAYS days, never on the test period",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change a TrainingConfig field (a number, or 0/1 for a yes/no field), e.g. "
        "--set weight_power=0.75; repeatable",
    )
    args = parser.parse_args()
    changes = {}
    defaults = TrainingConfig()
    for item in args.set:
        name, _, value = item.partition("=")
        kind = type(getattr(defaults, name, None))
        try:
            if kind is bool and value in ("0", "1"):
                changes[name] = value == "1"
            elif kind in (int, float):
                changes[name] = kind(value)
            else:
                raise ValueError
        except ValueError:
            parser.error(f"--set {item!r}: expected FIELD=VALUE, a numeric (or 0/1) TrainingConfig field")
    began = time.perf_counter()
    workload = load_bitbrains(args.trace, limit=args.limit)
    train_days = args.train_days
    if args.inside_training:
        workload = workload.slice_steps(0, int(round(train_days * 86400 / workload.step_seconds)))
        train_days -= args.inside_training
        print(f"inside the training period: train {train_days:g} days, test {args.inside_training:g}")
    result = evaluate_forecast(
        workload,
        train_days=train_days,
        horizon_seconds=args.horizon_minutes * 60,
        config_changes=changes,
        progress=lambda msg: print(f"[{time.perf_counter() - began:7.1f} s] {msg}", file=sys.stderr),
    )
    print(f"{workload.n_vms} VMs, {result['test_origins']} test origins, units MHz / MiB")
    print(format_table(result))
    print("timings:", json.dumps({k: round(v, 1) for k, v in result["timings"].items()}))
    print("model validation (held-out end of training, normalised units):")
    for resource, metrics in result["model_validation"].items():
        print(f"  {resource}: " + ", ".join(f"{k}={v:.3f}" for k, v in metrics.items()))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
