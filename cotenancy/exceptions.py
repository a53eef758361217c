"""Typed errors shared by drivers, executors and the engine.

Callers branch on the type (retry a timeout, skip a vanished VM, stop on a failure), so every
driver maps its cloud's faults onto these instead of leaking SDK exceptions.
"""

from __future__ import annotations


class CotenancyError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigurationError(CotenancyError):
    """Configuration or input is wrong; the message says what and where."""


class UnknownPluginError(ConfigurationError):
    """A plugin name was not found in its entry-point namespace."""

    def __init__(self, namespace: str, name: str, known: list[str]) -> None:
        self.namespace = namespace
        self.name = name
        self.known = sorted(known)
        super().__init__(
            f"unknown {namespace} plugin {name!r}; known: {', '.join(self.known) or '(none installed)'}"
        )


class AuthenticationFailed(ConfigurationError):
    """An endpoint rejected the credentials, or its TLS certificate failed verification.

    A kind of :class:`ConfigurationError` because waiting cannot fix it: the password, token or CA
    bundle must change, so ``cotenancy run`` stops at once instead of retrying every interval. The
    message names the endpoint and the option to fix, never the secret.
    """


class MalformedInputError(CotenancyError):
    """Input data (a trace, a metric sample) cannot be read; names the source and line."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {reason}")


class DriverError(CotenancyError):
    """A driver could not do what was asked."""


class NotFound(DriverError):
    """The VM, host or object does not exist (any more)."""


class Unsupported(DriverError):
    """The cloud, or this object, cannot do the operation (e.g. hot-add disabled)."""


class TimedOut(DriverError):
    """The operation did not finish in time; its outcome may be unknown."""


class ActionFailed(DriverError):
    """The cloud tried the operation and reported failure."""


class TraceEnded(DriverError):
    """A simulated cloud has replayed its whole trace: its clock cannot move on, so a control
    loop on it has nothing new to observe and stops."""


class SchemaMismatch(CotenancyError):
    """A saved model was built for another feature schema and must not be served."""


class ModelFileError(SchemaMismatch):
    """A model file cannot be read or is malformed; the message names the file and what is wrong.

    A kind of :class:`SchemaMismatch` because callers treat both the same way: the file must not be
    served, and retraining writes a good one.
    """
