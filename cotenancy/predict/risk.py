"""Pairwise conflict risk: P(a conflict involving both VMs within the horizon), XGBoost + isotonic
calibration, with a labelled heuristic when no trained model exists yet.

Features: :class:`cotenancy.predict.features.PairContext` (host load and its trend with the pair
on the host, the pair's share and correlation, ready time, past conflicts of the VMs, the pair and
their workload classes, each VM's estimated sensitivity to its neighbours' activity and the
slowdown it predicts, and placement churn: recent migrations, RAM, the host's rank). A candidate
host gives the load the pair *would* meet there, so the planner can judge a move before making it.

Calibration: the booster's raw probabilities are mapped through an isotonic regression fitted on
a time-ordered held-out slice of the training data, so a 0.3 means about 30 % of such pairs got into
a conflict.

Cold start (no model file): ``heuristic`` = logistic of the pair-on-host predicted CPU load against
capacity (with ready time and past conflicts as small boosts). It ranks like an overload rule but is
*not* calibrated; :attr:`XGBoostRiskModel.trained` says which one is serving.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xgboost as xgb
from oslo_config import cfg
from scipy.optimize import isotonic_regression

from cotenancy.exceptions import SchemaMismatch
from cotenancy.model import ClusterState, Event, EventKind
from cotenancy.predict import features as feats
from cotenancy.predict.base import InterferenceEstimate, RiskModel
from cotenancy.predict.history import RECENT_STEPS, History, PairDataset, build_pair_dataset, memory_arrays
from cotenancy.predict.metrics import average_precision, recall_at_precision
from cotenancy.predict.pressure import InterferenceMemory
from cotenancy.predict.registry import (
    ModelBundle,
    ReloadingModel,
    load_bundle,
    model_dir,
    save_bundle,
    trained_when,
)

LOG = logging.getLogger(__name__)

KIND = "risk"


@dataclass(slots=True)
class TrainedRisk:
    booster: xgb.Booster
    calib_x: np.ndarray
    calib_y: np.ndarray
    metadata: dict = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> np.ndarray:
        raw = np.asarray(self.booster.inplace_predict(x, missing=np.nan), dtype=np.float64)
        if len(self.calib_x) < 2:
            return raw
        return np.interp(raw, self.calib_x, self.calib_y)

    def to_bundle(self) -> ModelBundle:
        meta = dict(self.metadata, feature_names=list(feats.PAIR_FEATURES))
        return ModelBundle(
            KIND,
            feats.PAIR_SCHEMA,
            meta,
            {"risk": self.booster},
            {"calib_x": self.calib_x, "calib_y": self.calib_y},
        )

    @classmethod
    def from_bundle(cls, bundle: ModelBundle) -> TrainedRisk:
        """Check every part scoring uses here, so a malformed file raises one
        :class:`~cotenancy.exceptions.ModelFileError` naming it, not an untyped error mid-scoring."""
        bundle.require(boosters=("risk",), arrays=("calib_x", "calib_y"))
        booster = bundle.boosters["risk"]
        if booster.num_features() != len(feats.PAIR_FEATURES):
            raise bundle.problem(
                f"booster 'risk' takes {booster.num_features()} features, "
                f"the schema has {len(feats.PAIR_FEATURES)}"
            )
        calib_x = bundle.array("calib_x", (None,))
        calib_y = bundle.array("calib_y", calib_x.shape)
        if np.any(np.diff(calib_x) < 0):
            raise bundle.problem("array 'calib_x' must be sorted (it maps scores to probabilities)")
        return cls(booster, calib_x, calib_y, bundle.metadata)


TOO_LITTLE_HISTORY = "too little history (or no conflict at all) to train a risk model"

#: pairs scored per batch by :meth:`XGBoostRiskModel.score_pairs`
SCORE_CHUNK = 65_536


def heuristic_probability(x: np.ndarray) -> np.ndarray:
    """The cold-start score (see the module docstring); uncalibrated, monotone in host load."""
    col = {name: i for i, name in enumerate(feats.PAIR_FEATURES)}
    load = np.fmax(x[:, col["host_demand_lr"]], x[:, col["host_demand_last"]]).astype(np.float64)
    z = (
        12.0 * (np.nan_to_num(load, nan=0.0) - 0.95)
        + 3.0 * np.nan_to_num(x[:, col["pair_ready_max"]], nan=0.0)
        + 0.5 * np.minimum(x[:, col["pair_conflicts"]], 3.0)
    )
    return 1.0 / (1.0 + np.exp(-z))


def _isotonic_table(raw: np.ndarray, y: np.ndarray, bins: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic map raw -> frequency, compressed to at most ``bins`` knots for fast ``np.interp``."""
    order = np.argsort(raw)
    fitted = isotonic_regression(y[order].astype(np.float64)).x
    xs = raw[order]
    take = np.unique(np.linspace(0, len(xs) - 1, min(bins, len(xs))).astype(int))
    knots_x, idx = np.unique(xs[take], return_index=True)
    return knots_x, fitted[take][idx]


