"""``predictive``: act on forecasts and pair risks before conflicts happen.

Every interval the strategy forecasts each VM's demand (median and the planning quantile over the
next ``horizon_steps``), scores the risk of co-located pairs, and hands both to the CP-SAT planner
(:mod:`cotenancy.plan`). The planner makes the VMs of pairs above ``risk_threshold`` candidates,
so the riskiest pair is separated proactively when a host has room, relieves hosts predicted to
overload, empties under-used hosts when that saves energy, and raises or lowers allocations ahead
of demand with hysteresis. Every step carries the forecast or pair risk that caused it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from oslo_config import cfg

from cotenancy import loading
from cotenancy.conf import plan as plan_conf
from cotenancy.model import ActionPlan, ClusterState, Resource
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
                default="xgboost",
                help="Pairwise risk model (entry point in cotenancy.predictors.risk); empty: no pair risk.",
            ),
            cfg.StrOpt(
                "forecaster",
                default="default",
                help="Demand forecaster (entry point in cotenancy.predictors.forecast).",
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

    @property
    def risk_model(self) -> RiskModel | None:
        if self._risk is None and self.options.risk_model:
            self._risk = loading.load_plugin(loading.RISK_MODELS, self.options.risk_model, self.conf)
        return self._risk

    @property
    def forecaster(self) -> Forecaster:
        if self._forecaster is None:
            self._forecaster = loading.load_plugin(loading.FORECASTERS, self.options.forecaster, self.conf)
        return self._forecaster

    def plan(self, state: ClusterState) -> ActionPlan:
        forecast = self.demand_forecast(state)
        risk = self.pair_risk(state)
        plan = self.planner.plan(
            state.inventory, forecast, risk, migrating=state.migrating, strategy=self.name
        )
        plan.stats["forecast"] = forecast.description if forecast is not None else "none"
        return plan

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
        return DemandForecast(high, mid, label)

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
