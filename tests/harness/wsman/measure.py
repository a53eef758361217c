"""Median wall time of each hyperv driver verb through real pywinrm against the loopback server.

    .venv/bin/python -m tests.harness.wsman.measure [--vms 40] [--repeat 15]

HTTPS with certificate validation and NTLM, as the driver runs by default. The figures measure
the driver plus pywinrm plus this harness on loopback (no Hyper-V work), i.e. the client-side
cost per call that a real deployment adds to Hyper-V's own time.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from oslo_config import cfg

from cotenancy.drivers.hyperv.driver import OPTS, HyperVDriver
from cotenancy.model import Allocation, Resources

from . import certs
from .hyperv import HyperVResponder
from .server import WSManServer


def _median_ms(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=40, help="VMs spread over two hosts")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    responder = HyperVResponder()
    for host in ("HV01", "HV02"):
        responder.add_host(host, logical_processors=64, memory_bytes=1024**4)
    vms = [
        responder.add_vm(f"vm{i:04d}", "HV01" if i % 2 else "HV02", dynamic_memory=i % 3 == 0)
        for i in range(args.vms)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        files = certs.generate(Path(tmp))
        with WSManServer(responder, users={"administrator": "pw"}, certificates=files) as server:
            # Windows fills Receive answers up to the 150 KiB envelope pywinrm allows
            server.receive_chunk_bytes = 100_000
            conf = cfg.ConfigOpts()
            conf.register_opts(OPTS, group="hyperv")
            for name, value in {
                "endpoint": server.endpoint,
                "username": "administrator",
                "password": "pw",
                "ca_file": str(files.ca_file),
                "hosts": ["HV01", "HV02"],
            }.items():
                conf.set_override(name, value, group="hyperv")
            driver = HyperVDriver(conf)
            driver.get_inventory()
            vm = vms[1]
            hosts = iter(["HV02", "HV01"] * args.repeat)
            figures = {
                f"get_inventory ({args.vms} VMs)": lambda: driver.get_inventory(),
                f"get_metrics ({args.vms} VMs)": lambda: driver.get_metrics(time.time() - 1, time.time() + 1),
                "live_migrate": lambda: driver.live_migrate(vm.id, next(hosts)),
                "resize": lambda: driver.resize(vm.id, Resources(cpu=2 * 2400, memory=2048)),
                "set_allocation": lambda: driver.set_allocation(
                    vm.id, Allocation(reservation=Resources(cpu=1000), shares=1500)
                ),
                "set_host_maintenance": lambda: driver.set_host_maintenance("HV02", False),
            }
            print(f"hyperv driver over pywinrm, HTTPS + NTLM, loopback; median of {args.repeat}")
            for label, action in figures.items():
                print(f"  {label:<28} {_median_ms(action, args.repeat):8.1f} ms")
            driver.close()


if __name__ == "__main__":
    main()
