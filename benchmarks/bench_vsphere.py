"""How long the vsphere driver takes for inventory and one metrics round on a large vCenter.

Starts the vCenter simulator (tests/harness/vcsim; build it with scripts/setup.d/30-vcsim.sh) with
100 hosts and 2,000 VMs by default, then times ``get_inventory()`` and ``get_metrics()`` over one
control-loop interval for every running VM, and prints the medians. Target: under 10 s together.

    .venv/bin/python benchmarks/bench_vsphere.py [--runs 5] [--clusters 10] [--hosts 10] [--vms 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "harness" / "vcsim"))

import vcsim_harness  # noqa: E402

from cotenancy.conf import make_conf  # noqa: E402
from cotenancy.drivers.vsphere.driver import VSphereDriver  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--hosts", type=int, default=10, help="hosts per cluster")
    parser.add_argument("--vms", type=int, default=200, help="VMs per cluster")
    parser.add_argument("--window", type=float, default=300.0, help="seconds of metrics per round")
    parser.add_argument("--perf-workers", type=int, default=None, help="[vsphere] perf_workers")
    args = parser.parse_args()

    started = time.perf_counter()
    sim = vcsim_harness.VCSim.start(
        clusters=args.clusters, hosts_per_cluster=args.hosts, vms_per_pool=args.vms, startup_timeout=600
    )
    print(f"simulator up in {time.perf_counter() - started:.1f} s: {sim.url}")
    try:
        conf = make_conf([], config_files=[])
        for name, value in {
            "host": sim.host,
            "port": sim.port,
            "username": sim.username,
            "password": sim.password,
            "ca_file": str(sim.ca_file),
        }.items():
            conf.set_override(name, value, group="vsphere")
        if args.perf_workers is not None:
            conf.set_override("perf_workers", args.perf_workers, group="vsphere")
        driver = VSphereDriver(conf)
        driver.get_inventory()  # log in and warm up outside the timings

        inventory_times, metrics_times = [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            inventory = driver.get_inventory()
            t1 = time.perf_counter()
            end = time.time()
            samples = driver.get_metrics(end - args.window, end)
            t2 = time.perf_counter()
            inventory_times.append(t1 - t0)
            metrics_times.append(t2 - t1)
        driver.close()
    finally:
        sim.stop()

    inv, met = statistics.median(inventory_times), statistics.median(metrics_times)
    print(f"hosts={len(inventory.hosts)} vms={len(inventory.vms)} samples/round={len(samples)}")
    print(f"inventory median over {args.runs} runs: {inv:.2f} s")
    print(f"metrics round ({args.window:g} s window) median over {args.runs} runs: {met:.2f} s")
    print(f"together: {inv + met:.2f} s (target < 10 s)")


if __name__ == "__main__":
    main()
