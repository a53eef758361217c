"""Metric samples and events: what a cloud shows about its VMs over time.

Times are POSIX seconds (UTC) as ``float`` everywhere.

Metric names and units (see :mod:`cotenancy.model.resources`):

===============  ==========================================================================
``cpu``          MHz used
``memory``       MiB used (active memory)
``disk_io``      KiB/s read + write
``network``      KiB/s received + transmitted
``gpu``          GPUs busy
``cpu_ready``    fraction 0..1 of the interval the VM was runnable but not running
                 (vSphere ready time, KVM steal time, Hyper-V CPU wait time)
``cpu_demand``   MHz the guest asked for, where the cloud shows it (vSphere ``cpu.demand``)
===============  ==========================================================================
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field


class Metric(enum.StrEnum):
    CPU = "cpu"
    MEMORY = "memory"
    DISK_IO = "disk_io"
    NETWORK = "network"
    GPU = "gpu"
    CPU_READY = "cpu_ready"
    CPU_DEMAND = "cpu_demand"


@dataclass(frozen=True, slots=True)
class MetricSample:
    """One observation of one metric of one VM."""

    vm_id: str
    timestamp: float
    metric: str
    value: float

    def is_valid(self) -> bool:
        """Usable for learning: a finite, non-negative value (ready is a fraction 0..1)."""
        if not math.isfinite(self.value) or self.value < 0:
            return False
        return not (self.metric == Metric.CPU_READY and self.value > 1.0)


class EventKind(enum.StrEnum):
    DEGRADATION = "degradation"
    MIGRATION = "migration"
    RESIZE = "resize"
    ALLOCATION = "allocation"
    POWER = "power"
    MAINTENANCE = "maintenance"
    ANOMALY = "anomaly"


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened on the cloud.

    A ``DEGRADATION`` event is a conflict: during ``[timestamp, timestamp + duration)`` the VMs in
    ``vm_ids`` got less than they asked for on ``host_id``. ``severity`` is the fraction of the
    request not delivered (0.15 = got 85 %). ``resource`` names the contended resource, or
    ``"interference"`` for shared cache/memory-bandwidth slowdown.
    """

    timestamp: float
    kind: EventKind
    vm_ids: tuple[str, ...] = ()
    host_id: str | None = None
    duration: float = 0.0
    severity: float = 0.0
    resource: str | None = None
    message: str = ""
    source: str = ""
    details: dict[str, str] = field(default_factory=dict)
