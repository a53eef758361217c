"""What limits conflict prediction in the simulator (the bench_conflicts.py setup): the label's two
halves, one of the two VMs degraded in the window and the two still together, each predicted by its
own risk model, and the PR-AUC a perfect predictor of either half would allow.

    .venv/bin/python benchmarks/conflict_diagnostics.py [--json out.json]

Columns: ``validation`` is the held-out end of the training days (what changes are judged on),
``test`` the pooled test days.
"""

from __future__ import annotations

import json
import sys

from bench_conflicts import experiment, experiment_parser, progress_lines

from cotenancy.predict.evaluation import analyse_conflict_factors, format_factor_table


def main() -> int:
    args = experiment_parser(__doc__.splitlines()[0]).parse_args()
    result = analyse_conflict_factors(experiment(args), progress_lines())
    print(result["label"])
    print(format_factor_table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
