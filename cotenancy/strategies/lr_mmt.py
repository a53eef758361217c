"""``lr-mmt``: Beloglazov & Buyya's consolidation, as CloudSim 4.0's
``PowerVmAllocationPolicyMigrationLocalRegression`` with ``PowerVmSelectionPolicyMinimumMigrationTime``.

Each round:

1. **Overload detection (LR).** A host's utilisation history is the sum of its VMs' CPU demand
   histories (as a share of the host). A straight line fitted to the last 10 samples at x = 1..10
   is extrapolated to x = 11; the host is overloaded when ``safety x prediction >= 1``. With fewer
   than 10 samples the static rule applies: current demand above 70 % of capacity.
2. **VM selection (MMT).** From each overloaded host (in host order) take the non-migrating VM with
   the least RAM, again and again, until the host is no longer overloaded.
3. **Placement (PABFD).** VMs sorted by CPU demand, largest first; each goes to the host whose
   power grows least, among hosts with a fast-enough core and enough free MHz that would not
   become overloaded (this check is skipped for an idle host). Overloaded hosts are excluded.
4. **Underload consolidation.** Repeatedly take the least-utilised active host that is not
   overloaded, not a target and not idle, and place all its VMs elsewhere (never onto idle,
   overloaded or already drained hosts); if one does not fit, cancel that host's moves.

Unlike CloudSim, it obeys the hard rules an operator sets, since it can run against a real cloud
(:mod:`cotenancy.strategies.placement_rules`): a VM never goes to a host where a co-tenancy policy or
hard anti-affinity rule forbids it next to a VM there or planned to go there; members of a hard
affinity rule are never selected, and a host holding one is never drained. Soft rules are ignored.
With no policies and no hard rules the plans are CloudSim's.

Everything is computed on numpy arrays (:mod:`cotenancy.sim.view`) so a round over 800 hosts takes
milliseconds. The strategy keeps no hidden state: the demand history comes from telemetry.
"""

from __future__ import annotations

import time

import numpy as np
from oslo_config import cfg

from cotenancy.model import ActionKind, ActionPlan, ClusterState, Inventory
from cotenancy.sim.power import power_at
from cotenancy.sim.view import ArrayView, array_view
from cotenancy.strategies.base import Strategy
from cotenancy.strategies.placement_rules import PlacementRules

LR_LENGTH = 10


def lr_coefficients(length: int = LR_LENGTH, ahead: int = 1) -> np.ndarray:
    """Weights ``w`` such that ``w @ y`` is the least-squares line through ``(1..length, y)``
    evaluated at ``length + ahead``; linear in ``y``, so host predictions are sums over VMs."""
    x = np.arange(1, length + 1, dtype=float)
    xc = x - x.mean()
    return 1.0 / length + (length + ahead - x.mean()) * xc / np.sum(xc * xc)


