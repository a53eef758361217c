"""Workloads: what VMs ask for over time, on a regular grid, before any placement.

A workload is the input of the simulated cloud. It holds *demand* (what the guest would use with
nothing in its way), never what a contended host delivered.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cotenancy.model import Resource, Resources


@dataclass(slots=True)
class Workload:
    """Demand of ``len(vm_names)`` VMs over ``n_steps`` intervals of ``step_seconds``.

    ``utilisation[resource]`` has shape ``(n_vms, n_steps)`` and is the fraction of the VM's own
    size it asks for (PlanetLab gives CPU this way). ``sizes`` (per VM, project units) turns it into
    absolute demand; it is ``None`` when the trace does not say and a setup assigns sizes.
    Absent resources are absent keys. NaN marks a step where the trace has no sample.
    """

    vm_names: list[str]
    step_seconds: float
    start: float
    utilisation: dict[Resource, np.ndarray]
    sizes: list[Resources] | None = None
    source: str = ""
    attributes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def n_vms(self) -> int:
        return len(self.vm_names)

    @property
    def n_steps(self) -> int:
        first = next(iter(self.utilisation.values()))
        return int(first.shape[1])

    def demand(self, resource: Resource) -> np.ndarray:
        """Absolute demand in project units, shape ``(n_vms, n_steps)``."""
        if self.sizes is None:
            raise ValueError(f"workload {self.source!r} has no VM sizes; assign them first")
        size = np.array([s[resource] for s in self.sizes], dtype=float)
        return self.utilisation[resource] * size[:, None]

    def with_sizes(self, sizes: list[Resources]) -> Workload:
        if len(sizes) != self.n_vms:
            raise ValueError(f"{len(sizes)} sizes for {self.n_vms} VMs")
        return Workload(
            self.vm_names,
            self.step_seconds,
            self.start,
            self.utilisation,
            list(sizes),
            self.source,
            self.attributes,
        )

    def slice_steps(self, begin: int, end: int) -> Workload:
        """The same VMs over steps ``[begin, end)``."""
        return Workload(
            self.vm_names,
            self.step_seconds,
            self.start + begin * self.step_seconds,
            {r: u[:, begin:end] for r, u in self.utilisation.items()},
            self.sizes,
            self.source,
            self.attributes,
        )
