"""The ``predictive`` strategy: forecasts and pair risks in, explained and safe plans out."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from plan_safety import check_plan_safe

from cotenancy import loading
from cotenancy.conf import make_conf
from cotenancy.exceptions import UnknownPluginError
from cotenancy.model import VM, ClusterState, Host, Inventory, Resources, TelemetryWindow
from cotenancy.predict.base import Forecast, Forecaster, RiskModel
from cotenancy.predict.forecast import HybridForecaster
from cotenancy.predict.risk import XGBoostRiskModel
from cotenancy.strategies.predictive import PredictiveStrategy


class LastValueForecaster(Forecaster):
    """Stand-in: tomorrow looks like the last sample; the high quantile adds 20 %."""

    name = "stand-in"

    def forecast(self, state: ClusterState, horizons: Sequence[int], quantiles=(0.5, 0.95)) -> Forecast:
        latest = np.nan_to_num(state.telemetry.latest("cpu"))
        cube = np.stack([latest * (1.0 + 0.2 * (q > 0.5)) for q in quantiles], axis=-1)
        cube = np.repeat(cube[:, None, :], len(horizons), axis=1)
        return Forecast(
            state.telemetry.vm_ids,
            state.now,
            300.0,
            tuple(horizons),
            tuple(quantiles),
            {"cpu": cube},
            {"cpu": "stand-in"},
        )


class NamedPairRisk(RiskModel):
    """Stand-in: the pair (noisy-a, noisy-b) is risky wherever it is; records what it was asked."""

    name = "stand-in"

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[tuple[list[tuple[str, str]], np.ndarray | None]] = []

    def score_pairs(self, state, pairs, hosts=None):
        ids = state.telemetry.vm_ids
        named = [(ids[a], ids[b]) for a, b in pairs]
        self.calls.append((named, hosts))
        return np.array([0.8 if {a, b} == {"noisy-a", "noisy-b"} else 0.01 for a, b in named])

    def explain(self, state, pair, top=5, host=None):
        return []


def cluster_state() -> ClusterState:
    hosts = {h: Host(h, h, Resources(cpu=4000, memory=8192), power_model="g5") for h in ("h1", "h2", "h3")}
    vms = {
        "noisy-a": VM("noisy-a", "noisy-a", "h1", Resources(cpu=1000, memory=1024)),
        "noisy-b": VM("noisy-b", "noisy-b", "h1", Resources(cpu=1000, memory=1024)),
        "quiet-c": VM("quiet-c", "quiet-c", "h2", Resources(cpu=1000, memory=1024)),
        "quiet-d": VM("quiet-d", "quiet-d", "h3", Resources(cpu=1000, memory=1024)),
    }
    ids = sorted(vms)
    cpu = np.tile(np.array([[400.0], [400.0], [300.0], [300.0]]), (1, 12))
    window = TelemetryWindow(ids, np.arange(12) * 300.0, {"cpu": cpu}, 300.0)
    return ClusterState(now=3600.0, inventory=Inventory(hosts, vms), telemetry=window)


def test_the_strategy_is_the_predictive_entry_point(conf):
    assert loading.plugin_class(loading.STRATEGIES, "predictive") is PredictiveStrategy


def test_a_risky_pair_is_split_ahead_of_any_conflict_with_the_reason_on_the_step(conf):
    conf.set_override("underloaded_hosts", 0, group="planner")
    risk = NamedPairRisk()
    strategy = PredictiveStrategy(conf, risk_model=risk, forecaster=LastValueForecaster(None))
    state = cluster_state()
    plan = strategy.plan(state)
    moved = [s for s in plan.migrations]
    assert len(moved) >= 1 and {s.vm_id for s in moved} <= {"noisy-a", "noisy-b"}
    where = state.inventory.placement() | {s.vm_id: s.target_host_id for s in moved}
    assert where["noisy-a"] != where["noisy-b"]
    assert all("pair risk 0.80" in s.reason for s in moved)
    assert plan.stats["max_pair_risk"] == 0.8
    assert "stand-in" in str(plan.stats["forecast"])
    # hypothetical hosts are named the way the risk model expects: indices into sorted host ids
    hosted = [hosts for _, hosts in risk.calls if hosts is not None]
    assert hosted and all(set(np.asarray(h).tolist()) <= {0, 1, 2} for h in hosted)
    check_plan_safe(state.inventory, plan)


def test_allocations_are_raised_ahead_of_forecast_demand(conf):
    strategy = PredictiveStrategy(conf, risk_model=NamedPairRisk(), forecaster=LastValueForecaster(None))
    plan = strategy.plan(cluster_state())
    raised = {s.vm_id: s.allocation.reservation.cpu for s in plan.actions if s.kind == "set_allocation"}
    # 400 MHz now, p95 stand-in 480, plus 10 % headroom
    assert raised == {"noisy-a": 528.0, "noisy-b": 528.0, "quiet-c": 396.0, "quiet-d": 396.0}


def _strategy_with(**options: str) -> PredictiveStrategy:
    """``options``: ``group__name=value`` overrides, e.g. ``predict__forecaster="x"``."""
    conf = make_conf([], config_files=[])
    strategy = PredictiveStrategy(conf)
    for key, value in options.items():
        group, name = key.split("__")
        conf.set_override(name, value, group=group)
    return strategy


def test_the_strategy_serves_the_models_predict_names_unless_it_names_its_own():
    assert isinstance(_strategy_with().forecaster, HybridForecaster)
    with pytest.raises(UnknownPluginError, match="elsewhere"):
        _ = _strategy_with(predict__forecaster="elsewhere").forecaster
    own = _strategy_with(predict__forecaster="elsewhere", strategy_predictive__forecaster="default")
    assert isinstance(own.forecaster, HybridForecaster)


def test_no_pair_risk_follows_predict_and_can_be_asked_of_the_strategy_alone():
    assert isinstance(_strategy_with().risk_model, XGBoostRiskModel)
    assert _strategy_with(predict__risk_model="").risk_model is None
    assert _strategy_with(strategy_predictive__risk_model="").risk_model is None
