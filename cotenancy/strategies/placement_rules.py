"""Hard co-tenancy policies and affinity rules as the baseline strategies obey them.

The predictive planner builds these into its model (:mod:`cotenancy.plan.problem`). The baselines
only need to know, move by move, which hosts a VM may not go to, and which VMs may not move at all,
so that a baseline run against a real cloud never breaks a rule the operator set:

- no two VMs a co-tenancy policy keeps apart end up on one host (counting VMs already there, VMs
  a live migration in flight is taking there, and VMs planned to go there in the same plan,
  stopped VMs included, as the planner does);
- no two members of a hard anti-affinity rule end up on one host;
- a member of a hard affinity rule does not move (the baselines cannot move a group as one).

Soft rules are preferences the baselines do not weigh. With no policies and no hard rules nothing
is looked up and the baselines plan exactly as before.
"""

from __future__ import annotations

import numpy as np

from cotenancy.model import Inventory, RuleKind
from cotenancy.model.policy import conflict_classes
from cotenancy.sim.view import ArrayView


class PlacementRules:
    """Which hosts each VM of an :class:`ArrayView` may move to, kept current as moves are planned.

    VM and host numbers are the view's; :meth:`move` records a planned move.
    """

    def __init__(self, inventory: Inventory, view: ArrayView) -> None:
        hard = [rule for rule in inventory.rules if rule.hard]
        together: set[str] = set()
        for rule in hard:
            if rule.kind is RuleKind.AFFINITY:
                together |= rule.vm_ids
        #: (V,) members of a hard affinity rule: they stay where they are
        self.pinned = np.array([vm in together for vm in view.vm_ids], dtype=bool)
        apart = [rule.vm_ids for rule in hard if rule.kind is RuleKind.ANTI_AFFINITY]
        self.active = bool(inventory.policies or apart)
        self._n_hosts = view.n_hosts
        if not self.active:
            return
        vms = list(inventory.vms.values())
        row_of = {vm.id: i for i, vm in enumerate(vms)}
        host_index = {host: i for i, host in enumerate(view.host_ids)}
        self._row = np.array([row_of[vm] for vm in view.vm_ids], dtype=np.int64)
        self._host_of = np.array(
            [host_index.get(vm.host_id, -1) if vm.host_id is not None else -1 for vm in vms],
            dtype=np.int64,
        )
        self._class, self._forbidden = conflict_classes(vms, inventory.policies)
        self._count = np.zeros((view.n_hosts, self._forbidden.shape[0]), dtype=np.int64)
        placed = self._host_of >= 0
        np.add.at(self._count, (self._host_of[placed], self._class[placed]), 1)
        # a VM in flight is on its source until it lands, and about to be on its target
        coming = view.arriving()
        self._target = np.full(len(vms), -1, dtype=np.int64)
        self._target[self._row[coming]] = view.vm_target[coming]
        np.add.at(self._count, (view.vm_target[coming], self._class[self._row[coming]]), 1)
        self._apart: dict[int, set[int]] = {}
        for ids in apart:
            rows = {row_of[vm] for vm in ids if vm in row_of}
            for row in rows:
                self._apart.setdefault(row, set()).update(rows - {row})

    def blocked(self, vm: int) -> np.ndarray:
        """(H,) True where a policy or hard anti-affinity rule forbids moving ``vm`` there."""
        blocked = np.zeros(self._n_hosts, dtype=bool)
        if not self.active:
            return blocked
        row = self._row[vm]
        blocked |= (self._count[:, self._forbidden[self._class[row]]] > 0).any(axis=1)
        rows = sorted(self._apart.get(row, ()))
        partners = np.concatenate([self._host_of[rows], self._target[rows]])
        blocked[partners[partners >= 0]] = True
        return blocked

    def move(self, vm: int, target: int) -> None:
        """Record that ``vm`` is planned to run on ``target``."""
        if not self.active:
            return
        row = self._row[vm]
        cls = self._class[row]
        source = self._host_of[row]
        if source >= 0:
            self._count[source, cls] -= 1
        self._count[target, cls] += 1
        self._host_of[row] = target
