"""``cotenancy run``: the control loop as a long-running service (or for N rounds)."""

from __future__ import annotations

import argparse

from oslo_config import cfg

from cotenancy.cli.common import (
    Terminated,
    build_loop,
    load_driver,
    open_store,
    positive_int,
    stop_on_sigterm,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the control loop: collect, predict, plan, apply, every interval",
        description="Run the control loop against the configured driver.",
    )
    parser.add_argument("--driver", help="driver name (default: [DEFAULT] driver)")
    parser.add_argument("--strategy", help="strategy name (default: [DEFAULT] strategy)")
    parser.add_argument("--executor", help="executor name (default: [DEFAULT] executor)")
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=None,
        metavar="N",
        help="stop after N rounds, N at least 1 (default: run until interrupted)",
    )
    parser.add_argument("--dry-run", action="store_true", help="plan and store plans only")
    parser.add_argument("--store", metavar="URL", help="history store URL (default: [store])")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, conf: cfg.ConfigOpts) -> int:
    store = open_store(conf, args.store)
    driver = load_driver(conf, args.driver)
    loop = None

    def on_sigterm() -> None:
        # systemctl stop, a container runtime: the round in progress ends, then the loop stops;
        # before the loop exists there is nothing to finish, so it stops as Ctrl-C does
        if loop is None:
            raise Terminated()
        loop.request_stop()

    try:
        with stop_on_sigterm(on_sigterm):
            loop = build_loop(conf, args, driver, store)
            loop.run(rounds=args.rounds, progress=True)
    finally:
        driver.close()
        store.close()
    rounds = f"{loop.rounds_run} rounds"
    if loop.failed_rounds:
        rounds += f" ({loop.failed_rounds} failed, see the log)"
    ended = "; the simulated trace ended" if loop.trace_ended else ""
    print(f"{rounds}, {loop.steps_planned} steps planned, {loop.steps_failed} failed{ended}")
    return 1 if loop.steps_failed or loop.failed_rounds else 0
