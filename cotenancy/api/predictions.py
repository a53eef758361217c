"""Predictions on demand: pair risks and demand forecasts computed from the history store.

The API is usually a separate process from the control loop, so it does not share its telemetry
buffer; it rebuilds the same :class:`ClusterState` from the store (last known inventory with the
active API requests applied, the recent metric grid, past degradation events) and asks the
configured risk model and forecaster, which reload their model files when a trainer replaces them.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import sqlalchemy as sa
from oslo_config import cfg

from cotenancy import loading
from cotenancy.conf.predict import telemetry_window_steps
from cotenancy.exceptions import NotFound
from cotenancy.model import ClusterState, EventKind, Inventory, Metric, VMState
from cotenancy.store import HistoryStore, schema
from cotenancy.store.requests import apply_requests, forecaster_calendar

METRICS = tuple(m.value for m in Metric)
#: degradation events older than this do not feed the risk model's past-conflict features
DEFAULT_MEMORY_SECONDS = 6 * 3600.0
#: decimals kept of a requested quantile level: finer levels are noise, and would make keys long
QUANTILE_DECIMALS = 4


def _number(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def quantile_levels(requested: Iterable[float]) -> list[float]:
    """The levels to forecast: each rounded to :data:`QUANTILE_DECIMALS` decimals, without
    duplicates, ascending. Levels that round alike (0.5 and 0.5000001) are one level, so each
    answers under one key."""
    return sorted({round(float(q), QUANTILE_DECIMALS) for q in requested})


def quantile_key(level: float) -> str:
    """The key of a level's value in a forecast point: the level as JSON writes it in the
    answer's ``quantiles`` list (shortest round-trip text, e.g. ``0.95``), so a client can look
    each value up with the list it is given."""
    return repr(float(level))


class Predictions:
    """Builds states from the store and serves risk and forecasts; one computation at a time,
    because the models cache per-state context and the machine is small."""

    def __init__(self, conf: cfg.ConfigOpts, store: HistoryStore, clock: Callable[[], float]) -> None:
        self.conf = conf
        self.store = store
        self.clock = clock
        self.step = float(conf.interval)
        self.window_steps = telemetry_window_steps(conf)
        self._lock = threading.Lock()
        self._risk: Any = None
        self._forecaster: Any = None

    # models are loaded on first use: importing xgboost costs seconds the server need not wait for
    def risk_model(self) -> Any:
        if self._risk is None:
            self._risk = loading.load_plugin(loading.RISK_MODELS, self.conf.predict.risk_model, self.conf)
        return self._risk

    def forecaster(self) -> Any:
        if self._forecaster is None:
            self._forecaster = loading.load_plugin(
                loading.FORECASTERS, self.conf.predict.forecaster, self.conf
            )
        return self._forecaster

    def latest_sample_time(self) -> float | None:
        with self.store.engine.connect() as connection:
            found = connection.execute(sa.select(sa.func.max(schema.samples.c.timestamp))).scalar()
        return None if found is None else float(found)

    def origin(self, at: float | None) -> float:
        """The end of the telemetry window: ``at``, else just after the newest stored sample (so a
        store fed by a simulated clock answers too), else the wall clock."""
        if at is not None:
            return at
        latest = self.latest_sample_time()
        return latest + self.step if latest is not None else self.clock()

    def state(self, at: float | None, vm_ids: Sequence[str] | None = None) -> ClusterState:
        now = self.origin(at)
        inventory = apply_requests(
            self.store,
            Inventory(hosts=self.store.hosts(present_only=True), vms=self.store.vms(present_only=True)),
            self.clock(),
        )
        rows = list(vm_ids) if vm_ids is not None else sorted(inventory.vms)
        start = now - self.step * self.window_steps
        telemetry = self.store.series(start, now, self.step, vm_ids=rows, metrics=METRICS)
        memory = float(getattr(self._risk, "memory_seconds", DEFAULT_MEMORY_SECONDS))
        # as the loop hands them over: past conflicts, and the moves behind placement-churn features
        events = self.store.events(now - memory, now, kinds=[EventKind.DEGRADATION, EventKind.MIGRATION])
        migrating = frozenset(v.id for v in inventory.vms.values() if v.state is VMState.MIGRATING)
        return ClusterState(
            now=now,
            inventory=inventory,
            telemetry=telemetry,
            events=events,
            migrating=migrating,
            interval_seconds=self.step,
        )

    def pairs(self, vm_id: str | None, limit: int, at: float | None, explain_top: int = 5) -> dict[str, Any]:
        """Risk of every pair of running VMs sharing a host (those with ``vm_id`` when given),
        highest first, with the features that drove each of the ``limit`` shown. A VM a live
        migration is taking to another host shares both until it lands, as the planner counts it:
        its pairs on the target are scored for that host, with it added."""
        with self._lock:
            model = self.risk_model()
            state = self.state(at)
            inventory = state.inventory
            if vm_id is not None and vm_id not in inventory.vms:
                raise NotFound(f"no VM {vm_id!r} in the last known inventory")
            index = {v: i for i, v in enumerate(state.telemetry.vm_ids)}
            # the risk model numbers hosts in sorted order (cotenancy.predict.risk)
            host_ids = sorted(inventory.hosts)
            host_index = {h: i for i, h in enumerate(host_ids)}
            pairs: list[tuple[int, int]] = []
            shared: list[str] = []
            for host_id, residents in inventory.running_on().items():
                ids = sorted(v.id for v in residents)
                for i, a in enumerate(ids):
                    for b in ids[i + 1 :]:
                        if vm_id is None or vm_id in (a, b):
                            pairs.append((index[a], index[b]))
                            shared.append(host_id)
            hosts = [host_index.get(h, -1) for h in shared]
            scores = model.score_pairs(
                state, np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(hosts, dtype=np.int64)
            )
            order = np.argsort(-np.nan_to_num(scores, nan=-1.0), kind="stable")[:limit]
            names = state.telemetry.vm_ids
            shown = []
            for k in order:
                a, b = pairs[int(k)]
                host = hosts[int(k)]
                explanation = model.explain(state, (a, b), top=explain_top, host=host if host >= 0 else None)
                shown.append(
                    {
                        "vm_ids": [names[a], names[b]],
                        "host_id": shared[int(k)],
                        "risk": _number(scores[int(k)]),
                        "explanation": [
                            {"feature": feature, "contribution": _number(value)}
                            for feature, value in explanation
                        ],
                    }
                )
        return {
            "at": state.now,
            "model": self.conf.predict.risk_model,
            "trained": bool(model.trained),
            "model_problem": getattr(model, "model_problem", None),
            "horizon_seconds": float(self.conf.predict.risk_horizon),
            "pairs_scored": len(pairs),
            "pairs": shown,
        }

    def forecast(
        self, vm_id: str, horizon: int, quantiles: Sequence[float], at: float | None
    ) -> dict[str, Any]:
        """Quantile forecasts of one VM's demand for each interval up to ``horizon``, with the
        configured and API-requested hints applied. ``quantiles`` are normalised by
        :func:`quantile_levels`; the answer's ``quantiles`` are the levels its values are keyed by."""
        quantiles = quantile_levels(quantiles)
        with self._lock:
            forecaster = self.forecaster()
            state = self.state(at, vm_ids=[vm_id])
            if vm_id not in state.inventory.vms:
                raise NotFound(f"no VM {vm_id!r} in the last known inventory")
            forecaster.hints = forecaster_calendar(self.conf, self.store, self.clock())
            horizons = list(range(1, horizon + 1))
            result = forecaster.forecast(state, horizons, quantiles)
        levels = [float(q) for q in result.quantiles]
        points = []
        for h_i, h in enumerate(result.horizons):
            point: dict[str, Any] = {"horizon": h, "time": result.origin + h * result.step_seconds}
            for resource, cube in result.values.items():
                point[resource] = {
                    quantile_key(q): _number(cube[0, h_i, q_i]) for q_i, q in enumerate(levels)
                }
            points.append(point)
        return {
            "vm_id": vm_id,
            "origin": result.origin,
            "step_seconds": result.step_seconds,
            "quantiles": levels,
            "source": dict(result.source),
            "model_problem": getattr(forecaster, "model_problem", None),
            "points": points,
        }
