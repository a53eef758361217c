"""How long a live migration takes: the iterative pre-copy model.

Round 0 copies all memory; each later round copies what was dirtied during the previous one, so
round ``i`` moves ``M * (D / B) ** i`` MiB; the last round is the stop-and-copy pause. The time is
what the planner charges a move with, so big, busy VMs on thin links are moved only when it pays.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MigrationCostModel:
    """``dirty_rate``: share of memory dirtied per second; ``bandwidth``: MiB/s per migration."""

    dirty_rate: float = 0.02
    bandwidth: float = 125.0
    precopy_rounds: int = 5

    def seconds(self, memory_mib: float) -> float:
        """Total time to move ``memory_mib`` of guest memory."""
        if memory_mib <= 0:
            return 0.0
        dirty_mib_per_s = self.dirty_rate * memory_mib
        ratio = dirty_mib_per_s / self.bandwidth
        total = 0.0
        remaining = memory_mib
        for _ in range(self.precopy_rounds + 1):
            total += remaining / self.bandwidth
            remaining = min(memory_mib, remaining * ratio)
            if remaining < 1.0:
                break
        return total

    def downtime_seconds(self, memory_mib: float) -> float:
        """Length of the final stop-and-copy pause."""
        if memory_mib <= 0:
            return 0.0
        ratio = self.dirty_rate * memory_mib / self.bandwidth
        return min(memory_mib, memory_mib * ratio**self.precopy_rounds) / self.bandwidth
