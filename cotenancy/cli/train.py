"""``cotenancy train``: fit the forecaster and the pair-risk model from the history store."""

from __future__ import annotations

import argparse
import datetime as dt
import math
import re
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cotenancy import loading
from cotenancy.cli.common import positive_float
from cotenancy.exceptions import ConfigurationError

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: float) -> float:
    """``7d`` / ``12h`` (ago), POSIX seconds, or ISO 8601 (UTC when no zone is given)."""
    match = _RELATIVE.match(text.strip())
    if match:
        return now - float(match.group(1)) * _UNIT[match.group(2)]
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ConfigurationError(f"cannot read time {text!r}: POSIX seconds must be a finite number")
        return seconds
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigurationError(
            f"cannot read time {text!r}: use 7d, 12h, POSIX seconds or ISO 8601"
        ) from None
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=dt.UTC)).timestamp()


def _what_stays(path: Path, fallback: str) -> str:
    """What serves after a training that wrote nothing: the file already there is left alone."""
    if path.exists():
        return f"{path} is left as it was"
    return f"{fallback} keeps serving"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train the demand forecaster and the pair-risk model from the history store",
        description="Reads telemetry, placement (inventory + migrations) and degradation events from "
        "the history store and writes model files to [predict] model_dir.",
    )
    parser.add_argument("--store", metavar="URL", help="history store URL (default: [store] connection)")
    parser.add_argument("--since", default="30d", help="start of the training window (default: 30d ago)")
    parser.add_argument("--until", default=None, help="end of the training window (default: now)")
    parser.add_argument(
        "--step",
        type=positive_float,
        default=None,
        help="seconds per telemetry interval, above 0 (default: [DEFAULT] interval, the step the "
        "control loop and the API serve the models on)",
    )
    parser.add_argument("--only", choices=["forecast", "risk"], help="train one model only")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="continue the current models' trees on the new history instead of starting afresh",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conf) -> int:
    from cotenancy.predict.forecast import DEFAULT_RESOURCES, train_and_save
    from cotenancy.predict.history import load_history
    from cotenancy.predict.risk import train_risk
    from cotenancy.store import HistoryStore

    store = HistoryStore(args.store) if args.store else HistoryStore.from_conf(conf)
    try:
        now = time.time()
        until = parse_time(args.until, now) if args.until else now
        since = parse_time(args.since, until)
        if since >= until:
            raise ConfigurationError("--since must be before --until")
        try:
            history = load_history(store, since, until, args.step or float(conf.interval))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    finally:
        store.close()
    if not history.vm_ids or not len(history.timestamps):
        raise ConfigurationError("the history store has no VMs or samples in that window")
    last_seen = np.flatnonzero(np.isfinite(history.values["cpu"]).any(axis=0))
    if len(last_seen):
        end = int(last_seen[-1]) + 1
        history.timestamps = history.timestamps[:end]
        history.values = {k: v[:, :end] for k, v in history.values.items()}
        history.host_of = history.host_of[:, :end]
    print(
        f"history: {len(history.vm_ids)} VMs, {len(history.timestamps)} intervals, "
        f"{len(history.events)} degradation events"
    )
    status = 0
    if args.only in (None, "forecast"):
        forecaster = loading.load_plugin(loading.FORECASTERS, conf.predict.forecaster, conf)
        values, sizes = history.forecast_inputs(DEFAULT_RESOURCES)
        try:
            with tqdm(total=2 * len(values), desc="forecaster", unit="step") as bar:
                model = train_and_save(
                    forecaster,
                    values,
                    history.timestamps,
                    history.step_seconds,
                    sizes=sizes,
                    vm_ids=history.vm_ids,
                    classes=history.app_types,
                    incremental=args.incremental,
                    progress=bar.update,
                )
        except ValueError as exc:
            print(f"forecaster: {exc}; {_what_stays(forecaster.model_path, 'the cold-start fallback')}")
            status = 1
        else:
            if model.boosters:
                print(f"forecaster saved to {forecaster.model_path}")
                for resource, metrics in model.metadata["validation"].items():
                    print(f"  {resource}: " + ", ".join(f"{k}={v:.3g}" for k, v in metrics.items()))
            else:
                print(
                    "forecaster: too little valid history; "
                    + _what_stays(forecaster.model_path, "the cold-start fallback")
                )
                status = 1
    if args.only in (None, "risk"):
        risk = loading.load_plugin(loading.RISK_MODELS, conf.predict.risk_model, conf)
        with tqdm(total=len(history.timestamps), desc="pair features", unit="step") as bar:
            data = risk.training_rows(history, progress=bar.update)
        try:
            model = train_risk(
                data, risk.training_config(), previous=risk.model if args.incremental else None
            )
        except ValueError as exc:
            print(f"risk model: {exc}; {_what_stays(risk.model_path, 'the heuristic')}")
            return 1
        model.metadata["training_window"] = [float(history.timestamps[0]), float(history.timestamps[-1])]
        model.metadata["horizon_seconds"] = conf.predict.risk_horizon
        risk.save(model)
        print(
            f"risk model saved to {risk.model_path}: "
            + ", ".join(f"{k}={v:.3g}" for k, v in model.metadata["validation"].items())
        )
    return status