def time_split(step: np.ndarray, calibration_fraction: float) -> tuple[np.ndarray, ...]:
    """Row masks ``(fit, calibrate, hold out)`` by origin step: the last ``calibration_fraction``
    of the steps is held out from fitting, its first half calibrates, its second half validates.
    Fewer than four origin steps cannot be split so: :class:`ValueError`."""
    steps = np.unique(step)
    if len(steps) < 4:
        raise ValueError(TOO_LITTLE_HISTORY)
    cut = steps[int(len(steps) * (1 - calibration_fraction))]
    mid = steps[int(len(steps) * (1 - calibration_fraction / 2))]
    return step < cut, (step >= cut) & (step < mid), step >= mid


#: the booster settings :class:`RiskTrainingConfig` does not hold
BOOSTER_PARAMS = {
    "objective": "binary:logistic",
    "eval_metric": "aucpr",
    "tree_method": "hist",
    "eta": 0.15,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5,
    "max_bin": 128,
}


@dataclass(frozen=True, slots=True)
class RiskTrainingConfig:
    """Knobs of one risk training run, besides :data:`BOOSTER_PARAMS` (the defaults were checked on
    the training days only; docs/predictors.md)."""

    rounds: int = 100
    max_depth: int = 5
    nthread: int = 2
    #: the last share of origin steps held out: its first half fits the calibration, its second
    #: half gives the stored validation metrics
    calibration_fraction: float = 0.25
    #: rounds added to a previous model by an incremental run
    incremental_rounds: int = 50
    seed: int = 0


def train_risk(
    data: PairDataset,
    config: RiskTrainingConfig | None = None,
    previous: TrainedRisk | None = None,
) -> TrainedRisk:
    """Fit on the earlier origins; the last ``calibration_fraction`` of origin steps is held out,
    its first half fits the isotonic calibration and its second half gives the stored metrics.
    ``previous`` continues boosting its trees on this (newer) data instead of starting afresh."""
    config = config or RiskTrainingConfig()
    if data.y.sum() == 0:
        raise ValueError(TOO_LITTLE_HISTORY)
    before = previous.metadata.get("telemetry") if previous is not None else None
    if before and data.telemetry and before != data.telemetry:
        raise ValueError(
            f"the model to continue was trained on {_describe(before)} and the new rows are "
            f"{_describe(data.telemetry)}: train afresh (without --incremental)"
        )
    fit, calib, hold = time_split(data.step, config.calibration_fraction)
    params = {**BOOSTER_PARAMS, "max_depth": config.max_depth, "nthread": config.nthread, "seed": config.seed}
    dtrain = xgb.DMatrix(
        data.x[fit], label=data.y[fit].astype(float), missing=np.nan, feature_names=list(feats.PAIR_FEATURES)
    )
    booster = xgb.train(
        params,
        dtrain,
        num_boost_round=config.incremental_rounds if previous else config.rounds,
        xgb_model=previous.booster if previous else None,
    )
    booster.set_param({"nthread": config.nthread})
    raw = np.asarray(booster.inplace_predict(data.x[calib | hold], missing=np.nan), dtype=np.float64)
    raw_all = np.zeros(len(data.y))
    raw_all[calib | hold] = raw
    if calib.sum() >= 50 and data.y[calib].any():
        cx, cy = _isotonic_table(raw_all[calib], data.y[calib])
    else:
        cx, cy = np.zeros(0), np.zeros(0)
    model = TrainedRisk(booster, cx, cy)
    metrics: dict[str, float] = {"rows_train": float(fit.sum()), "rows_holdout": float(hold.sum())}
    if hold.any() and data.y[hold].any():
        p = model.probability(data.x[hold])
        metrics["pr_auc"] = average_precision(data.y[hold], p)
        metrics["recall_at_p80"] = recall_at_precision(data.y[hold], p, 0.8)[0]
        metrics["brier"] = float(np.mean((p - data.y[hold]) ** 2))
        metrics["positive_rate"] = float(data.y[hold].mean())
    model.metadata = {
        "validation": metrics,
        "rounds": int(booster.num_boosted_rounds()),
        "incremental": previous is not None,
        "trained_at": time.time(),
        "telemetry": dict(data.telemetry),
    }
    return model


