"""Anomaly detection on Bitbrains Rnd 2013-7: flags on the trace as recorded per 1,000 VM-hours,
and injected exfiltrations (+100 Mbit/s for 30 min) and runaway processes (CPU pinned for an hour)
caught within 15 min, for each detector setting asked for.

    .venv/bin/python benchmarks/bench_anomaly.py [--limit N] [--json out.json]
    .venv/bin/python benchmarks/bench_anomaly.py --inside-training 3 --grid

The forecaster (the committed one, all four resources) is trained on the first ``--train-days``
(21) and the detector judged on the rest, with injections drawn from ``--seed`` (default 1).
``--inside-training D`` never reads the test period: it trains on the first 21 - D days and judges
the last D of the 21 (seed 0). ``--grid`` judges every combination of thresholds, ratios and
shares (``cotenancy.predict.anomaly_evaluation``) and prints the one chosen by the flag budget;
without it, the configured defaults alone, or at each of the ``--persistence`` and
``--min-share`` values given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

from tqdm import tqdm

from cotenancy.conf import make_conf
from cotenancy.predict.anomaly import AnomalySettings
from cotenancy.predict.anomaly_evaluation import choose, evaluate_anomalies, settings_grid
from cotenancy.sim.traces import load_bitbrains

SHARED = Path(os.environ.get("COTENANCY_SHARED", Path(__file__).resolve().parents[2] / "shared"))
GRID = {
    "references": ("p95", "ceiling"),
    "thresholds": (4, 8, 16, 32),
    "min_ratios": (1.25, 1.5, 2, 3),
    "min_shares": (0, 0.05, 0.1, 0.25),
    "persistences": (1, 2),
}
#: flags an operator is asked to look at: at most one per VM every 2,000 hours (about 83 days)
BUDGET_PER_1000_VM_HOURS = 0.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default=str(SHARED / "traces" / "bitbrains-rnd" / "2013-7"))
    parser.add_argument("--limit", type=int, default=None, help="first N VMs only (default: all)")
    parser.add_argument("--train-days", type=float, default=21.0)
    parser.add_argument("--inside-training", type=float, default=None, metavar="DAYS")
    parser.add_argument("--injections", type=int, default=200)
    parser.add_argument(
        "--seed", type=int, default=None, help="injection seed (default 1; 0 inside training)"
    )
    parser.add_argument("--grid", action="store_true", help="judge the whole grid of settings")
    parser.add_argument(
        "--persistence",
        default=None,
        metavar="N[,N...]",
        help="without --grid: judge the configured defaults at each of these persistences",
    )
    parser.add_argument(
        "--min-share",
        default=None,
        metavar="S[,S...]",
        help="without --grid: judge the configured defaults at each of these anomaly_min_share values",
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    began = time.perf_counter()

    def say(message: str) -> None:
        print(f"[{time.perf_counter() - began:7.1f} s] {message}", file=sys.stderr)

    workload = load_bitbrains(args.trace, limit=args.limit)
    train_days, evaluate_days = args.train_days, None
    if args.inside_training:
        train_days, evaluate_days = args.train_days - args.inside_training, args.inside_training
        print(f"inside the training period: train {train_days:g} days, judge the next {evaluate_days:g}")
    seed = args.seed if args.seed is not None else (0 if args.inside_training else 1)
    if args.grid:
        settings = settings_grid(
            GRID["references"],
            GRID["thresholds"],
            GRID["min_ratios"],
            GRID["min_shares"],
            GRID["persistences"],
        )
    else:
        defaults = AnomalySettings.from_conf(make_conf([], config_files=[]))
        try:
            counts = [int(n) for n in (args.persistence or str(defaults.persistence)).split(",")]
            shares = [float(x) for x in (args.min_share or str(defaults.min_share)).split(",")]
            settings = [
                dataclasses.replace(defaults, persistence=n, min_share=share)
                for n in counts
                for share in shares
            ]
        except ValueError as exc:
            parser.error(f"--persistence {args.persistence!r} / --min-share {args.min_share!r}: {exc}")
    persistences = len({s.persistence for s in settings})
    steps = int(round((evaluate_days or 0) * 86400 / workload.step_seconds)) * persistences or None
    with tqdm(total=steps, unit="step", desc="detector", file=sys.stderr) as bar:
        result = evaluate_anomalies(
            workload,
            train_days=train_days,
            evaluate_days=evaluate_days,
            injections=args.injections,
            seed=seed,
            settings=settings,
            progress=say,
            step_progress=bar.update,
        )
    print(
        f"{result['vms']} VMs, {result['evaluated_days']:.2f} days judged, injection seed {seed}, "
        f"{sum(result['rows'][0]['injections'].values())} injected"
    )
    header = (
        "reference  in a row  threshold  ratio  share  flags/1000 VM-h (cpu mem disk net)    "
        "recall (exfil runaway)"
    )
    print(header)
    for row in result["rows"]:
        by = row["flags_per_1000_vm_hours_by_resource"]
        kinds = row["recall_by_kind"]
        print(
            f"{row['reference']:>9}  {row['persistence']:8d}  {row['threshold']:9g}  {row['min_ratio']:5g}  "
            f"{row['min_share']:5g}  "
            f"{row['flags_per_1000_vm_hours']:7.3f} ({by.get('cpu', 0):.3f} {by.get('memory', 0):.3f} "
            f"{by.get('disk_io', 0):.3f} {by.get('network', 0):.3f})   "
            f"{row['recall']:.3f} ({kinds['exfiltration']:.3f} {kinds['runaway']:.3f})"
        )
    if args.grid:
        chosen = choose(result["rows"], BUDGET_PER_1000_VM_HOURS)
        result["budget_per_1000_vm_hours"] = BUDGET_PER_1000_VM_HOURS
        result["chosen"] = chosen
        if chosen is None:
            print(f"no setting flags at most {BUDGET_PER_1000_VM_HOURS} per 1,000 VM-hours")
        else:
            print(
                f"chosen (most recall within {BUDGET_PER_1000_VM_HOURS} flags per 1,000 VM-hours): "
                f"reference {chosen['reference']}, {chosen['persistence']} in a row, "
                f"threshold {chosen['threshold']:g}, "
                f"ratio {chosen['min_ratio']:g}, share {chosen['min_share']:g}"
            )
    print("timings:", json.dumps({k: round(v, 1) for k, v in result["timings"].items()}))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
