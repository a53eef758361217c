"""The ``cotenancy`` command.

Each sub-command lives in its own module under :mod:`cotenancy.cli` and exposes
``register(subparsers)`` which adds its parser and sets ``func(args, conf) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from types import TracebackType

from oslo_config import cfg

from cotenancy import __version__
from cotenancy.cli.common import Terminated
from cotenancy.conf import make_conf
from cotenancy.exceptions import CotenancyError
from cotenancy.text import escape_controls

COMMAND_MODULES = [
    "cotenancy.cli.simulate",
    "cotenancy.cli.train",
    "cotenancy.cli.evaluate",
    "cotenancy.cli.plan",
    "cotenancy.cli.run",
    "cotenancy.cli.api",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cotenancy",
        description="Predict and avoid conflicts between VMs that share a host.",
    )
    parser.add_argument("--version", action="version", version=f"cotenancy {__version__}")
    parser.add_argument(
        "--config-file",
        action="append",
        default=None,
        metavar="PATH",
        help="oslo.config file (may be repeated); default: the usual cotenancy.conf locations",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="GROUP.OPTION=VALUE",
        help="override one option, e.g. --set DEFAULT.interval=60",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def _apply_overrides(conf, overrides: Sequence[str]) -> None:
    for item in overrides:
        key, sep, value = item.partition("=")
        group, dot, option = key.rpartition(".")
        if not sep or not option:
            raise CotenancyError(f"--set expects GROUP.OPTION=VALUE, got {item!r}")
        group = group if dot and group != "DEFAULT" else None
        try:
            conf.set_override(option, value, group=group)
        except Exception as exc:  # oslo raises NoSuchOptError/ValueError with clear text
            # the value is left out: it may be a secret given to a misspelt option
            raise CotenancyError(f"--set {key}: {exc}") from exc


#: what ``sys.exc_info()`` returns, as :meth:`logging.Formatter.formatException` takes it
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]


class OneLineFormatter(logging.Formatter):
    """Each record starts a line of its own and holds no control character.

    Messages name VMs, hosts and flavors and quote clouds' error messages, all of which the cloud's
    users choose: a newline there would forge a log line, a terminal escape clear the screen. A
    message is shown with its control characters as escapes; a traceback's lines are indented, so
    that a newline in an exception's message cannot start a line that reads as a record."""

    def format(self, record: logging.LogRecord) -> str:
        record.exc_text = None  # a traceback another handler's formatter kept is not indented
        return super().format(record)

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: ExcInfo) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


def _configure_logging(verbose: int) -> None:
    """Records at WARNING and above, INFO with ``-v``, DEBUG with ``-vv``, on standard error."""
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2), handlers=[handler])


_LOCATION = re.compile(r"LocationInfo\(location=<Locations\.\w+: [^>]*>, detail='([^']*)'\)")


def _config_error_text(exc: cfg.Error) -> str:
    """oslo's message on one line, with its ``LocationInfo(...)`` shown as the file it names."""
    text = _LOCATION.sub(lambda m: m.group(1), str(exc))
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        conf = make_conf([], config_files=args.config_file)
        args.overrides = list(args.set)
        _apply_overrides(conf, args.overrides)
        return int(args.func(args, conf) or 0)
    except CotenancyError as exc:
        # errors quote names and messages from the cloud: one line, whatever they hold
        print(f"cotenancy: error: {escape_controls(str(exc))}", file=sys.stderr)
        return 2
    except cfg.Error as exc:
        print(f"cotenancy: error: configuration: {_config_error_text(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as exc:
        # the shell's codes for a command stopped by SIGTERM or SIGINT
        return 143 if isinstance(exc, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
