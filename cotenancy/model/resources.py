"""Resource vectors and their units.

Units (used everywhere in the project; drivers convert on the way in and out):

=============  =============================================================
``cpu``        MHz of CPU (CloudSim's MIPS are read as MHz)
``memory``     MiB
``disk_io``    KiB/s of disk throughput, read + write
``network``    KiB/s of network throughput, received + transmitted
``gpu``        GPUs (1.0 = one whole device; fractions for shares)
=============  =============================================================
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields


class Resource(enum.StrEnum):
    """A resource a VM consumes and a host provides."""

    CPU = "cpu"
    MEMORY = "memory"
    DISK_IO = "disk_io"
    NETWORK = "network"
    GPU = "gpu"


RESOURCE_UNITS: dict[Resource, str] = {
    Resource.CPU: "MHz",
    Resource.MEMORY: "MiB",
    Resource.DISK_IO: "KiB/s",
    Resource.NETWORK: "KiB/s",
    Resource.GPU: "GPU",
}


@dataclass(frozen=True, slots=True)
class Resources:
    """An amount of every resource (capacity, size, demand or usage)."""

    cpu: float = 0.0
    memory: float = 0.0
    disk_io: float = 0.0
    network: float = 0.0
    gpu: float = 0.0

    def __getitem__(self, resource: Resource | str) -> float:
        return getattr(self, Resource(resource).value)

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, float]) -> Resources:
        unknown = set(values) - {r.value for r in Resource}
        if unknown:
            raise ValueError(f"unknown resources: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in values.items()})

    def replace(self, **changes: float) -> Resources:
        return Resources(**{**self.as_dict(), **changes})

    def __add__(self, other: Resources) -> Resources:
        return Resources(*(a + b for a, b in zip(self._values(), other._values(), strict=True)))

    def __sub__(self, other: Resources) -> Resources:
        return Resources(*(a - b for a, b in zip(self._values(), other._values(), strict=True)))

    def scale(self, factor: float) -> Resources:
        return Resources(*(a * factor for a in self._values()))

    def fits_within(self, capacity: Resources, tolerance: float = 1e-9) -> bool:
        """True when no resource exceeds ``capacity`` (a zero capacity admits only zero demand)."""
        return all(a <= c + tolerance for a, c in zip(self._values(), capacity._values(), strict=True))

    def _values(self) -> tuple[float, float, float, float, float]:
        return (self.cpu, self.memory, self.disk_io, self.network, self.gpu)


ZERO = Resources()
