"""``reactive-threshold``: migrate off hosts whose CPU utilisation is above a threshold.

The simplest thing an operator's script does: after the fact, move the smallest VMs off each hot
host (largest demand first would move more data) until its current demand is under the threshold,
to the host that stays coolest after the move. No prediction, no consolidation. A VM a live
migration is taking elsewhere counts on its source and on its target until it lands.
"""

from __future__ import annotations

import numpy as np
from oslo_config import cfg

from cotenancy.model import ActionKind, ActionPlan, ClusterState
from cotenancy.sim.view import array_view
from cotenancy.strategies.base import Strategy
from cotenancy.strategies.placement_rules import PlacementRules


class ReactiveThresholdStrategy(Strategy):
    """Moves VMs off hosts whose CPU demand exceeds ``threshold`` of capacity, within the hard
    policies and rules (soft rules are ignored)."""

    name = "reactive-threshold"
    group = "strategy_reactive_threshold"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            cfg.FloatOpt(
                "threshold",
                default=0.9,
                min=0.05,
                max=1.0,
                help="A host whose CPU demand is above this share of its capacity is overloaded.",
            ),
            cfg.IntOpt(
                "max_migrations",
                default=50,
                min=0,
                help="At most this many migrations per round.",
            ),
        ]

    def plan(self, state: ClusterState) -> ActionPlan:
        plan = ActionPlan(strategy=self.name)
        view = array_view(state, history=1)
        if not view.vm_ids:
            return plan
        rules = PlacementRules(state.inventory, view)
        threshold = self.options.threshold
        limit = self.options.max_migrations
        # a VM in flight weighs on its source and on the host it is about to land on
        demand = view.host_sum(view.vm_request)
        memory = view.host_sum(view.vm_memory)
        host_memory = np.array([h.capacity.memory for h in state.inventory.hosts.values()], dtype=float)
        cap = view.host_cpu
        hot = np.flatnonzero(demand > threshold * cap)
        for host in hot[np.argsort(-(demand[hot] / cap[hot]))]:
            vms = np.flatnonzero((view.vm_host == host) & ~view.vm_migrating & ~rules.pinned)
            for vm in vms[np.argsort(view.vm_memory[vms], kind="stable")]:
                if demand[host] <= threshold * cap[host] or len(plan.actions) >= limit:
                    break
                req = view.vm_request[vm]
                after = (demand + req) / cap
                fits = (
                    (after <= threshold) & ~view.host_maintenance & (view.host_pe * view.vm_vcpus[vm] >= req)
                )
                fits &= (host_memory <= 0) | (memory + view.vm_memory[vm] <= host_memory)
                fits &= ~rules.blocked(vm)
                fits[host] = False
                if not fits.any():
                    continue
                target = int(np.argmin(np.where(fits, after, np.inf)))
                plan.add(
                    ActionKind.LIVE_MIGRATE,
                    vm_id=view.vm_ids[vm],
                    source_host_id=view.host_ids[host],
                    target_host_id=view.host_ids[target],
                    reason=f"host CPU demand {demand[host] / cap[host]:.0%} above {threshold:.0%}",
                    expected_benefit=float(req),
                )
                rules.move(vm, target)
                demand[host] -= req
                demand[target] += req
                memory[host] -= view.vm_memory[vm]
                memory[target] += view.vm_memory[vm]
        return plan
