"""What limits conflict prediction in the simulator (the bench_conflicts.py setup): the label's two
halves, one of the two VMs degraded in the window and the two still together, each predicted by its
own risk model, and the PR-AUC a perfect predictor of either half would allow.

    .venv/bin/python benchmarks/conflict_diagnostics.py [--json out.json]

Columns: ``validation`` is the held-out end of the training days (what changes are judged on),
``test`` the pooled test days.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from bench_conflicts import SHARED, TEST, TRAIN

from cotenancy.predict.evaluation import analyse_conflict_factors, format_factor_table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--planetlab", type=Path, default=SHARED / "traces" / "planetlab")
    parser.add_argument("--strategy", default="lr-mmt")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    began = time.perf_counter()
    result = analyse_conflict_factors(
        [str(args.planetlab / d) for d in TRAIN],
        [str(args.planetlab / d) for d in TEST],
        setup="cloudsim",
        strategy=args.strategy,
        label_from_minutes=15,
        horizon_minutes=30,
        progress=lambda msg: print(f"[{time.perf_counter() - began:7.1f} s] {msg}", file=sys.stderr),
    )
    print(result["label"])
    print(format_factor_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