class _Planner:
    """One round of LR-MMT over an :class:`ArrayView`."""

    def __init__(
        self,
        view: ArrayView,
        safety: float,
        threshold: float,
        quirks: bool = True,
        rules: PlacementRules | None = None,
    ) -> None:
        self.v = view
        self.rules = rules if rules is not None else PlacementRules(Inventory(), view)
        self.quirks = quirks
        self.safety = safety
        self.threshold = threshold
        nh = view.n_hosts
        on = view.vm_host >= 0
        idx = np.flatnonzero(on)
        h = view.vm_host[idx]
        hist = view.vm_history[:, -LR_LENGTH:]
        if hist.shape[1] < LR_LENGTH:
            hist = np.hstack([np.full((hist.shape[0], LR_LENGTH - hist.shape[1]), np.nan), hist])
        counts = np.sum(~np.isnan(view.vm_history), axis=1)
        self.vm_long = counts >= LR_LENGTH
        self.vm_pred_mips = np.nan_to_num(hist, nan=0.0) @ lr_coefficients() * view.vm_cpu
        self.req = view.vm_request
        self.pred = np.bincount(h, self.vm_pred_mips[idx], nh)
        self.long = np.bincount(h, self.vm_long[idx].astype(float), nh) > 0
        self.reqsum = np.bincount(h, self.req[idx], nh)
        self.count = np.bincount(h, minlength=nh).astype(np.int64)
        capped = np.minimum(self.req[idx], view.host_pe[h] * view.vm_vcpus[idx])
        committed = np.bincount(h, capped, nh)
        self.available = np.where(committed > view.host_cpu, 0.0, view.host_cpu - committed)
        self.used = view.host_used()
        self.util_now = self.used / view.host_cpu
        self.power_now = power_at(view.host_power, self.util_now)
        self.mem_cap = view.host_memory
        self.check_memory = bool(np.any(view.host_memory_checked))
        self.mem_used = np.bincount(h, view.vm_memory[idx], nh)
        self.members: list[list[int]] = [[] for _ in range(nh)]
        for vm, host in zip(idx.tolist(), h.tolist(), strict=True):
            self.members[host].append(vm)
        #: hosts a VM in flight is arriving on, and those where one has a long history
        self.receiving = np.zeros(nh, dtype=bool)
        self.arriving_long = np.zeros(nh, dtype=bool)
        self._count_arrivals()

    def _count_arrivals(self) -> None:
        """A VM in flight weighs on the host it is arriving on too, as in CloudSim, where a VM
        migrating in is in its target's VM list (its utilisation history and requested MIPS count
        there) and its source keeps it until it lands. It is no member of the target: it cannot be
        selected there, and the target is not drained while it arrives."""
        v = self.v
        coming = v.arriving()
        if not len(coming):
            return
        nh = v.n_hosts
        t = v.vm_target[coming]
        self.pred += np.bincount(t, self.vm_pred_mips[coming], nh)
        self.arriving_long = np.bincount(t, self.vm_long[coming].astype(float), nh) > 0
        self.long |= self.arriving_long
        self.reqsum += np.bincount(t, self.req[coming], nh)
        self.count += np.bincount(t, minlength=nh).astype(np.int64)
        capped = np.minimum(self.req[coming], v.host_pe[t] * v.vm_vcpus[coming])
        self.available = np.maximum(self.available - np.bincount(t, capped, nh), 0.0)
        self.used += np.bincount(t, capped, nh)
        self.util_now = self.used / v.host_cpu
        self.power_now = power_at(v.host_power, self.util_now)
        self.mem_used += np.bincount(t, v.vm_memory[coming], nh)
        self.receiving = np.bincount(t, minlength=nh) > 0

    # --- overload tests ---------------------------------------------------------------
    def overloaded(self, host: int) -> bool:
        if self.count[host] == 0:
            return False
        if self.long[host]:
            return bool(self.safety * self.pred[host] / self.v.host_cpu[host] >= 1.0)
        return bool(self.reqsum[host] / self.v.host_cpu[host] > self.threshold)

    def all_overloaded(self) -> np.ndarray:
        cap = self.v.host_cpu
        lr = self.safety * self.pred / cap >= 1.0
        static = self.reqsum / cap > self.threshold
        return (self.count > 0) & np.where(self.long, lr, static)

    # --- bookkeeping ---------------------------------------------------------------
    def _host_long(self, host: int) -> bool:
        return bool(self.arriving_long[host] or any(self.vm_long[m] for m in self.members[host]))

    def remove(self, vm: int, host: int) -> None:
        self.members[host].remove(vm)
        self.pred[host] -= self.vm_pred_mips[vm]
        self.reqsum[host] -= self.req[vm]
        self.count[host] -= 1
        self.long[host] = self._host_long(host)
        capped = min(self.req[vm], self.v.host_pe[host] * self.v.vm_vcpus[vm])
        self.available[host] = min(self.v.host_cpu[host], self.available[host] + capped)
        self.used[host] -= min(capped, self.v.vm_allocated[vm])
        self.mem_used[host] -= self.v.vm_memory[vm]

    def add(self, vm: int, host: int) -> None:
        self.members[host].append(vm)
        self.pred[host] += self.vm_pred_mips[vm]
        self.reqsum[host] += self.req[vm]
        self.count[host] += 1
        self.long[host] = self.long[host] or bool(self.vm_long[vm])
        self.available[host] -= self.req[vm]
        self.used[host] += self.req[vm]
        self.mem_used[host] += self.v.vm_memory[vm]
        self.rules.move(vm, host)

    # --- PABFD ---------------------------------------------------------------------
    def find_host(self, vm: int, excluded: np.ndarray) -> int:
        v = self.v
        req = self.req[vm]
        ok = ~excluded & (v.host_pe * v.vm_vcpus[vm] >= req) & (self.available >= req)
        ok &= ~self.rules.blocked(vm)
        if self.check_memory:
            ok &= self.mem_used + v.vm_memory[vm] <= self.mem_cap
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            return -1
        cap = v.host_cpu[cand]
        long_after = self.long[cand] | self.vm_long[vm]
        over_after = np.where(
            long_after,
            self.safety * (self.pred[cand] + self.vm_pred_mips[vm]) / cap >= 1.0,
            (self.reqsum[cand] + req) / cap > self.threshold,
        )
        keep = ~((self.used[cand] != 0) & over_after)
        cand = cand[keep]
        if cand.size == 0:
            return -1
        after = power_at(v.host_power[cand], (self.used[cand] + req) / v.host_cpu[cand])
        return int(cand[int(np.argmin(after - self.power_now[cand]))])

    def by_demand(self, vms: list[int]) -> list[int]:
        return sorted(vms, key=lambda m: -self.req[m])

    # --- the round -----------------------------------------------------------------
    def run(self) -> tuple[list[tuple[int, int, int]], dict[str, float]]:
        v = self.v
        moves: list[tuple[int, int, int]] = []
        over = self.all_overloaded()
        over_hosts = np.flatnonzero(over)
        to_move: list[tuple[int, int]] = []
        for host in over_hosts:
            host = int(host)
            while True:
                movable = [
                    m for m in self.members[host] if not v.vm_migrating[m] and not self.rules.pinned[m]
                ]
                if not movable:
                    break
                vm = min(movable, key=lambda m: v.vm_memory[m])
                to_move.append((vm, host))
                self.remove(vm, host)
                if not self.overloaded(host):
                    break
        excluded = over | v.host_maintenance
        source = dict(to_move)
        for vm in self.by_demand([m for m, _ in to_move]):
            target = self.find_host(vm, excluded)
            if target >= 0:
                self.add(vm, target)
                moves.append((vm, source[vm], target))
        n_over_moves = len(moves)
        switched_off = self.util_now == 0
        excl_under = over | switched_off | v.host_maintenance
        excl_place = over | switched_off | v.host_maintenance
        # a host keeping a VM of a hard affinity group stays on: draining the rest saves nothing
        on = v.vm_host >= 0
        excl_under |= np.bincount(v.vm_host[on], self.rules.pinned[on], v.n_hosts) > 0
        # CloudSim drains no host a VM is migrating in to (areAllVmsMigratingOutOrAnyVmMigratingIn)
        excl_under |= self.receiving
        if not self.quirks:
            # what CloudSim meant: a host that just received a VM is not drained in the same round
            for _, _, target in moves:
                excl_under[target] = True
        drained = 0
        while not excl_under.all():
            cand = ~excl_under & (self.util_now > 0) & (self.util_now < 1) & (self.count > 0)
            if not cand.any():
                break
            masked = np.where(cand, self.util_now, np.inf)
            host = int(np.argmin(masked))
            excl_under[host] = True
            excl_place[host] = True
            vms = [m for m in self.members[host] if not v.vm_migrating[m]]
            if not vms:
                continue
            placed: list[tuple[int, int]] = []
            for vm in self.by_demand(vms):
                target = self.find_host(vm, excl_place)
                if target < 0:
                    for pvm, ptarget in placed:
                        self.members[ptarget].remove(pvm)
                        self._undo_add(pvm, ptarget)
                        self.rules.move(pvm, host)
                    placed = []
                    break
                self.add(vm, target)
                placed.append((vm, target))
            if placed:
                drained += 1
                for vm, target in placed:
                    excl_under[target] = True
                    moves.append((vm, host, target))
        return moves, {
            "overloaded_hosts": float(len(over_hosts)),
            "overload_migrations": float(n_over_moves),
            "drained_hosts": float(drained),
        }

    def _undo_add(self, vm: int, host: int) -> None:
        self.pred[host] -= self.vm_pred_mips[vm]
        self.reqsum[host] -= self.req[vm]
        self.count[host] -= 1
        self.long[host] = self._host_long(host)
        self.available[host] += self.req[vm]
        self.used[host] -= self.req[vm]
        self.mem_used[host] -= self.v.vm_memory[vm]


