"""Small synthetic clouds for the predictor tests (fast; the real traces are for benchmarks)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cotenancy.model import (
    VM,
    ClusterState,
    Host,
    Inventory,
    Resources,
    TelemetryWindow,
    WorkloadClass,
)
from cotenancy.predict.forecast import TrainingConfig

STEP = 300.0
START = 1_700_006_400.0  # a Wednesday 00:00 UTC


@dataclass
class Usage:
    vm_ids: list[str]
    classes: list[str]
    timestamps: np.ndarray
    values: dict[str, np.ndarray]
    sizes: dict[str, np.ndarray]


def synthetic_usage(n_vms: int = 24, days: float = 4, seed: int = 0) -> Usage:
    """Half the VMs peak in the afternoon (``web``), half at night (``batch``); noise on top."""
    rng = np.random.default_rng(seed)
    steps = int(days * 288)
    t = START + STEP * np.arange(steps)
    hour = (t % 86400) / 3600
    classes = ["web" if i % 2 == 0 else "batch" for i in range(n_vms)]
    peak = np.array([14.0 if c == "web" else 2.0 for c in classes])
    size_cpu = rng.choice([2000.0, 4000.0, 8000.0], n_vms)
    size_mem = rng.choice([2048.0, 4096.0], n_vms)
    phase = np.cos(2 * np.pi * (hour[None, :] - peak[:, None]) / 24)
    cpu_util = np.clip(0.3 + 0.25 * phase + rng.normal(0, 0.05, (n_vms, steps)), 0, 1)
    mem_util = np.clip(0.5 + 0.1 * phase + rng.normal(0, 0.01, (n_vms, steps)), 0, 1)
    return Usage(
        vm_ids=[f"vm-{i:03d}" for i in range(n_vms)],
        classes=classes,
        timestamps=t,
        values={"cpu": cpu_util * size_cpu[:, None], "memory": mem_util * size_mem[:, None]},
        sizes={"cpu": size_cpu, "memory": size_mem},
    )


def small_config(**changes) -> TrainingConfig:
    base = {"horizons": (1, 6), "rounds": 15, "max_rows": 6_000, "incremental_rounds": 5}
    base.update(changes)
    return TrainingConfig(**base)


def make_state(
    usage: Usage,
    upto: int,
    window: int = 312,
    hosts: dict[str, float] | None = None,
    placement: dict[str, str] | None = None,
    extra: dict[str, np.ndarray] | None = None,
) -> ClusterState:
    """State at column ``upto - 1`` of ``usage`` with the last ``window`` columns of telemetry."""
    hosts = hosts or {"h0": 64000.0, "h1": 64000.0}
    inventory = Inventory(
        hosts={h: Host(h, h, Resources(cpu=c, memory=262144.0)) for h, c in hosts.items()},
    )
    host_names = sorted(hosts)
    for i, vm_id in enumerate(usage.vm_ids):
        host = (placement or {}).get(vm_id, host_names[i % len(host_names)])
        inventory.vms[vm_id] = VM(
            vm_id,
            f"name-{vm_id}",
            host,
            Resources(cpu=usage.sizes["cpu"][i], memory=usage.sizes["memory"][i]),
            workload=WorkloadClass(app_type=usage.classes[i]),
        )
    lo = max(upto - window, 0)
    values = {k: v[:, lo:upto].copy() for k, v in usage.values.items()}
    values.update(extra or {})
    telemetry = TelemetryWindow(list(usage.vm_ids), usage.timestamps[lo:upto].copy(), values, STEP)
    now = float(usage.timestamps[upto - 1]) + STEP
    return ClusterState(now=now, inventory=inventory, telemetry=telemetry)


def toy_history(steps: int = 240, seed: int = 0, step: float = STEP):
    """Three 7 GHz hosts, nine VMs with bursty demand; a degradation event (the only labels) is
    recorded wherever a host's demand exceeds its capacity, as a cloud would report it."""
    from cotenancy.model import Event, EventKind
    from cotenancy.predict.history import History

    rng = np.random.default_rng(seed)
    n, hosts = 9, 3
    t = START + step * np.arange(steps)
    base = rng.uniform(1000, 2500, n)
    wave = 1 + 0.6 * np.sin(2 * np.pi * (np.arange(steps)[None, :] / 48.0 + rng.uniform(0, 1, (n, 1))))
    demand = np.clip(base[:, None] * wave + rng.normal(0, 150, (n, steps)), 0, None)
    host_of = np.tile((np.arange(n) % hosts)[:, None], (1, steps))
    cap = np.full(hosts, 7000.0)
    events = []
    used = demand.copy()
    for col in range(steps):
        for h in range(hosts):
            members = np.flatnonzero(host_of[:, col] == h)
            total = demand[members, col].sum()
            if total > cap[h]:
                used[members, col] *= cap[h] / total
                events.append(
                    Event(
                        timestamp=float(t[col]),
                        kind=EventKind.DEGRADATION,
                        vm_ids=tuple(f"vm-{m}" for m in members),
                        host_id=f"h{h}",
                        duration=step,
                        severity=1 - cap[h] / total,
                        resource="cpu",
                        details={"neighbours": ",".join(f"vm-{m}" for m in members)},
                    )
                )
    return History(
        vm_ids=[f"vm-{i}" for i in range(n)],
        timestamps=t,
        step_seconds=step,
        values={"cpu": used, "cpu_demand": demand, "cpu_ready": 1 - used / np.maximum(demand, 1e-9)},
        host_ids=[f"h{h}" for h in range(hosts)],
        host_cpu=cap,
        host_memory=np.full(hosts, 65536.0),
        host_of=host_of,
        vm_cpu_size=np.full(n, 4000.0),
        priority=np.full(n, 5.0),
        app_types=["general"] * n,
        events=events,
    )
