"""CloudSim fidelity and speed: ``--setup cloudsim --strategy lr-mmt`` on the five PlanetLab days.

Prints, for each day, our energy, migrations, SLATAH and PDM beside CloudSim 4.0's own LrMmt
figures with the deviation, and the wall time of each simulated day (median over ``--repeat``
runs), then the median over days. Traces come from ``$COTENANCY_SHARED`` (default ``../shared``).

    .venv/bin/python benchmarks/bench_cloudsim.py [--days 20110303 ...] [--repeat 3]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: day -> (energy kWh, migrations, SLATAH %, PDM %) printed by CloudSim 4.0's LrMmt example
CLOUDSIM = {
    "20110303": (167.83, 27_649, 5.72, 0.0755),
    "20110306": (127.98, 21_661, 5.99, 0.0830),
    "20110309": (139.40, 24_239, 6.31, 0.0834),
    "20110322": (172.88, 31_376, 6.34, 0.0746),
    "20110325": (149.83, 26_320, 5.76, 0.0768),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", nargs="*", default=sorted(CLOUDSIM), choices=sorted(CLOUDSIM))
    parser.add_argument("--repeat", type=int, default=1, help="runs per day; the wall time is their median")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)

    from cotenancy.conf import make_conf
    from cotenancy.sim.runner import run_simulation
    from cotenancy.sim.traces import load_planetlab

    shared = Path(os.environ.get("COTENANCY_SHARED", REPO.parent / "shared"))
    header = (
        f"{'day':<9} {'energy kWh':>17} {'dev':>6} {'migrations':>17} {'dev':>6} "
        f"{'SLATAH %':>13} {'dev':>6} {'PDM %':>15} {'dev':>6} {'wall s':>7} {'cpu s':>6}"
    )
    print(header)
    print("-" * len(header))
    walls: list[float] = []
    cpus: list[float] = []
    worst = 0.0
    for day in args.days:
        workload = load_planetlab(shared / "traces" / "planetlab" / day)
        times = []
        cpu_times = []
        metrics = {}
        for _ in range(max(1, args.repeat)):
            conf = make_conf([], config_files=[])
            started, cpu_started = time.perf_counter(), time.process_time()
            result = run_simulation(
                workload, setup="cloudsim", strategy="lr-mmt", conf=conf, interference=False
            )
            times.append(time.perf_counter() - started)
            cpu_times.append(time.process_time() - cpu_started)
            metrics = result.metrics
        wall = statistics.median(times)
        walls.append(wall)
        cpus.append(statistics.median(cpu_times))
        ref = CLOUDSIM[day]
        ours = (metrics["energy_kwh"], metrics["migrations"], metrics["slatah"], metrics["pdm"])
        dev = [100.0 * (o - r) / r for o, r in zip(ours, ref, strict=True)]
        worst = max(worst, *(abs(d) for d in dev[:3]))
        print(
            f"{day:<9} {ours[0]:>7.2f} / {ref[0]:>7.2f} {dev[0]:>+5.1f}% "
            f"{ours[1]:>7,d} / {ref[1]:>7,d} {dev[1]:>+5.1f}% "
            f"{ours[2]:>5.2f} / {ref[2]:>5.2f} {dev[2]:>+5.1f}% "
            f"{ours[3]:>6.4f} / {ref[3]:>6.4f} {dev[3]:>+5.1f}% {wall:>7.1f} {cpus[-1]:>6.1f}",
            flush=True,
        )
    print("-" * len(header))
    print(
        f"median wall time per simulated day: {statistics.median(walls):.1f} s (budget 20 s); "
        f"median CPU time of this process: {statistics.median(cpus):.1f} s"
    )
    print(f"largest deviation in energy, migrations or SLATAH: {worst:.1f} % (tolerance 15 %)")
    return 0 if worst <= 15.0 else 1


if __name__ == "__main__":
    sys.exit(main())