class LrMmtStrategy(Strategy):
    """Local-regression overload detection, minimum-migration-time selection, power-aware
    best-fit-decreasing placement and underload consolidation (CloudSim's LR-MMT), within the hard
    policies and rules (soft rules are ignored)."""

    name = "lr-mmt"
    group = "strategy_lr_mmt"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            cfg.FloatOpt(
                "safety_parameter",
                default=1.2,
                min=0.0,
                help="LR overload test: a host is overloaded when safety x predicted utilisation >= 1.",
            ),
            cfg.BoolOpt(
                "cloudsim_quirks",
                default=True,
                help="Reproduce CloudSim 4.0 exactly, including draining a host chosen as a target "
                "in the same round (the VM is then planned twice). Off: such hosts are skipped.",
            ),
            cfg.FloatOpt(
                "fallback_threshold",
                default=0.7,
                min=0.0,
                max=1.0,
                help="Static utilisation threshold used while a host has fewer than 10 samples.",
            ),
        ]

    def plan(self, state: ClusterState) -> ActionPlan:
        started = time.perf_counter()
        view = array_view(state)
        planner = _Planner(
            view,
            self.options.safety_parameter,
            self.options.fallback_threshold,
            quirks=self.options.cloudsim_quirks,
            rules=PlacementRules(state.inventory, view),
        )
        moves, stats = planner.run()
        plan = ActionPlan(strategy=self.name)
        n_over = int(stats["overload_migrations"])
        for i, (vm, source, target) in enumerate(moves):
            plan.add(
                ActionKind.LIVE_MIGRATE,
                vm_id=view.vm_ids[vm],
                source_host_id=view.host_ids[source],
                target_host_id=view.host_ids[target],
                reason="overloaded host (LR)" if i < n_over else "underloaded host (consolidation)",
            )
        plan.stats.update(stats)
        plan.stats["wall_seconds"] = time.perf_counter() - started
        return plan
