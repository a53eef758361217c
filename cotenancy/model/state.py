"""The view of the cloud a strategy decides on: inventory plus recent telemetry as arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cotenancy.model.inventory import Inventory
from cotenancy.model.telemetry import Event


@dataclass(slots=True)
class TelemetryWindow:
    """Recent per-VM metrics on a regular time grid.

    ``values[metric]`` has shape ``(len(vm_ids), len(timestamps))``; NaN marks a missing sample.
    Row ``i`` belongs to ``vm_ids[i]``; the last column is the most recent interval.
    """

    vm_ids: list[str]
    timestamps: np.ndarray
    values: dict[str, np.ndarray]
    step_seconds: float

    def row(self, vm_id: str) -> int:
        return self.vm_ids.index(vm_id)

    def latest(self, metric: str) -> np.ndarray:
        """Most recent value per VM (NaN where absent)."""
        series = self.values.get(metric)
        if series is None or series.shape[1] == 0:
            return np.full(len(self.vm_ids), np.nan)
        return series[:, -1]


@dataclass(slots=True)
class ClusterState:
    """Everything a strategy may look at in one round. Strategies must not touch drivers."""

    now: float
    inventory: Inventory
    telemetry: TelemetryWindow
    events: list[Event] = field(default_factory=list)
    migrating: frozenset[str] = frozenset()
    interval_seconds: float = 300.0
