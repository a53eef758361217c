"""The Watcher strategy ``cotenancy_predictive``.

Watcher brings audits, approval-gated action plans and an applier; cotenancy brings the
prediction. Each audit this strategy:

1. reads the instances' recent CPU and memory through Watcher's datasource backend
   (``statistic_series``, so Gnocchi, Grafana or any datasource Watcher is configured with);
2. turns Watcher's compute model into a cotenancy :class:`~cotenancy.model.ClusterState`;
3. when cotenancy's ``[store] connection`` names the history store its open API serves, applies
   the rules, drains, critical marks and hints other programs asked for there;
4. flags usage far above its forecast (``[predict] detect_anomalies``): logged, and kept in
   that history store when there is one;
5. asks a cotenancy strategy (``predictive`` by default: demand forecasts, XGBoost pair risk,
   CP-SAT planner) for an :class:`~cotenancy.model.ActionPlan`;
6. emits Watcher's own ``migrate``, ``resize`` and ``change_nova_service_state`` actions, so
   Watcher's planner orders them and its applier carries them out.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
import time
from typing import Any, ClassVar

from oslo_config import cfg
from oslo_log import log
from watcher.decision_engine.strategy.strategies import base

from cotenancy import loading
from cotenancy.conf import make_conf
from cotenancy.conf.predict import telemetry_window_steps
from cotenancy.exceptions import CotenancyError
from cotenancy.model import ActionPlan, ClusterState, Event, Inventory
from cotenancy.plugins.watcher import goal as cotenancy_goal
from cotenancy.plugins.watcher import translate
from cotenancy.predict.anomaly import AnomalyDetector, affected, configured_detector
from cotenancy.store import HistoryStore
from cotenancy.store.requests import apply_operator_requests
from cotenancy.strategies.base import Strategy
from cotenancy.text import escape_controls

LOG = log.getLogger(__name__)

STRATEGY_NAME = "cotenancy_predictive"

#: Nova migration statuses of a move not yet ended (live: queued, preparing, running,
#: post-migrating; cold and resize: pre-migrating, migrating, post-migrating)
MIGRATION_UNDER_WAY = ("queued", "preparing", "running", "pre-migrating", "migrating", "post-migrating")


class CotenancyPredictiveStrategy(base.BaseStrategy):
    """Cotenancy predictive

    Predicts which co-located VMs will conflict and moves or resizes the fewest VMs needed to
    keep them apart, before the conflict happens.
    """

    DATASOURCE_METRICS: ClassVar[list[str]] = list(translate.WATCHER_METRICS)

    #: cotenancy strategies kept between audits of one decision engine, so predictors keep the
    #: history they learned; keyed by (strategy name, cotenancy config file)
    _planners: ClassVar[dict[tuple[str, str, bool], Strategy]] = {}
    #: the anomaly detector beside each of those strategies, so it remembers where each VM ran
    #: the audit before (a VM that just moved is not judged against its old host's forecast)
    _detectors: ClassVar[dict[tuple[str, str, bool], AnomalyDetector | None]] = {}
    _planners_lock: ClassVar[threading.Lock] = threading.Lock()
    #: cotenancy's history store per ``[store] connection``, open for the decision engine's
    #: lifetime: opening one reads every migration script, and Watcher loads a new strategy
    #: object for every audit
    _stores: ClassVar[dict[str, HistoryStore]] = {}
    _stores_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, config: Any, osc: Any = None) -> None:
        super().__init__(config, osc)
        self.last_plan: ActionPlan | None = None
        self.last_translation: translate.Translation | None = None
        self.last_state: ClusterState | None = None
        self.last_anomalies: list[Event] = []

    @classmethod
    def get_name(cls) -> str:
        return STRATEGY_NAME

    @classmethod
    def get_display_name(cls) -> str:
        return "Cotenancy predictive"

    @classmethod
    def get_translatable_display_name(cls) -> str:
        return "Cotenancy predictive"

    @classmethod
    def get_goal_name(cls) -> str:
        return cotenancy_goal.GOAL_NAME

    @classmethod
    def get_config_opts(cls) -> list[cfg.Opt]:
        return [
            *super().get_config_opts(),
            cfg.StrOpt(
                "cotenancy_config_file",
                default=None,
                help="cotenancy.conf read for the predictors' and planner's options; "
                "unset means cotenancy's defaults.",
            ),
        ]

    @classmethod
    def get_schema(cls) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {
                "cotenancy_strategy": {
                    "type": "string",
                    "minLength": 1,
                    "default": "predictive",
                    "description": "cotenancy strategy that plans (entry point in cotenancy.strategies).",
                },
                "period": {
                    "type": "integer",
                    "minimum": 300,
                    "default": 3600,
                    "description": "Seconds of history read from the datasource; more when the "
                    "cotenancy forecaster looks back further ([predict] window_steps intervals).",
                },
                "granularity": {
                    "type": "integer",
                    "minimum": 1,
                    "default": 300,
                    "description": "Seconds between samples of that history.",
                },
                "mhz_per_vcpu": {
                    "type": "number",
                    "exclusiveMinimum": 0,
                    "default": 2000,
                    "description": "CPU speed of one vCPU, to compare hosts of different speeds.",
                },
                "host_mhz_per_vcpu": {
                    "type": "object",
                    "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
                    "default": {},
                    "description": "Per hypervisor hostname overrides of mhz_per_vcpu.",
                },
                "migration_type": {
                    "type": "string",
                    "enum": ["live", "cold"],
                    "default": "live",
                    "description": "How Watcher's applier migrates instances.",
                },
                "allow_resize": {
                    "type": "boolean",
                    "default": True,
                    "description": "Emit resize actions for VMs whose forecast does not fit their flavor.",
                },
                "allow_maintenance": {
                    "type": "boolean",
                    "default": True,
                    "description": "Emit change_nova_service_state actions.",
                },
                "flavors": {
                    "type": "array",
                    "default": [],
                    "description": "Flavors a resize may pick; empty means ask Nova.",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "vcpus": {"type": "integer", "minimum": 1},
                            "ram": {"type": "integer", "minimum": 1},
                            "disk": {"type": "integer", "minimum": 0},
                        },
                        "required": ["name", "vcpus", "ram"],
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        }

    def param(self, name: str) -> Any:
        """An input parameter, or its schema default (Watcher fills defaults in, tests may not)."""
        value = self.input_parameters.get(name) if self.input_parameters else None
        if value is None:
            value = self.get_schema()["properties"][name]["default"]
        return value

    def pre_execute(self) -> None:
        self._pre_execute()

    def now(self) -> float:
        """Datasources that replay history (the simulated cloud's) tell their own time."""
        clock = getattr(self.datasource_backend, "now", None)
        return float(clock()) if callable(clock) else time.time()

    def history_steps(self, planner: Strategy) -> int:
        """Intervals of history to read: the audit's ``period``, or more when the planner's
        forecaster looks back further (``[predict] window_steps`` of its configuration): it was
        trained on day-long windows and serves the API from them, so it must plan from them too."""
        steps = max(1, int(self.param("period")) // int(self.param("granularity")))
        return max(steps, telemetry_window_steps(planner.conf))

    def read_series(self, inventory_vm_ids: list[str], now: float, steps: int) -> dict[str, dict[str, Any]]:
        """``statistic_series`` of every audited instance over ``steps`` intervals, one metric at a
        time."""
        granularity = int(self.param("granularity"))
        end = dt.datetime.fromtimestamp(now, tz=dt.UTC)
        start = end - dt.timedelta(seconds=steps * granularity)
        series: dict[str, dict[str, Any]] = {}
        model = self.compute_model
        for vm_id in inventory_vm_ids:
            instance = model.get_instance_by_uuid(vm_id)
            per_metric: dict[str, Any] = {}
            for meter in self.DATASOURCE_METRICS:
                per_metric[meter] = self.datasource_backend.statistic_series(
                    resource=instance,
                    resource_type="instance",
                    meter_name=meter,
                    start_time=start,
                    end_time=end,
                    granularity=granularity,
                )
            series[vm_id] = per_metric
        return series

    def build_state(self, planner: Strategy, store: HistoryStore | None = None) -> ClusterState:
        """Watcher's compute model and datasource as the state ``planner`` plans on, with what
        other programs asked through cotenancy's open API when ``store`` is the one it serves."""
        scale = translate.UnitScale(
            mhz_per_vcpu=float(self.param("mhz_per_vcpu")),
            host_mhz_per_vcpu=dict(self.param("host_mhz_per_vcpu")),
        )
        inventory = translate.inventory_from_compute_model(self.compute_model, scale)
        translate.apply_migrations_in_flight(inventory, self.migrations_in_flight())
        now = self.now()
        granularity = int(self.param("granularity"))
        steps = self.history_steps(planner)
        series = self.read_series(sorted(inventory.vms), now, steps)
        telemetry = translate.telemetry_from_series(inventory, series, now, granularity, steps)
        if store is not None:
            inventory = self.operator_requests(planner, store, inventory)
        return translate.cluster_state(inventory, telemetry, now)

    def migrations_in_flight(self) -> list[Any]:
        """Nova's records of moves under way (``GET /os-migrations``, one call per unfinished
        status): Watcher's compute model shows a live-migrating server as active on its source, and
        only these say it is moving and where to. Without them (Nova unreachable, no rights) the
        audit plans on as before, a move in flight then counted on its source only."""
        from watcher.common import nova_helper

        try:
            compute = nova_helper.NovaHelper().connection.compute
            return [m for status in MIGRATION_UNDER_WAY for m in compute.migrations(status=status)]
        except Exception as exc:  # any Nova or auth failure: plan without them
            LOG.warning(
                "cotenancy_predictive: cannot list Nova's migrations under way (%s); a move in flight "
                "counts on its source only",
                escape_controls(str(exc)),
            )
            return []

    def history_store(self, planner: Strategy) -> contextlib.AbstractContextManager[HistoryStore | None]:
        """Cotenancy's history store when its ``[store] connection`` is set: the one its open API
        serves, where other programs' requests are read and anomalies kept. A decision engine keeps
        no cotenancy history of its own, so without it there is none (``None``)."""
        if not planner.conf.store.connection:
            return contextlib.nullcontext()
        return contextlib.nullcontext(self.shared_store(planner.conf))

    @classmethod
    def shared_store(cls, conf: cfg.ConfigOpts) -> HistoryStore:
        """The store this process keeps open for ``conf``'s ``[store] connection``, opened (and
        migrated) by the first audit; later audits check only that the database still has its
        schema revision, and open it again when it does not or cannot be read (a database
        replaced or migrated by another program, a server restarted): that open raises, and
        fails the audit, when the store is out of reach."""
        url = conf.store.connection
        with cls._stores_lock:
            store = cls._stores.pop(url, None)
            if store is not None:
                try:
                    current = store.schema_is_current()
                except Exception as exc:
                    LOG.warning("cotenancy_predictive: history store unreadable (%s), opening it again", exc)
                    current = False
                if not current:
                    store.close()
                    store = None
            if store is None:
                store = HistoryStore.from_conf(conf)
            cls._stores[url] = store
            return store

    def operator_requests(self, planner: Strategy, store: HistoryStore, inventory: Inventory) -> Inventory:
        """The rules, drains, critical marks and hints other programs set through the open API,
        honoured by an audit as the control loop honours them."""
        detector = self._detector()
        forecasters = (getattr(planner, "forecaster", None), detector.forecaster if detector else None)
        return apply_operator_requests(planner.conf, store, inventory, forecasters, time.time())

    def _detector(self) -> AnomalyDetector | None:
        with self._planners_lock:
            return self._detectors.get(self._planner_key())

    def _planner_key(self) -> tuple[str, str, bool]:
        config_file = getattr(self.config, "cotenancy_config_file", None) or ""
        return str(self.param("cotenancy_strategy")), config_file, bool(self.param("allow_resize"))

    def cotenancy_planner(self) -> Strategy:
        key = self._planner_key()
        name, config_file, allow_resize = key
        with self._planners_lock:
            planner = self._planners.get(key)
            if planner is None:
                conf = make_conf([], config_files=[config_file] if config_file else [])
                self._fit_planner_to_watcher(conf, allow_resize)
                planner = loading.load_plugin(loading.STRATEGIES, name, conf)
                self._planners[key] = planner
                self._detectors[key] = configured_detector(conf, planner)
            return planner

    def detect_anomalies(self, state: ClusterState, store: HistoryStore | None = None) -> list[Event]:
        """Usage far above its forecast, as the control loop flags it: each anomaly is logged at
        WARNING and kept in ``store`` (cotenancy's history store, when configured), where the
        open API shows it (``GET /v1/events?kind=anomaly``). Detection serves the operator, not
        the plan: a failure is logged at ERROR and the audit goes on."""
        detector = self._detector()
        if detector is None:
            return []
        try:
            found = detector.detect(state)
        except Exception as exc:
            self._log_failure("anomaly detection failed, the audit goes on without it", exc)
            return []
        for event in found:
            # the message names workloads by tenant and app type (server metadata): one line each
            LOG.warning(
                "cotenancy_predictive: anomaly on %s: %s",
                escape_controls(affected(event, vm_word="instance", host_word="node")),
                escape_controls(event.message),
            )
        if found and store is not None:
            try:
                store.add_events(found)
            except Exception as exc:
                self._log_failure("the anomalies above were not stored in the history store", exc)
        return found

    @staticmethod
    def _fit_planner_to_watcher(conf: cfg.ConfigOpts, allow_resize: bool) -> None:
        """Watcher's applier cannot set hypervisor shares, so the planner must not count on them;
        and it resizes only when the audit allows it."""
        for option, value in (("manage_allocations", False), ("allow_resize", allow_resize)):
            try:
                conf.set_override(option, value, group="planner")
            except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
                LOG.debug("cotenancy has no [planner] %s option; leaving the planner as configured", option)

    def flavors(self) -> list[translate.Flavor]:
        """The audit's flavors, else Nova's. Without a catalogue the audit still runs: its resizes
        are dropped (and logged) while its migrations stand."""
        given = self.param("flavors")
        if given:
            return [translate.Flavor.from_dict(f) for f in given]
        from watcher.common import nova_helper

        try:
            listed = nova_helper.NovaHelper().get_flavor_list()
        except Exception as exc:  # any Nova or auth failure: keep the rest of the plan
            LOG.warning(
                "cotenancy_predictive: cannot list Nova flavors (%s); resizes are dropped",
                escape_controls(str(exc)),
            )
            return []
        return [translate.Flavor(name=f.flavor_name, vcpus=f.vcpus, ram=f.ram, disk=f.disk) for f in listed]

    @staticmethod
    def _log_failure(what: str, exc: Exception) -> None:
        """An ERROR, with a traceback only for errors cotenancy did not raise on purpose (bugs).
        The error may quote the cloud's names and messages: its control characters are escaped."""
        LOG.error(
            "cotenancy_predictive: %s: %s: %s",
            what,
            type(exc).__name__,
            escape_controls(str(exc)),
            exc_info=not isinstance(exc, CotenancyError),
        )

    def do_execute(self, audit: Any = None) -> None:
        planner = self.cotenancy_planner()
        with self.history_store(planner) as store:
            state = self.build_state(planner, store)
            self.last_anomalies = self.detect_anomalies(state, store)
        plan = planner.plan(state)
        wants_resize = any(a.kind.value == "resize" for a in plan.actions)
        flavors = self.flavors() if wants_resize and self.param("allow_resize") else []
        translation = translate.actions_from_plan(
            plan,
            state.inventory,
            flavors=flavors,
            migration_type=str(self.param("migration_type")),
            allow_resize=bool(self.param("allow_resize")),
            allow_maintenance=bool(self.param("allow_maintenance")),
        )
        for action in translation.actions:
            self.solution.add_action(
                action_type=action.action_type,
                resource_id=action.resource_id,
                input_parameters=dict(action.input_parameters),
            )
        for reason in translation.dropped:
            LOG.info("cotenancy step without Watcher action: %s", reason)
        predicted, avoided = self.conflict_counts(state, plan, translation, planner)
        self.solution.set_efficacy_indicators(
            conflicts_predicted=predicted,
            conflicts_avoided=avoided,
            instance_migrations_count=translation.migrations,
            instances_resized_count=translation.resizes,
        )
        self.last_plan = plan
        self.last_state = state
        self.last_translation = translation

    @staticmethod
    def conflict_counts(
        state: ClusterState, plan: ActionPlan, translation: translate.Translation, planner: Any = None
    ) -> tuple[int, int]:
        """Hosts in predicted conflict before the plan, and how many of them the migrations Watcher
        will carry out clear. The planner's own counts win when its plan statistics carry them.

        Before the plan a host is in conflict when its VMs' planned-for demand (95th percentile of
        the window) exceeds its capacity, or, when the cotenancy strategy has a pair-risk model, when
        two of its VMs reach the planner's risk threshold together there. A host the plan does not
        touch keeps its verdict; a host it touches is judged again on its new set of VMs: the
        capacity check, and the risk of every pair the plan forms there.
        """
        stats = plan.stats
        if "conflicts_predicted" in stats and "conflicts_avoided" in stats:
            predicted = max(0, int(float(stats["conflicts_predicted"])))
            return predicted, min(predicted, max(0, int(float(stats["conflicts_avoided"]))))
        inventory = state.inventory
        demand = translate.peak_demand(inventory, state.telemetry)
        now, then = inventory.placement(), translate.placement_after(inventory, translation)
        moved = {vm_id for vm_id, host in then.items() if host != now.get(vm_id)}
        touched = {now[v] for v in moved} | {then[v] for v in moved}
        before = translate.host_conflicts(inventory, demand, now)
        after = translate.host_conflicts(inventory, demand, then)
        pair_risk = getattr(planner, "pair_risk", None)
        score = pair_risk(state) if callable(pair_risk) else None
        if score is not None:
            threshold = float(getattr(getattr(planner, "settings", None), "risk_threshold", 0.5))
            before |= translate.risky_hosts(inventory, now, score, threshold)
            if moved:
                after |= translate.risky_hosts(inventory, then, score, threshold, involving=moved)
        after |= before - touched
        return len(before), len(before - after)

    def post_execute(self) -> None:
        LOG.info(
            "cotenancy_predictive: %d actions (%d migrations, %d resizes)",
            len(self.solution.actions),
            self.last_translation.migrations if self.last_translation else 0,
            self.last_translation.resizes if self.last_translation else 0,
        )