def _describe(telemetry: dict) -> str:
    """``step_seconds=300, window_steps=12, ...``: a model's telemetry shape, for an error."""
    return ", ".join(f"{key}={float(value):g}" for key, value in sorted(telemetry.items()))


class XGBoostRiskModel(RiskModel):
    """The default risk model plugin (``cotenancy.predictors.risk: xgboost``)."""

    name = "xgboost"
    group = "risk_xgboost"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        training = RiskTrainingConfig()
        return [
            cfg.StrOpt(
                "model_file",
                default="risk.json",
                help="File name of the trained risk model inside [predict] model_dir.",
            ),
            cfg.IntOpt(
                "window_steps",
                default=12,
                min=2,
                help="Telemetry intervals the pair features look back over.",
            ),
            cfg.IntOpt("memory_hours", default=24, min=1, help="Hours of past conflicts the features count."),
            cfg.IntOpt(
                "rounds",
                default=training.rounds,
                min=1,
                help="Boosting rounds of a fresh training (scoring cost grows with it).",
            ),
            cfg.IntOpt(
                "incremental_rounds",
                default=training.incremental_rounds,
                min=1,
                help="Rounds added by an incremental retraining.",
            ),
            cfg.IntOpt("nthread", default=training.nthread, min=1, help="Threads for training and scoring."),
            cfg.FloatOpt(
                "sensitivity_decay",
                default=0.995,
                min=0.0,
                max=1.0,
                help="Weight each telemetry round keeps of the earlier evidence of a VM's cache "
                "sensitivity (0.995 at 5-minute rounds: half of it after about 11 hours).",
            ),
            cfg.FloatOpt(
                "pressure_decay",
                default=0.99,
                min=0.0,
                max=1.0,
                help="Weight each round keeps of the earlier evidence of VMs' cache pressure "
                "(0.99 at 5-minute rounds: half of it after about 6 hours).",
            ),
            cfg.FloatOpt(
                "pressure_prior",
                default=1.0,
                min=0.0,
                help="How strongly a VM's pressure estimate is pulled to the typical 1 while "
                "evidence is thin, in units of summed squared neighbour activity.",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts | None = None, model_path: str | Path | None = None) -> None:
        super().__init__(conf)
        opts = self.options
        if model_path is None:
            model_path = model_dir(conf) / (opts.model_file if opts is not None else "risk.json")
        self.model_path = Path(model_path)
        self.window_steps = opts.window_steps if opts is not None else 12
        self.memory_seconds = 3600.0 * (opts.memory_hours if opts is not None else 24)
        self.nthread = opts.nthread if opts is not None else 2
        horizon = conf.predict.risk_horizon if conf is not None else 1800
        self.horizon_seconds = float(horizon)
        self._model = ReloadingModel(self.model_path, self._load)
        self._pinned: TrainedRisk | None = None
        #: the telemetry shape last served: a file replaced by a model of another shape cannot serve
        #: it, so it is refused as a damaged one is and the model loaded before keeps serving
        self._serving_shape: dict[str, float] | None = None
        self._events: deque = deque()
        self._seen: set[tuple] = set()
        #: the state the cached context was built for, held (not its ``id()``, which a later state
        #: may be given once this one is freed), with its clock and the context
        self._cache: tuple[ClusterState, float, feats.PairContext] | None = None
        fading = (
            {
                "sensitivity_decay": opts.sensitivity_decay,
                "pressure_decay": opts.pressure_decay,
                "prior": opts.pressure_prior,
            }
            if opts is not None
            else {}
        )
        self._interference = InterferenceMemory(feats.INTERFERENCE_HALF_LOAD, **fading)
        self._evidence_until = -np.inf

    def training_config(self) -> RiskTrainingConfig:
        """The training settings this plugin's options choose (the defaults without options)."""
        opts = self.options
        if opts is None:
            return RiskTrainingConfig()
        return RiskTrainingConfig(
            rounds=opts.rounds, nthread=opts.nthread, incremental_rounds=opts.incremental_rounds
        )

    def _load(self, path: Path) -> TrainedRisk:
        model = TrainedRisk.from_bundle(load_bundle(path, KIND, feats.PAIR_SCHEMA, self.nthread))
        if self._serving_shape is not None:
            self._check_telemetry(model, self._serving_shape, f"{path}: ")
        LOG.info("loaded risk model from %s (trained %s)", path, trained_when(model.metadata))
        return model

    @property
    def model_problem(self) -> str | None:
        """Why the model file on disk is not being served (the last good model, if any, still is),
        for the API or loop to report; ``None`` when it is served or absent."""
        return self._model.problem

    def pin(self, model: TrainedRisk | None) -> None:
        """Serve this in-memory model instead of the file (evaluation, tests); ``None`` unpins."""
        self._pinned = model
        self._cache = None

    @property
    def model(self) -> TrainedRisk | None:
        return self._pinned if self._pinned is not None else self._model.get()

    @property
    def trained(self) -> bool:
        return self.model is not None

    def save(self, model: TrainedRisk) -> Path:
        path = save_bundle(model.to_bundle(), self.model_path)
        self._model.invalidate()
        return path

    def telemetry_shape(self, step_seconds: float) -> dict[str, float]:
        """This model's window, horizon and memory of past conflicts in steps of ``step_seconds``:
        what its features count, the same for training rows and serving."""
        return {
            "step_seconds": float(step_seconds),
            "window_steps": float(self.window_steps),
            "horizon_steps": float(max(1, int(round(self.horizon_seconds / step_seconds)))),
            "lookback_steps": float(int(round(self.memory_seconds / step_seconds))),
        }

    def training_rows(self, history: History, progress=None) -> PairDataset:
        """Labelled pair rows for this model's settings, counted in steps of the history's
        telemetry as serving counts them (:meth:`telemetry_shape`)."""
        shape = self.telemetry_shape(history.step_seconds)
        return build_pair_dataset(
            history,
            horizon_steps=int(shape["horizon_steps"]),
            window_steps=int(shape["window_steps"]),
            lookback_steps=int(shape["lookback_steps"]),
            progress=progress,
        )

    def _check_telemetry(self, model: TrainedRisk, serving: dict[str, float], where: str = "") -> None:
        """A model's features count steps: on telemetry of another step, or with another window,
        memory or horizon than it was trained with, they would mean other spans of time."""
        trained = model.metadata.get("telemetry")
        if not trained:
            return  # a model file from before the shape was recorded
        differ = {k: v for k, v in serving.items() if k in trained and not math.isclose(trained[k], v)}
        if differ:
            raise SchemaMismatch(
                f"{where}the risk model was trained on {_describe({k: trained[k] for k in differ})} and is "
                f"asked to serve {_describe(differ)}: retrain it on this telemetry with these settings"
            )

    # ------------------------------------------------------------------------- serving
    def _remember(self, state: ClusterState) -> None:
        """Degradation and migration events seen in past rounds feed the past-conflict and
        placement-churn features."""
        for event in state.events:
            if event.kind not in (EventKind.DEGRADATION, EventKind.MIGRATION):
                continue
            key = (event.timestamp, event.host_id, event.vm_ids)
            if key not in self._seen:
                self._seen.add(key)
                self._events.append(event)
        while self._events and self._events[0].timestamp < state.now - self.memory_seconds:
            old = self._events.popleft()
            self._seen.discard((old.timestamp, old.host_id, old.vm_ids))

    def _events_before(self, now: float) -> list[Event]:
        """The remembered events of the ``memory_hours`` up to ``now``: a server asked about an
        earlier time (the API's ``at``) must not count what it saw of later ones."""
        oldest = now - self.memory_seconds
        return [e for e in self._events if oldest <= e.timestamp <= now]

    def context(self, state: ClusterState) -> feats.PairContext:
        """Pair features' inputs for this state (cached: the planner scores many batches per round)."""
        if self._cache is not None and self._cache[0] is state and self._cache[1] == state.now:
            return self._cache[2]
        shape = self._serving_shape = self.telemetry_shape(state.telemetry.step_seconds)
        model = self.model
        if model is not None:
            self._check_telemetry(model, shape)
        self._remember(state)
        tele = state.telemetry
        inv = state.inventory
        host_ids = sorted(inv.hosts)
        host_index = {h: i for i, h in enumerate(host_ids)}
        vm_index = {v: i for i, v in enumerate(tele.vm_ids)}
        vms = [inv.vms.get(v) for v in tele.vm_ids]
        apps = sorted({vm.workload.app_type for vm in vms if vm is not None})
        app_code = {a: i for i, a in enumerate(apps)}
        w = self.window_steps

        def window(metric: str) -> np.ndarray | None:
            values = tele.values.get(metric)
            return None if values is None else values[:, -w:]

        n = len(tele.vm_ids)
        cpu = window("cpu")
        per_vm = np.zeros(n)
        recent = np.zeros(n)
        present = np.zeros(n)
        migrations = np.zeros(n)
        lookback_steps = int(shape["lookback_steps"])
        since = np.full(n, float(lookback_steps))
        last_step = float(tele.timestamps[-1]) if len(tele.timestamps) else state.now
        recent_since = last_step - RECENT_STEPS * tele.step_seconds
        pairs: dict[int, float] = {}
        for event in self._events_before(state.now):
            if event.kind is EventKind.MIGRATION:
                moved = [vm_index[v] for v in event.vm_ids[:1] if v in vm_index]
                if event.timestamp > recent_since:
                    migrations[moved] += 1
                # a move completed during the step before the last sample shows in that sample:
                # 0 steps since, as the training placement replay counts it
                age = np.floor(max(last_step - event.timestamp, 0.0) / tele.step_seconds)
                since[moved] = np.minimum(since[moved], min(age, lookback_steps))
                continue
            victims = [vm_index[v] for v in event.vm_ids if v in vm_index]
            per_vm[victims] += 1
            if event.timestamp > recent_since:
                recent[victims] += 1
            names = event.details.get("neighbours", "").split(",")
            neighbours = [vm_index[v] for v in names if v in vm_index]
            present[neighbours] += 1
            for y in neighbours:
                for x in victims:
                    if x != y:
                        key = min(x, y) * n + max(x, y)
                        pairs[key] = pairs.get(key, 0.0) + 1.0
        codes = np.array([app_code[vm.workload.app_type] if vm else 0 for vm in vms], dtype=np.int64)
        ctx = feats.PairContext(
            cpu=cpu if cpu is not None else np.zeros((n, 1)),
            demand=window("cpu_demand"),
            ready=window("cpu_ready"),
            memory=window("memory"),
            vm_cpu_size=np.array([vm.size.cpu if vm else np.nan for vm in vms]),
            vm_memory_size=np.array([vm.size.memory if vm else np.nan for vm in vms], dtype=float),
            host_of=np.array([host_index.get(vm.host_id, -1) if vm and vm.host_id else -1 for vm in vms]),
            host_cpu=np.array([inv.hosts[h].capacity.cpu for h in host_ids]),
            host_memory=np.array([inv.hosts[h].capacity.memory for h in host_ids]),
            priority=np.array([vm.workload.priority if vm else 5 for vm in vms], dtype=float),
            app_code=codes,
            origin=last_step,  # the moment of the last sample, as in training rows
            horizon_steps=int(shape["horizon_steps"]),
            vm_migrations=migrations,
            vm_since_migration=since,
            **memory_arrays(per_vm, pairs, codes, recent, present),
        )
        self._cache = (state, state.now, ctx)
        return ctx

    def interference(self, state: ClusterState) -> InterferenceEstimate:
        """Each VM's sensitivity and cache pressure, learnt from slowdowns over this and earlier
        rounds (:class:`~cotenancy.predict.pressure.InterferenceMemory`), and the activity the
        pair features extrapolate."""
        ctx = self.context(state)
        tele = state.telemetry
        vm_ids = list(tele.vm_ids)
        width = ctx.activity_window.shape[1]
        stamps = np.asarray(tele.timestamps[-width:], dtype=float) if width else np.zeros(0)
        new = stamps > self._evidence_until
        if new.any():
            self._evidence_until = float(stamps[-1])
            self._interference.update(
                vm_ids,
                ctx.activity_window[:, new],
                ctx.ready_window[:, new],
                ctx.host_of,
                ctx.sensitivity,
            )
        return InterferenceEstimate(
            vm_ids,
            self._interference.sensitivity(vm_ids, ctx.sensitivity),
            ctx.act_ahead.copy(),
            feats.INTERFERENCE_HALF_LOAD,
            self._interference.pressure(vm_ids),
        )

    def score_features(self, x: np.ndarray) -> np.ndarray:
        model = self.model
        return model.probability(x) if model is not None else heuristic_probability(x)

    def score_pairs(
        self, state: ClusterState, pairs: np.ndarray, hosts: np.ndarray | None = None
    ) -> np.ndarray:
        pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        if len(pairs) == 0:
            return np.zeros(0)
        ctx = self.context(state)
        hosts = None if hosts is None else np.asarray(hosts)
        out = np.zeros(len(pairs))
        # in chunks: a million pairs at once would allocate ~0.7 GB of feature and gather arrays
        for start in range(0, len(pairs), SCORE_CHUNK):
            part = slice(start, start + SCORE_CHUNK)
            x, placed = ctx.features(pairs[part], None if hosts is None else hosts[part])
            out[part] = np.where(placed, self.score_features(x), 0.0)
        return out

    def explain(
        self, state: ClusterState, pair: tuple[int, int], top: int = 5, host: int | None = None
    ) -> list[tuple[str, float]]:
        """Top feature contributions (XGBoost SHAP values, log-odds) of one pair's score; for the
        heuristic, the terms of its formula."""
        hosts = None if host is None else np.array([host])
        x, _ = self.context(state).features(np.array([pair]), hosts)
        model = self.model
        if model is None:
            col = {name: i for i, name in enumerate(feats.PAIR_FEATURES)}
            load = float(np.nan_to_num(max(x[0, col["host_demand_lr"]], x[0, col["host_demand_last"]])))
            terms = [
                ("host_demand", 12.0 * (load - 0.95)),
                ("pair_ready_max", 3.0 * float(np.nan_to_num(x[0, col["pair_ready_max"]]))),
                ("pair_conflicts", 0.5 * min(float(x[0, col["pair_conflicts"]]), 3.0)),
            ]
            return sorted(terms, key=lambda t: -abs(t[1]))[:top]
        contribs = model.booster.predict(
            xgb.DMatrix(x, missing=np.nan, feature_names=list(feats.PAIR_FEATURES)), pred_contribs=True
        )[0]
        named = list(zip(feats.PAIR_FEATURES, (float(c) for c in contribs[:-1]), strict=True))
        return sorted(named, key=lambda t: -abs(t[1]))[:top]
