"""``cotenancy plan``: one planning round, printed as a table with the reason for every step."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from oslo_config import cfg

from cotenancy.cli.common import (
    build_loop,
    check_writable_file,
    load_driver,
    non_negative_int,
    open_store,
    stop_on_sigterm,
)
from cotenancy.exceptions import ConfigurationError
from cotenancy.model import ActionPlan, StepStatus
from cotenancy.plan.report import format_plan, plan_to_dict


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan",
        help="plan one round and print the steps with their reasons",
        description="Observe the cloud once, plan with the strategy, print the plan as a table "
        "(reason and expected benefit per step) and, unless --dry-run, carry it out.",
    )
    parser.add_argument("--driver", help="driver name (default: [DEFAULT] driver)")
    parser.add_argument("--strategy", help="strategy name (default: [DEFAULT] strategy)")
    parser.add_argument("--executor", help="executor name (default: [DEFAULT] executor)")
    parser.add_argument("--dry-run", action="store_true", help="print and store the plan; change nothing")
    parser.add_argument("--json", metavar="FILE", type=Path, help="also write the plan as JSON to FILE")
    parser.add_argument("--store", metavar="URL", help="history store URL (default: [store])")
    parser.add_argument(
        "--warmup",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="collect telemetry for N intervals before planning (instant on the simulated driver, "
        "real time elsewhere), so forecasts have history to work from",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    if args.json is not None:
        check_writable_file(args.json, "--json")
    store = open_store(conf, args.store)
    driver = load_driver(conf, args.driver)
    try:
        with stop_on_sigterm():
            loop = build_loop(conf, args, driver, store)
            for _ in range(args.warmup):
                loop.collect(driver.now())
                driver.wait(loop.interval)
            result = loop.run_once()
    finally:
        driver.close()
        store.close()
    print(format_plan(result.plan))
    status = 0
    if result.executed:
        print(execution_summary(result.plan))
        status = 1 if result.failed_steps else 0
    if args.json is not None:
        try:
            args.json.write_text(json.dumps(plan_to_dict(result.plan), indent=2) + "\n")
        except OSError as exc:
            raise ConfigurationError(
                f"--json: cannot write {args.json}: {exc.strerror or exc}; "
                f"the plan is kept in the history store as {result.plan.id}"
            ) from None
    return status


def execution_summary(plan: ActionPlan) -> str:
    """How many steps ended how. Steps an executor hands to another system (vCenter scheduled
    tasks) are still to run when the command ends, and must not read as done."""
    counts = Counter(a.status for a in plan.actions)
    parts = [f"{counts[StepStatus.SUCCEEDED]} succeeded", f"{counts[StepStatus.FAILED]} failed"]
    for status, label in _LATER:
        if counts[status]:
            parts.append(f"{counts[status]} {label}")
    return "carried out: " + ", ".join(parts)


_LATER = (
    (StepStatus.SKIPPED, "skipped"),
    (StepStatus.CANCELLED, "cancelled"),
    (StepStatus.SCHEDULED, "scheduled to run later"),
    (StepStatus.RUNNING, "still running"),
    (StepStatus.PENDING, "pending"),
)
