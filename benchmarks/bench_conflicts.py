"""Conflict prediction in the simulator (reference CloudSim setup, LR-MMT running the cloud):
train on PlanetLab 20110303 + 20110306, test on 20110309, 20110322, 20110325, predict conflicts
15 to 30 minutes ahead; the model against a reactive host-utilisation rule and LR-MMT's predictor.

    .venv/bin/python benchmarks/bench_conflicts.py [--json out.json] [--save-model models/risk.json]
        [--rounds N --max-depth D]

``--save-model`` writes the model trained on the train days where serving loads it
(``<[predict] model_dir>/risk.json``).

The same code serves ``cotenancy evaluate conflicts``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from cotenancy.predict.evaluation import ConflictExperiment, evaluate_conflicts, format_conflict_table
from cotenancy.predict.risk import RiskTrainingConfig

SHARED = Path(os.environ.get("COTENANCY_SHARED", Path(__file__).resolve().parents[2] / "shared"))
TRAIN = ("20110303", "20110306")
TEST = ("20110309", "20110322", "20110325")


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """The options every conflict experiment here takes (this script and conflict_diagnostics.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--planetlab", type=Path, default=SHARED / "traces" / "planetlab")
    parser.add_argument("--strategy", default="lr-mmt")
    parser.add_argument("--json", type=Path, default=None)
    return parser


def experiment(args: argparse.Namespace) -> ConflictExperiment:
    """The days, setup and label window of the experiment this script and conflict_diagnostics.py
    both run."""
    return ConflictExperiment(
        train=tuple(str(args.planetlab / d) for d in TRAIN),
        test=tuple(str(args.planetlab / d) for d in TEST),
        setup="cloudsim",
        strategy=args.strategy,
        label_from_minutes=15,
        horizon_minutes=30,
    )


def progress_lines() -> Callable[[str], None]:
    """Progress on stderr, each line stamped with the seconds since this call."""
    began = time.perf_counter()
    return lambda msg: print(f"[{time.perf_counter() - began:7.1f} s] {msg}", file=sys.stderr)


def main() -> int:
    parser = experiment_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--save-model",
        type=Path,
        default=None,
        help="write the model trained on the train days here (a risk.json serving loads)",
    )
    parser.add_argument(
        "--rounds", type=int, default=None, help="boosting rounds (default: RiskTrainingConfig's)"
    )
    parser.add_argument(
        "--max-depth", type=int, default=None, help="tree depth (default: RiskTrainingConfig's)"
    )
    args = parser.parse_args()
    chosen = (("rounds", args.rounds), ("max_depth", args.max_depth))
    training = RiskTrainingConfig(**{name: value for name, value in chosen if value is not None})
    result = evaluate_conflicts(
        experiment(args), progress_lines(), save_model=args.save_model, training=training
    )
    print(f"{result['test_pair_steps']:,} test pair-steps, positive rate {result['test_positive_rate']:.3f}")
    print(format_conflict_table(result))
    for day, methods in result["per_day"].items():
        print(f"  {day}: " + ", ".join(f"{m} PR-AUC {v['pr_auc']:.3f}" for m, v in methods.items()))
    print("model validation (held-out end of training):", json.dumps(result["model_validation"]))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
