"""Neighbourhood interference as a planning cost.

A cache-sensitive VM slows down with the summed activity of *all* its neighbours (shared cache
and memory bandwidth), which a sum of pair scores does not capture: two quiet neighbours are
harmless, twenty of them are not. The risk model estimates each VM's sensitivity and its
predicted activity; here they become the expected number of VMs a placement slows past the level
at which monitoring reports a degradation (``slowdown_limit``).

Each option is charged for its own VM (the slowdown it will feel from the host's staying VMs)
and for what it inflicts on the sensitive VMs staying there. Two candidates that end on one host
(moving there, or both staying) are also charged for what each adds to the other's slowdown, as
a pair term of the model (``cotenancy.plan.candidates``); what two candidates together add to a
staying VM beyond their separate shares is left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: width of the logistic step around the slowdown limit, as a share of the limit: estimates of
#: sensitivity and activity are noisy, so a VM just under the limit still counts a little
_STEP_WIDTH = 0.2


@dataclass(slots=True)
class VmInterference:
    """Per-VM estimates in inventory order (0 where the risk model has none)."""

    sensitivity: np.ndarray  # (V,) slowdown under saturating neighbour activity, 0..1
    activity: np.ndarray  # (V,) predicted activity (0..1 of its size) × its cache pressure (1 typical)
    half_load: float  # neighbour activity at which half the sensitivity is felt

    def slowdown(self, vms: np.ndarray, load: np.ndarray) -> np.ndarray:
        """Slowdown of ``vms`` under neighbour activity ``load`` (broadcasting)."""
        load = np.maximum(load, 0.0)
        return self.sensitivity[vms] * load / (load + self.half_load)


def conflict_chance(slowdown: np.ndarray, limit: float) -> np.ndarray:
    """Probability that a VM with this predicted slowdown is reported degraded."""
    z = (np.asarray(slowdown, dtype=float) - limit) / (_STEP_WIDTH * limit)
    return 1.0 / (1.0 + np.exp(-np.clip(z, -50.0, 50.0)))


class HostExposure:
    """What staying VMs on each host bring to interference: their summed activity, and the
    sensitive ones among them with the load they already feel."""

    def __init__(
        self,
        model: VmInterference,
        host_of: np.ndarray,
        staying: np.ndarray,
        n_hosts: int,
        limit: float,
        arriving: np.ndarray | None = None,
    ) -> None:
        """``arriving``: per VM, the host a live migration in flight is taking it to (-1: none);
        such a VM weighs on both hosts, as the planner counts it."""
        self.model = model
        self.limit = limit
        vms = np.flatnonzero(staying & (host_of >= 0))
        hosts = host_of[vms]
        if arriving is not None:
            inflight = np.flatnonzero(staying & (arriving >= 0))
            vms, hosts = np.concatenate([vms, inflight]), np.concatenate([hosts, arriving[inflight]])
        self.load = np.bincount(hosts, model.activity[vms], n_hosts)
        # a VM whose sensitivity is far under the limit cannot be slowed past it by anyone
        sensitive = model.sensitivity[vms] >= 0.5 * limit
        exposed, where = vms[sensitive], hosts[sensitive]
        self._exposed = {int(h): exposed[where == h] for h in np.unique(where)}

    def option_cost(self, vm: int, host: int) -> float:
        """Expected VMs slowed past the limit if ``vm`` joins the staying VMs of ``host``: itself,
        plus the increase for the sensitive VMs staying there."""
        m = self.model
        own = float(conflict_chance(m.slowdown(np.array([vm]), self.load[host : host + 1]), self.limit)[0])
        victims = self._exposed.get(host)
        if victims is None or m.activity[vm] <= 0:
            return own
        felt = self.load[host] - m.activity[victims]
        before = conflict_chance(m.slowdown(victims, felt), self.limit)
        after = conflict_chance(m.slowdown(victims, felt + m.activity[vm]), self.limit)
        return own + float((after - before).sum())

    def mutual_cost(self, vms: np.ndarray, host: int) -> np.ndarray:
        """(n, n) expected VMs slowed past the limit that ``vms[i]`` and ``vms[j]`` add to each
        other if both join the staying VMs of ``host``: the rise in each one's conflict chance
        from the other's activity, on top of the host's staying load."""
        m = self.model
        load = self.load[host]
        alone = conflict_chance(m.slowdown(vms, np.array([load])), self.limit)
        together = conflict_chance(m.slowdown(vms[:, None], load + m.activity[vms][None, :]), self.limit)
        felt = together - alone[:, None]
        return felt + felt.T
