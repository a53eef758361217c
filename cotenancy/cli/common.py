"""Helpers shared by sub-commands: building the pieces of the control loop from configuration."""

from __future__ import annotations

from oslo_config import cfg

from cotenancy import loading


def load_driver(conf: cfg.ConfigOpts, name: str | None = None):
    """The configured (or named) driver, constructed."""
    return loading.load_plugin(loading.DRIVERS, name or conf.driver, conf)


def load_strategy(conf: cfg.ConfigOpts, name: str | None = None):
    return loading.load_plugin(loading.STRATEGIES, name or conf.strategy, conf)


def open_store(conf: cfg.ConfigOpts, url: str | None = None):
    from cotenancy.store import HistoryStore

    return HistoryStore(url) if url else HistoryStore.from_conf(conf)


def load_executor(conf: cfg.ConfigOpts, store, name: str | None = None):
    return loading.load_plugin(loading.EXECUTORS, name or conf.executor, conf, store=store)


def build_loop(conf: cfg.ConfigOpts, args, driver, store):
    """The control loop a sub-command asked for with ``--strategy``, ``--executor``, ``--dry-run``."""
    from cotenancy.engine.loop import ControlLoop

    return ControlLoop(
        conf,
        driver=driver,
        strategy=load_strategy(conf, args.strategy),
        executor=load_executor(conf, store, args.executor),
        store=store,
        dry_run=True if args.dry_run else None,
    )
