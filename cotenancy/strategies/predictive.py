"""``predictive``: act on forecasts and pair risks before conflicts happen.

Every interval the strategy forecasts each VM's demand (median and the planning quantile over the
next ``horizon_steps``), scores the risk of co-located pairs, and hands both to the CP-SAT planner
(:mod:`cotenancy.plan`). The planner makes the VMs of pairs above ``risk_threshold`` candidates,
so the riskiest pair is separated proactively when a host has room, relieves hosts predicted to
overload, empties under-used hosts when that saves energy, and raises or lowers allocations ahead
of demand with hysteresis. Every step carries the forecast or pair risk that caused it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from collections.abc import Sequence

import numpy as np
from oslo_config import cfg

from cotenancy import loading
from cotenancy.conf import plan as plan_conf
from cotenancy.model import ActionKind, ActionPlan, ClusterState, Inventory, Resource, Resources, StepStatus
from cotenancy.plan.interference import VmInterference
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import DemandForecast, PairRiskFn, PlannerSettings
from cotenancy.predict.base import Forecaster, RiskModel
from cotenancy.strategies.base import Strategy

LOG = logging.getLogger(__name__)


class PredictiveStrategy(Strategy):
    name = "predictive"
    group = "strategy_predictive"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "risk_model",
                help="Pairwise risk model of this strategy (entry point in cotenancy.predictors.risk). "
                "Unset: [predict] risk_model, the one 'cotenancy train' trains and the API serves. "
                "Empty: no pair risk.",
            ),
            cfg.StrOpt(
                "forecaster",
                help="Demand forecaster of this strategy (entry point in cotenancy.predictors.forecast). "
                "Unset: [predict] forecaster, the one 'cotenancy train' trains and the API serves.",
            ),
        ]

    def __init__(
        self,
        conf: cfg.ConfigOpts,
        risk_model: RiskModel | None = None,
        forecaster: Forecaster | None = None,
    ) -> None:
        super().__init__(conf)
        if not hasattr(conf, plan_conf.GROUP):
            conf.register_opts(plan_conf.OPTS, group=plan_conf.GROUP)
        self.settings = PlannerSettings.from_conf(conf)
        self.planner = Planner(self.settings)
        self._risk = risk_model
        self._forecaster = forecaster
        self._last_plan: ActionPlan | None = None
        #: quantile forecasts of the previous rounds: (VM id -> row, resource -> values)
        self._past_high: deque[tuple[dict[str, int], dict[Resource, np.ndarray]]] = deque(
            maxlen=max(0, self.settings.scale_down_rounds - 1)
        )
        self._reported: dict[str, Resources] = {}
        #: VM -> (reservation the cloud reported when we asked, reservation we asked for)
        self._asked: dict[str, tuple[Resources, Resources]] = {}

    @property
    def risk_model(self) -> RiskModel | None:
        name = self.options.risk_model
        name = self.conf.predict.risk_model if name is None else name
        if self._risk is None and name:
            self._risk = loading.load_plugin(loading.RISK_MODELS, name, self.conf)
        return self._risk

    @property
    def forecaster(self) -> Forecaster:
        if self._forecaster is None:
            name = self.options.forecaster or self.conf.predict.forecaster
            self._forecaster = loading.load_plugin(loading.FORECASTERS, name, self.conf)
        return self._forecaster

    def plan(self, state: ClusterState) -> ActionPlan:
        forecast = self.demand_forecast(state)
        risk = self.pair_risk(state)
        inventory = self.with_granted_reservations(state.inventory)
        plan = self.planner.plan(
            inventory,
            forecast,
            risk,
            migrating=state.migrating,
            strategy=self.name,
            interference=self.interference(state, forecast),
        )
        plan.stats["forecast"] = forecast.description if forecast is not None else "none"
        plan.stats["risk"] = self.risk_source()
        plan.stats["reservations_not_reported"] = float(len(self._asked))
        self._last_plan = plan
        self._reported = {
            a.vm_id: state.inventory.vms[a.vm_id].allocation.reservation
            for a in plan.actions
            if a.kind is ActionKind.SET_ALLOCATION and a.vm_id in state.inventory.vms
        }
        return plan

    def with_granted_reservations(self, inventory: Inventory) -> Inventory:
        """The inventory with the reservations this strategy set and the cloud does not report.

        Some clouds accept a reservation but never show it (the simulated cloud has no
        reservations; some drivers report none). Planning against the reported value would ask
        for the same reservation again every round, so a granted request stands until the cloud
        reports something else than it did when we asked.
        """
        last, self._last_plan = self._last_plan, None
        if last is not None:
            for action in last.actions:
                done = action.kind is ActionKind.SET_ALLOCATION and action.status is StepStatus.SUCCEEDED
                if done and action.allocation is not None and action.vm_id in self._reported:
                    self._asked[action.vm_id] = (self._reported[action.vm_id], action.allocation.reservation)
        granted: dict[str, Resources] = {}
        for vm_id, (reported_then, asked_for) in list(self._asked.items()):
            vm = inventory.vms.get(vm_id)
            if (
                vm is not None
                and _same(vm.allocation.reservation, reported_then)
                and not _same(reported_then, asked_for)
            ):
                granted[vm_id] = asked_for
            else:
                # the cloud shows it, or someone changed it: from now on what it reports is true
                del self._asked[vm_id]
        if not granted:
            return inventory
        vms = dict(inventory.vms)
        for vm_id, reservation in granted.items():
            vm = vms[vm_id]
            vms[vm_id] = dataclasses.replace(
                vm, allocation=dataclasses.replace(vm.allocation, reservation=reservation)
            )
        return dataclasses.replace(inventory, vms=vms)

    def demand_forecast(self, state: ClusterState) -> DemandForecast | None:
        """Forecasts in inventory order: worst horizon at the planning quantile, mean median."""
        if not state.telemetry.vm_ids:
            return None
        s = self.settings
        quantiles = (0.5, s.quantile)
        horizons: Sequence[int] = tuple(range(1, s.horizon_steps + 1))
        result = self.forecaster.forecast(state, horizons, quantiles)
        rows = {vm_id: i for i, vm_id in enumerate(result.vm_ids)}
        order = np.array([rows.get(v, -1) for v in state.inventory.vms], dtype=int)
        known = order >= 0
        high: dict[Resource, np.ndarray] = {}
        mid: dict[Resource, np.ndarray] = {}
        for key, cube in result.values.items():
            try:
                resource = Resource(key)
            except ValueError:
                continue
            worst = np.nanmax(cube[:, :, 1], axis=1) if cube.shape[1] else np.full(len(cube), np.nan)
            median = np.nanmean(cube[:, :, 0], axis=1) if cube.shape[1] else np.full(len(cube), np.nan)
            high[resource] = np.where(known, worst[np.maximum(order, 0)], np.nan)
            mid[resource] = np.where(known, median[np.maximum(order, 0)], np.nan)
        sources = sorted(set(result.source.values())) if result.source else []
        label = f"forecast p{round(s.quantile * 100)} over {s.horizon_steps} steps"
        if sources:
            label += f" ({'/'.join(sources)})"
        return DemandForecast(high, mid, label, held_high=self.recent_peak(list(state.inventory.vms), high))

    def recent_peak(self, vm_ids: list[str], high: dict[Resource, np.ndarray]) -> dict[Resource, np.ndarray]:
        """Highest quantile forecast of each VM over this and the previous rounds, and remember
        this round's: allocations are lowered only when demand has stayed low that long."""
        peak = {r: values.copy() for r, values in high.items()}
        for rows, past in self._past_high:
            pos = np.array([rows.get(v, -1) for v in vm_ids], dtype=int)
            seen = pos >= 0
            for resource, values in peak.items():
                if resource in past and seen.any():
                    earlier = np.where(seen, past[resource][np.maximum(pos, 0)], np.nan)
                    peak[resource] = np.fmax(values, earlier)
        if self._past_high.maxlen:
            self._past_high.append(({v: i for i, v in enumerate(vm_ids)}, high))
        return peak

    def interference(
        self, state: ClusterState, forecast: DemandForecast | None = None
    ) -> VmInterference | None:
        """The risk model's per-VM interference estimates in inventory order (0 where unknown).

        A VM's activity is its median CPU forecast over its size where there is one: steadier
        than the risk model's short extrapolation, so a VM moved for a quiet neighbourhood is not
        moved back when a neighbour's trend turns.
        """
        model = self.risk_model
        if model is None or self.settings.weight_interference <= 0:
            return None
        estimate = model.interference(state)
        if estimate is None:
            return None
        rows = {vm_id: i for i, vm_id in enumerate(estimate.vm_ids)}
        order = np.array([rows.get(v, -1) for v in state.inventory.vms], dtype=int)
        known = order >= 0

        def aligned(values: np.ndarray) -> np.ndarray:
            picked = np.where(known, np.asarray(values, dtype=float)[np.maximum(order, 0)], np.nan)
            return np.clip(picked, 0.0, 1.0)

        activity = aligned(estimate.activity)
        if forecast is not None and Resource.CPU in forecast.mid:
            size = np.array([vm.size.cpu for vm in state.inventory.vms.values()], dtype=float)
            with np.errstate(invalid="ignore", divide="ignore"):
                predicted = np.clip(np.asarray(forecast.mid[Resource.CPU], dtype=float) / size, 0.0, 1.0)
            activity = np.where(np.isnan(predicted), activity, predicted)
        if estimate.pressure is not None:
            picked = np.asarray(estimate.pressure, dtype=float)[np.maximum(order, 0)]
            activity = activity * np.where(known & ~np.isnan(picked), picked, 1.0)
        sensitivity = np.nan_to_num(aligned(estimate.sensitivity), nan=0.0)
        return VmInterference(sensitivity, np.nan_to_num(activity, nan=0.0), estimate.half_load)

    def risk_source(self) -> str:
        """``xgboost (trained)`` or ``xgboost (fallback)``: which pair risks the plan rests on, so an
        operator sees that a newly trained model is the one serving (as the forecast label says)."""
        model = self.risk_model
        if model is None:
            return "none"
        return f"{model.name} ({'trained' if model.trained else 'fallback'})"

    def pair_risk(self, state: ClusterState) -> PairRiskFn | None:
        """The risk model seen through the planner's indices (inventory order for VMs and hosts)."""
        model = self.risk_model
        if model is None:
            return None
        rows = {vm_id: i for i, vm_id in enumerate(state.telemetry.vm_ids)}
        vm_row = np.array([rows.get(v, -1) for v in state.inventory.vms], dtype=int)
        sorted_hosts = {h: i for i, h in enumerate(sorted(state.inventory.hosts))}
        host_pos = np.array([sorted_hosts[h] for h in state.inventory.hosts], dtype=int)

        def score(pairs: np.ndarray, hosts: np.ndarray | None) -> np.ndarray:
            mapped = vm_row[pairs]
            ok = (mapped >= 0).all(axis=1)
            out = np.zeros(len(pairs))
            if ok.any():
                where = None if hosts is None else host_pos[np.asarray(hosts)[ok]]
                out[ok] = model.score_pairs(state, mapped[ok], where)
            return out

        return score


def _same(a: Resources, b: Resources) -> bool:
    """Equal up to the rounding drivers apply (whole MHz, MiB, percent steps)."""
    left = np.array([getattr(a, f.name) for f in dataclasses.fields(a)], dtype=float)
    right = np.array([getattr(b, f.name) for f in dataclasses.fields(b)], dtype=float)
    return bool(np.allclose(left, right, rtol=0.01, atol=1.0))
