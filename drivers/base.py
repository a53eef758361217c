"""The one interface every cloud adapter implements.

Drivers are the only place (with executors) where side effects happen. They translate the cloud's
objects into :mod:`cotenancy.model` records in project units, and its faults into the typed errors of
:mod:`cotenancy.exceptions` (``NotFound``, ``Unsupported``, ``TimedOut``, ``ActionFailed``).
"""

from __future__ import annotations

import abc
import os
import ssl
import time
from collections.abc import Sequence

from cotenancy.exceptions import AuthenticationFailed, ConfigurationError, Unsupported
from cotenancy.model import Allocation, Event, Inventory, MetricSample, Resources
from cotenancy.plugin import ConfigurablePlugin


def verifying_tls_context(ca_file: str | None, option: str) -> ssl.SSLContext:
    """A TLS context that verifies servers against ``ca_file`` (a PEM bundle, or a folder of
    hashed certificates) or, without one, the system's CAs.

    A bundle that cannot be loaded is a :class:`ConfigurationError` naming ``option``, raised when
    the driver is built: a mistyped path must stop the command at once, not fail every round as
    if the server were unreachable.
    """
    try:
        if ca_file and os.path.isdir(ca_file):
            return ssl.create_default_context(capath=ca_file)
        return ssl.create_default_context(cafile=ca_file or None)
    except OSError as exc:  # ssl.SSLError is an OSError
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"{option} {ca_file}: cannot load it as a CA bundle: {reason}") from None


def untrusted_certificate(
    exc: BaseException, group: str, server: str, fix: str
) -> AuthenticationFailed | None:
    """The error to raise for ``exc`` when it is a TLS certificate that failed verification, naming
    the ``server`` and the ``fix``; ``None`` when ``exc`` is something else.

    Client libraries wrap the failure several layers deep (requests in urllib3's
    ``MaxRetryError``, keystoneauth in requests' ``SSLError``), and only this kind of TLS failure
    is one that waiting cannot fix: a reset handshake is a network fault like any other.
    """
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return AuthenticationFailed(
                f"[{group}] the TLS certificate of {server} failed verification "
                f"({current.verify_message}); {fix}"
            )
        pending += [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
    return None


class Driver(ConfigurablePlugin, abc.ABC):
    """A cloud, seen through inventory, telemetry and four verbs.

    Times are POSIX seconds. ``timeout`` is in seconds; ``None`` means the driver's configured default.
    Its ``name`` is its entry point in ``cotenancy.drivers`` and the group of its options.
    """

    @abc.abstractmethod
    def get_inventory(self) -> Inventory:
        """Hosts with capacity and maintenance state, VMs with size, allocation and placement,
        and the policies and affinity rules the cloud knows about."""

    @abc.abstractmethod
    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        """Samples with ``start <= timestamp < end`` (all VMs when ``vm_ids`` is None),
        in any order; names and units as in :mod:`cotenancy.model.telemetry`."""

    @abc.abstractmethod
    def get_events(self, start: float, end: float) -> list[Event]:
        """Events (migrations, power, degradation where the cloud reports it) in ``[start, end)``."""

    @abc.abstractmethod
    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        """Move a running VM; returns when it runs on ``target_host_id``."""

    @abc.abstractmethod
    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        """Change the VM's configured size (CPU MHz / vCPUs, memory)."""

    def set_allocation(self, vm_id: str, allocation: Allocation, timeout: float | None = None) -> None:
        """Change shares, reservation and limit without moving or resizing the VM."""
        raise Unsupported(f"{self.name or type(self).__name__} cannot change allocations")

    @abc.abstractmethod
    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        """Put a host into maintenance (no new VMs) or take it out."""

    def outcome_later(self, unknown: str) -> str | None:
        """What an operation whose outcome was unknown did in the end, once the cloud can tell.

        ``unknown`` is the message a step recorded for it (its :class:`TimedOut`, naming what the
        cloud knows it by); None while the cloud cannot tell yet. A driver whose operations cannot
        be looked up later never can."""
        return None

    def now(self) -> float:
        """The cloud's clock; a simulated cloud has its own."""
        return time.time()

    def wait(self, seconds: float) -> None:
        """Let ``seconds`` of cloud time pass (a simulated cloud advances instead of sleeping)."""
        time.sleep(seconds)

    def close(self) -> None:
        """Release sessions and connections."""
