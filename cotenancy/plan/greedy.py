"""Greedy placement over the same options and costs as the CP-SAT model.

It serves twice: as the hint CP-SAT starts from (so a feasible solution exists from the first
millisecond) and as the plan when CP-SAT finds none within its time limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain

import numpy as np

from cotenancy.plan.candidates import CandidateModel

_EPS = 1e-6


@dataclass(slots=True)
class Assignment:
    """One option index per candidate, and the objective of that choice (objective units)."""

    choice: np.ndarray
    objective: float


class LoadTracker:
    """Loads of the model hosts for a (partial) choice of options, for incremental costs."""

    def __init__(self, cm: CandidateModel, choice: np.ndarray) -> None:
        self.cm = cm
        self.choice = choice.copy()
        self.held = cm.fixed_held.copy()
        self.demand = cm.fixed_demand.copy()
        self.count = cm.has_fixed.astype(int)
        self.moves_total = 0
        self.moves_at = np.zeros(len(cm.hosts), dtype=int)
        #: per candidate: (other candidate, cost if they end on one host)
        self.pair_cost: dict[int, list[tuple[int, float]]] = {}
        #: per candidate and model host: (other candidate, cost if both end on that host)
        self.pair_cost_on: dict[tuple[int, int], list[tuple[int, float]]] = {}
        self.forbidden: dict[int, set[int]] = {}
        for a, b, cost, _ in cm.pairs:
            self.pair_cost.setdefault(a, []).append((b, cost))
            self.pair_cost.setdefault(b, []).append((a, cost))
        for a, b, h, cost in cm.host_pairs:
            self.pair_cost_on.setdefault((a, h), []).append((b, cost))
            self.pair_cost_on.setdefault((b, h), []).append((a, cost))
        for a, b in cm.forbidden_pairs:
            self.forbidden.setdefault(a, set()).add(b)
            self.forbidden.setdefault(b, set()).add(a)
        self.home = np.array([cm.host_pos[int(cm.problem.host_of[v])] for v in cm.candidates], dtype=int)
        scale = cm.problem.capacity_scale[cm.hosts] if cm.hosts else np.ones_like(cm.overload_at)
        # objective units per unit of demand above the target, 0 where overload is not counted
        weight = cm.problem.settings.weight_overload
        self.overload_weight = np.where(cm.problem.counted[None, :], weight / scale, 0.0)
        for pos, opt in enumerate(self.choice):
            if opt >= 0:
                self._apply(pos, int(opt), +1)

    def _apply(self, pos: int, opt: int, sign: int) -> None:
        cm = self.cm
        h = int(cm.opt_host[opt])
        self.held[h] += sign * cm.opt_held[opt]
        self.demand[h] += sign * cm.opt_demand[opt]
        self.count[h] += sign
        if cm.opt_move[opt]:
            self.moves_total += sign
            self.moves_at[h] += sign
            self.moves_at[self.home[pos]] += sign

    def remove(self, pos: int) -> None:
        opt = int(self.choice[pos])
        if opt >= 0:
            self._apply(pos, opt, -1)
            self.choice[pos] = -1

    def place(self, pos: int, opt: int) -> None:
        self._apply(pos, opt, +1)
        self.choice[pos] = opt

    def feasible(self, pos: int, opt: int) -> bool:
        cm = self.cm
        s = cm.problem.settings
        h = int(cm.opt_host[opt])
        if (self.held[h] + cm.opt_held[opt] > cm.limit[h] + _EPS).any():
            return False
        for other in self.forbidden.get(pos, ()):
            # a hard rule already broken on their home may stay broken, never be broken anew
            met = self.choice[other] >= 0 and cm.opt_host[self.choice[other]] == h
            if met and not h == self.home[pos] == self.home[other]:
                return False
        if cm.opt_move[opt]:
            if (self.demand[h] + cm.opt_demand[opt] > cm.ceiling[h] + _EPS).any():
                return False
            if self.moves_total + 1 > s.max_migrations:
                return False
            if self.moves_at[h] + 1 > s.max_migrations_per_host:
                return False
            if self.moves_at[self.home[pos]] + 1 > s.max_migrations_per_host:
                return False
        return True

    def incremental_cost(self, pos: int, opt: int) -> float:
        """Objective change of placing candidate ``pos`` with option ``opt`` now."""
        cm = self.cm
        s = cm.problem.settings
        h = int(cm.opt_host[opt])
        cost = float(cm.opt_cost[opt]) + cm.violation_weight * self.violations(pos, opt)
        for other, pair in chain(self.pair_cost.get(pos, ()), self.pair_cost_on.get((pos, h), ())):
            if self.choice[other] >= 0 and cm.opt_host[self.choice[other]] == h:
                cost += pair
        now = self.demand[h]
        cost += self.overload_cost(h, now + cm.opt_demand[opt]) - self.overload_cost(h, now)
        if self.count[h] == 0:
            cost += s.weight_energy * cm.problem.power_idle[cm.hosts[h]]
        return cost

    def violations(self, pos: int, opt: int) -> int:
        """Pairs kept apart by a hard rule that candidate ``pos`` would share a host with, placed
        with option ``opt`` among the others as placed now."""
        if not self.cm.violation_weight:
            return 0
        h = int(self.cm.opt_host[opt])
        met = sum(
            1
            for other in self.forbidden.get(pos, ())
            if self.choice[other] >= 0 and self.cm.opt_host[self.choice[other]] == h
        )
        return int(self.cm.opt_violations[opt]) + met

    def overload_cost(self, h: int, demand: np.ndarray) -> float:
        """Cost of model host ``h`` carrying ``demand``: what passes its target, per capacity."""
        return float((np.maximum(demand - self.cm.overload_at[h], 0.0) * self.overload_weight[h]).sum())

    def objective(self) -> float:
        cm = self.cm
        s = cm.problem.settings
        total = float(sum(cm.opt_cost[o] for o in self.choice if o >= 0))
        if cm.violation_weight:
            kept = sum(int(cm.opt_violations[o]) for o in self.choice if o >= 0)
            for a, b in cm.forbidden_pairs:
                oa, ob = self.choice[a], self.choice[b]
                kept += int(oa >= 0 and ob >= 0 and cm.opt_host[oa] == cm.opt_host[ob])
            total += cm.violation_weight * kept
        for a, b, cost, _ in cm.pairs:
            oa, ob = self.choice[a], self.choice[b]
            if oa >= 0 and ob >= 0 and cm.opt_host[oa] == cm.opt_host[ob]:
                total += cost
        for a, b, h, cost in cm.host_pairs:
            oa, ob = self.choice[a], self.choice[b]
            if oa >= 0 and ob >= 0 and cm.opt_host[oa] == h and cm.opt_host[ob] == h:
                total += cost
        for h in range(len(cm.hosts)):
            total += self.overload_cost(h, self.demand[h])
            if not cm.has_fixed[h] and self.count[h] > 0:
                total += s.weight_energy * cm.problem.power_idle[cm.hosts[h]]
        return total


def stay_assignment(cm: CandidateModel) -> np.ndarray:
    return np.array([cm.stay_option(pos) for pos in range(len(cm.candidates))], dtype=int)


def greedy_solve(cm: CandidateModel, passes: int = 2) -> Assignment:
    """Start from "everyone stays", re-place each candidate at its cheapest feasible option, then
    try emptying whole hosts, which no single move shows to pay."""
    tracker = LoadTracker(cm, stay_assignment(cm))
    options = [cm.options_of(pos) for pos in range(len(cm.candidates))]
    _relocate(tracker, options, passes)
    _drain(tracker, options)
    return Assignment(tracker.choice.copy(), tracker.objective())


def _cheapest(
    tracker: LoadTracker,
    pos: int,
    options: np.ndarray,
    avoid: int = -1,
    incumbent: tuple[int, float] = (-1, float("inf")),
) -> tuple[int, float]:
    """The cheapest feasible option of candidate ``pos`` off model host ``avoid``, if it costs less
    than ``incumbent`` (an option already priced, and kept on a tie; by default none at infinite cost)."""
    best, best_cost = incumbent
    for opt in options:
        opt = int(opt)
        if opt == incumbent[0] or tracker.cm.opt_host[opt] == avoid or not tracker.feasible(pos, opt):
            continue
        cost = tracker.incremental_cost(pos, opt)
        if cost < best_cost - 1e-9:
            best, best_cost = opt, cost
    return best, best_cost


def _relocate(tracker: LoadTracker, options: list[np.ndarray], passes: int) -> None:
    """Move one candidate at a time to its cheapest option while that lowers the objective."""
    for _ in range(passes):
        changed = False
        for pos in range(len(options)):
            current = int(tracker.choice[pos])
            tracker.remove(pos)
            best, _ = _cheapest(
                tracker, pos, options[pos], incumbent=(current, tracker.incremental_cost(pos, current))
            )
            tracker.place(pos, best)
            changed |= best != current
        if not changed:
            break


def _drain(tracker: LoadTracker, options: list[np.ndarray]) -> None:
    """Empty model hosts holding only candidates, fewest first, where moving all of them costs less
    than the host's idle power: with two VMs on a host, moving either alone saves nothing, so the
    one-at-a-time pass leaves the host on even when emptying it is worth both moves."""
    cm = tracker.cm
    on_host: dict[int, list[int]] = {}
    for pos, opt in enumerate(tracker.choice):
        if opt >= 0:
            on_host.setdefault(int(cm.opt_host[opt]), []).append(pos)
    drainable = [h for h, members in on_host.items() if not cm.has_fixed[h]]
    for h in sorted(drainable, key=lambda h: (len(on_host[h]), float(tracker.demand[h].sum()))):
        members = [pos for pos in on_host[h] if cm.opt_host[tracker.choice[pos]] == h]
        if not members:
            continue
        before = [int(tracker.choice[pos]) for pos in members]
        saved = 0.0
        for pos, opt in zip(reversed(members), reversed(before), strict=True):
            tracker.remove(pos)
            saved += tracker.incremental_cost(pos, opt)
        spent = 0.0
        placed: list[int] = []
        for pos in members:
            opt, cost = _cheapest(tracker, pos, options[pos], avoid=h)
            if opt < 0:
                break
            tracker.place(pos, opt)
            placed.append(pos)
            spent += cost
        if len(placed) == len(members) and spent < saved - 1e-9:
            for pos in members:
                on_host.setdefault(int(cm.opt_host[tracker.choice[pos]]), []).append(pos)
            continue
        for pos in placed:
            tracker.remove(pos)
        for pos, opt in zip(members, before, strict=True):
            tracker.place(pos, opt)
