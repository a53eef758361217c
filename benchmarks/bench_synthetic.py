"""Wall time of generating the embedded default workload (target: 1,000 VMs x 7 days well under 1 s).

.venv/bin/python benchmarks/bench_synthetic.py [--vms 1000] [--days 7] [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import time

from cotenancy.sim.synthetic import generate_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=1000)
    parser.add_argument("--days", type=float, default=7.0)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    generate_synthetic(10, 1.0)  # warm up imports and caches
    times = []
    for seed in range(args.rounds):
        started = time.perf_counter()
        workload = generate_synthetic(args.vms, args.days, seed=seed)
        times.append(time.perf_counter() - started)
    print(
        f"generate_synthetic({args.vms} VMs, {args.days:g} days, {workload.n_steps} steps x "
        f"{len(workload.utilisation)} resources): median {statistics.median(times):.3f} s, "
        f"min {min(times):.3f} s over {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
