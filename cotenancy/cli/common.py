"""Helpers shared by sub-commands: building the pieces of the control loop from configuration."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from oslo_config import cfg

from cotenancy import loading
from cotenancy.exceptions import ConfigurationError


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command is, so that it stops as on Ctrl-C."""


@contextlib.contextmanager
def stop_on_sigterm(on_term: Callable[[], None] | None = None) -> Iterator[None]:
    """SIGTERM (``systemctl stop``) stops the command as Ctrl-C does: the step it runs is recorded
    and the driver's sessions and the history store are closed, instead of the process vanishing.
    ``on_term`` is called instead when given (it may raise :class:`Terminated` itself)."""

    def stop(_signum: int, _frame: object) -> None:
        if on_term is None:
            raise Terminated()
        on_term()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


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


def positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1."""
    return _whole_number(text, minimum=1)


def non_negative_int(text: str) -> int:
    """argparse type: a whole number of at least 0."""
    return _whole_number(text, minimum=0)


def _whole_number(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0 (not nan, not inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value


def check_writable_file(path: str | os.PathLike[str], option: str) -> None:
    """Fail now, before any work is done, if ``path`` cannot be written as a file.

    A missing file is created to prove it can be, then removed again; an existing file is opened
    for appending, which leaves its content alone.
    """
    target = Path(path)
    if target.is_dir():
        raise ConfigurationError(f"{option}: {target} is a folder; give a file name")
    if target.parent.exists() and not target.parent.is_dir():
        raise ConfigurationError(f"{option}: {target.parent} is not a folder")
    if not target.parent.is_dir():
        raise ConfigurationError(f"{option}: folder {target.parent} does not exist")
    existed = target.exists()
    if existed and not target.is_file():
        if not os.access(target, os.W_OK):
            raise ConfigurationError(f"{option}: cannot write {target}: permission denied")
        return
    try:
        with target.open("a"):
            pass
    except OSError as exc:
        raise ConfigurationError(f"{option}: cannot write {target}: {exc.strerror or exc}") from None
    if not existed:
        target.unlink(missing_ok=True)
