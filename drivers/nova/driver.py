"""The ``nova`` driver: an OpenStack cloud through openstacksdk (compute + placement).

* Inventory: hypervisors and their compute services, capacity and usage from placement, servers
  with their embedded flavors, aggregates and availability zones, server groups as affinity rules.
* Metrics: server diagnostics (the state now; history needs a datasource such as Prometheus).
* Actions: live migration (``block_migration='auto'``) and resize to the smallest fitting flavor,
  both awaited on the migrations API; maintenance disables the compute service.

Authentication is a keystoneauth session built from ``clouds.yaml``, like every OpenStack tool.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import openstack
import openstack.config
import openstack.connection
from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc
from oslo_config import cfg

from cotenancy.drivers.base import Driver, untrusted_certificate
from cotenancy.drivers.nova import convert
from cotenancy.drivers.nova.options import NOVA_OPTS
from cotenancy.exceptions import (
    ActionFailed,
    AuthenticationFailed,
    ConfigurationError,
    DriverError,
    NotFound,
    TimedOut,
    Unsupported,
)
from cotenancy.model import (
    AffinityRule,
    Event,
    Host,
    Inventory,
    MetricSample,
    Resources,
    VMState,
)

LOG = logging.getLogger(__name__)
T = TypeVar("T")

COMPUTE_BINARY = "nova-compute"
#: Diagnostics show the present only: a window that ended longer ago than this gets no samples.
DIAGNOSTICS_SLACK_SECONDS = 60.0
#: Where a resize ends: a running server comes back ACTIVE, a stopped one SHUTOFF.
_AT_REST = frozenset({"ACTIVE", "SHUTOFF"})


def _reason(exc: sdk_exc.HttpException | ksa_exc.HttpError) -> str:
    return str(getattr(exc, "details", None) or exc.message or exc)


def _status(exc: sdk_exc.HttpException | ksa_exc.HttpError) -> int | None:
    return getattr(exc, "status_code", None) or getattr(exc, "http_status", None)


def _url(exc: BaseException) -> str:
    """The URL the failed request went to, as the SDK, keystoneauth or requests recorded it
    (keystoneauth's own exceptions keep it only in the requests exception they replaced)."""
    current: BaseException | None = exc
    while current is not None:
        for holder in (current, getattr(current, "response", None), getattr(current, "request", None)):
            if url := getattr(holder, "url", None):
                return str(url)
        current = current.__cause__ or current.__context__
    return "the cloud"


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class NovaDriver(Driver):
    """An OpenStack cloud seen through Nova and placement."""

    name = "nova"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return list(NOVA_OPTS)

    def __init__(
        self, conf: cfg.ConfigOpts, connection: openstack.connection.Connection | None = None
    ) -> None:
        super().__init__(conf)
        self._connection = connection
        self._readings: dict[str, convert.DiagnosticsReading] = {}

    # -- session -------------------------------------------------------------------------------

    @contextmanager
    def _translated(self, what: str, failure: type[DriverError] = DriverError) -> Iterator[None]:
        """Map SDK and transport faults onto the project's typed errors (never leak SDK types).

        Rejected credentials and an unverifiable certificate are :class:`AuthenticationFailed`:
        another round would be rejected the same way, so ``cotenancy run`` stops on them.
        """
        try:
            yield
        except sdk_exc.NotFoundException as exc:
            raise NotFound(f"{what}: not found ({_reason(exc)})") from exc
        except (ksa_exc.ConnectTimeout, sdk_exc.ResourceTimeout) as exc:
            # no answer in time: what Nova did is unknown, which callers must tell from a refusal
            raise TimedOut(f"{what}: {type(exc).__name__}: {exc}") from exc
        except (sdk_exc.HttpException, ksa_exc.Unauthorized) as exc:
            if _status(exc) == 401:
                raise AuthenticationFailed(
                    f"[nova] cloud {self._cloud_name}: {_url(exc)} rejected its credentials (HTTP 401); "
                    f"correct the cloud's auth section in {self.options.clouds_file or 'clouds.yaml'}"
                ) from exc
            raise failure(f"{what}: HTTP {_status(exc)}: {_reason(exc)}") from exc
        except (sdk_exc.SDKException, ksa_exc.ClientException) as exc:
            server = f"{_url(exc)} (cloud {self._cloud_name})"
            fix = "set [nova] cacert, or cacert in clouds.yaml, to the CA bundle that signed it"
            if (untrusted := untrusted_certificate(exc, "nova", server, fix)) is not None:
                raise untrusted from exc
            raise DriverError(f"{what}: {type(exc).__name__}: {exc}") from exc

    @property
    def _cloud_name(self) -> str:
        return repr(self.options.cloud) if self.options.cloud else "$OS_CLOUD"

    @property
    def connection(self) -> openstack.connection.Connection:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection

    def _connect(self) -> openstack.connection.Connection:
        opts = self.options
        overrides: dict[str, Any] = {}
        if opts.insecure:
            overrides["verify"] = False
        elif opts.cacert:
            overrides["cacert"] = opts.cacert
        if opts.region_name:
            overrides["region_name"] = opts.region_name
        try:
            config = openstack.config.OpenStackConfig(
                config_files=[opts.clouds_file] if opts.clouds_file else None,
                app_name="cotenancy",
            )
            region = config.get_one(cloud=opts.cloud or None, **overrides)
        except (sdk_exc.ConfigException, ksa_exc.ClientException, OSError) as exc:
            # The message names the cloud and file, never credentials.
            raise ConfigurationError(
                f"[nova] cannot load cloud {opts.cloud or '$OS_CLOUD'!r}"
                f"{' from ' + opts.clouds_file if opts.clouds_file else ''}: {exc}"
            ) from exc
        if opts.insecure:
            LOG.warning("[nova] TLS certificate verification is disabled (insecure = true)")
        return openstack.connection.Connection(config=region, app_name="cotenancy")

    @property
    def _compute(self) -> Any:
        """The compute proxy; its first use discovers the endpoint, which may fail."""
        with self._translated("connecting to the compute API"):
            return self.connection.compute

    @property
    def _placement(self) -> Any:
        with self._translated("connecting to placement"):
            return self.connection.placement

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- inventory -----------------------------------------------------------------------------

    def get_inventory(self) -> Inventory:
        compute = self._compute
        mhz = self.options.mhz_per_vcpu
        with self._translated("listing hypervisors, services and aggregates"):
            hypervisors = list(compute.hypervisors(details=True))
            services = {s.host: s for s in compute.services(binary=COMPUTE_BINARY)}
            aggregates = list(compute.aggregates())
        providers = self._placement_providers()

        inventory = Inventory()
        for hypervisor in hypervisors:
            host = self._host(hypervisor, services, aggregates, providers, mhz)
            inventory.hosts.setdefault(host.id, host)

        with self._translated("listing servers and server groups"):
            servers = list(compute.servers(details=True, all_projects=self.options.all_projects))
            groups = list(compute.server_groups(all_projects=self.options.all_projects))
        for server in servers:
            if (server.status or "").upper() in {"DELETED", "SOFT_DELETED"}:
                continue
            vm = convert.server_to_vm(server, mhz, self.options.metadata_prefix)
            if vm.state is VMState.MIGRATING and (server.status or "").upper() in convert.MOVING_STATUSES:
                vm.migration_target = self._migration_target(vm.id, vm.host_id)
            inventory.vms[vm.id] = vm
        for group in groups:
            rule = convert.rule_from_server_group(group)
            if rule is not None:
                live = frozenset(v for v in rule.vm_ids if v in inventory.vms)
                if len(live) >= 2:
                    inventory.rules.append(
                        AffinityRule(name=rule.name, kind=rule.kind, vm_ids=live, hard=rule.hard)
                    )
        return inventory

    def _migration_target(self, vm_id: str, source: str | None) -> str | None:
        """The host a move in flight is taking ``vm_id`` to, from its migration records (one
        call per server on the move); None when the server went away or no record names one."""
        try:
            with self._translated(f"migrations of {vm_id}"):
                return convert.migration_target(self._compute.migrations(server_id=vm_id), source)
        except NotFound:
            return None

    def _host(
        self,
        hypervisor: Any,
        services: dict[str, Any],
        aggregates: list[Any],
        providers: dict[str, dict[str, Any]],
        mhz: float,
    ) -> Host:
        details = hypervisor.service_details or {}
        host_id = details.get("host") or hypervisor.name
        service = services.get(host_id)
        provider = providers.get(hypervisor.id) or providers.get(hypervisor.name) or {}
        inventories = provider.get("inventories", {})
        usages = provider.get("usages", {})
        member_of = sorted(a.name for a in aggregates if host_id in (a.hosts or []))
        zone = getattr(service, "availability_zone", None) or next(
            (a.availability_zone for a in aggregates if host_id in (a.hosts or []) and a.availability_zone),
            None,
        )
        attributes = {
            "hypervisor_hostname": str(hypervisor.name),
            "hypervisor_type": str(hypervisor.hypervisor_type or ""),
            "state": str(hypervisor.state or ""),
            "status": str(hypervisor.status or ""),
            "aggregates": ",".join(member_of),
            "availability_zone": zone or "",
            "resource_provider": str(provider.get("uuid", "")),
        }
        for resource_class in ("VCPU", "MEMORY_MB", "DISK_GB"):
            if resource_class in usages:
                attributes[f"used_{resource_class.lower()}"] = str(usages[resource_class])
            if resource_class in inventories:
                inv = inventories[resource_class]
                attributes[f"total_{resource_class.lower()}"] = str(inv.get("total", 0))
                attributes[f"allocation_ratio_{resource_class.lower()}"] = str(
                    inv.get("allocation_ratio", 1.0)
                )
        disabled = service is not None and service.status == "disabled"
        if disabled and service.disabled_reason:
            attributes["disabled_reason"] = str(service.disabled_reason)
        return Host(
            id=str(host_id),
            name=str(hypervisor.name),
            capacity=convert.capacity_from_inventories(inventories, mhz),
            cluster=zone,
            maintenance=disabled,
            attributes={k: v for k, v in attributes.items() if v},
        )

    def _placement_providers(self) -> dict[str, dict[str, Any]]:
        """Root resource providers by uuid and by name, with their inventories and usages."""
        placement = self._placement
        found: dict[str, dict[str, Any]] = {}
        with self._translated("reading placement"):
            for provider in placement.resource_providers():
                record = {
                    "uuid": provider.id,
                    "inventories": self._placement_json(f"/resource_providers/{provider.id}/inventories").get(
                        "inventories", {}
                    ),
                    "usages": self._placement_json(f"/resource_providers/{provider.id}/usages").get(
                        "usages", {}
                    ),
                }
                found[provider.id] = record
                found.setdefault(provider.name, record)
        return found

    def _placement_json(self, path: str) -> dict[str, Any]:
        response = self._placement.get(path)
        sdk_exc.raise_from_response(response)
        return response.json()

    # -- telemetry -----------------------------------------------------------------------------

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        """Diagnostics of each running server, taken now and stamped inside ``[start, end)``.

        Rates (CPU, disk, network) need two readings, so they appear from this driver's second
        call on; memory appears at once. Windows that ended long ago get nothing: diagnostics
        have no history (use the Prometheus datasource for that).
        """
        now = self.now()
        if end <= start or now < start or now - end > DIAGNOSTICS_SLACK_SECONDS:
            return []
        stamp = min(now, end - 1e-3)
        compute = self._compute
        if vm_ids is None:
            with self._translated("listing active servers"):
                vm_ids = [
                    s.id
                    for s in compute.servers(
                        details=False, all_projects=self.options.all_projects, status="ACTIVE"
                    )
                ]
        samples: list[MetricSample] = []
        for vm_id in vm_ids:
            try:
                with self._translated(f"diagnostics of server {vm_id}"):
                    diagnostics = compute.get_server_diagnostics(vm_id)
            except NotFound:
                self._readings.pop(vm_id, None)
                continue
            except DriverError as exc:
                # A server that is not running (409) or whose driver has no diagnostics.
                LOG.debug("no diagnostics for %s: %s", vm_id, exc)
                continue
            try:
                reading = convert.diagnostics_reading(diagnostics, stamp)
            except ValueError as exc:
                # one server's bad counters cost that server's samples this round, not everyone's
                LOG.warning("server %s: diagnostics skipped: %s", vm_id, exc)
                self._readings.pop(vm_id, None)
                continue
            samples.extend(
                convert.diagnostics_samples(
                    vm_id, self._readings.get(vm_id), reading, self.options.mhz_per_vcpu
                )
            )
            self._readings[vm_id] = reading
        return samples

    def get_events(self, start: float, end: float) -> list[Event]:
        """Migrations and resizes Nova recorded with their last update in ``[start, end)``."""
        with self._translated("listing migrations"):
            migrations = list(self._compute.migrations(changes_since=_iso(start)))
        events = []
        for migration in migrations:
            event = convert.migration_event(migration)
            if event is not None and start <= event.timestamp < end:
                events.append(event)
        return sorted(events, key=lambda e: e.timestamp)

    # -- actions -------------------------------------------------------------------------------

    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        deadline = self._deadline(timeout)
        compute = self._compute
        server = self._server(vm_id)
        if server.compute_host == target_host_id:
            return
        with self._translated(f"migrations of {vm_id}"):
            known = list(compute.migrations(server_id=vm_id))
        before = {str(m.id) for m in known}
        in_flight = [
            m
            for m in known
            if m.migration_type == "live-migration"
            and m.status not in convert.MIGRATION_DONE | convert.MIGRATION_FAILED
        ]
        if in_flight and in_flight[0].dest_compute in (None, target_host_id):
            # A move we started before (e.g. one that outlived its timeout): wait for it
            # instead of asking again, which Nova would refuse with 409.
            LOG.info("server %s is already moving to %s; waiting", vm_id, target_host_id)
            before.discard(str(in_flight[0].id))
        else:
            block = {"auto": "auto", "true": True, "false": False}[self.options.block_migration]
            LOG.info("live-migrating server %s from %s to %s", vm_id, server.compute_host, target_host_id)
            with self._translated(f"live migration of {vm_id} to {target_host_id}", ActionFailed):
                compute.live_migrate_server(vm_id, host=target_host_id, block_migration=block)
        migration = self._await_migration(vm_id, before, deadline, "live migration")
        if migration.status in convert.MIGRATION_FAILED:
            raise ActionFailed(
                f"live migration of {vm_id} to {target_host_id} ended {migration.status!r}"
                f" (migration {migration.id}); server stays on {server.compute_host}"
            )

        def arrived() -> bool:
            current = self._server(vm_id)
            return current.compute_host == target_host_id and not current.task_state

        self._poll(arrived, deadline, f"server {vm_id} to show host {target_host_id}")

    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        """Resize to the smallest flavor holding ``size`` (see
        :func:`convert.smallest_fitting_flavor`), then confirm."""
        deadline = self._deadline(timeout)
        compute = self._compute
        server = self._server(vm_id)
        current = server.flavor or {}
        flavor = self._choose_flavor(size, float(current.get("disk") or 0))
        if flavor is None:
            raise Unsupported(
                f"no flavor holds cpu={size.cpu:.0f} MHz, memory={size.memory:.0f} MiB "
                f"(at {self.options.mhz_per_vcpu:.0f} MHz per vCPU)"
            )
        current_name = current.get("original_name") or current.get("name")
        if flavor.name == current_name:
            return
        before = self._migration_ids(vm_id)
        LOG.info("resizing server %s from %s to %s", vm_id, current_name, flavor.name)
        with self._translated(f"resize of {vm_id} to {flavor.name}", ActionFailed):
            compute.resize_server(vm_id, flavor.id)
        migration = self._await_migration(vm_id, before, deadline, "resize")
        if migration.status in convert.MIGRATION_FAILED:
            raise ActionFailed(
                f"resize of {vm_id} to {flavor.name} ended {migration.status!r} (migration {migration.id})"
            )

        state: dict[str, Any] = {}

        def settled() -> bool:
            state["server"] = current_server = self._server(vm_id)
            status = (current_server.status or "").upper()
            if status == "ERROR":
                fault = current_server.fault or {}
                raise ActionFailed(f"resize of {vm_id} failed: {fault.get('message', 'ERROR')}")
            return status == "VERIFY_RESIZE" or (status in _AT_REST and not current_server.task_state)

        self._poll(settled, deadline, f"server {vm_id} to finish resizing")
        if (state["server"].status or "").upper() == "VERIFY_RESIZE":
            if not self.options.confirm_resize:
                return
            with self._translated(f"confirming resize of {vm_id}", ActionFailed):
                compute.confirm_server_resize(vm_id)

        def confirmed() -> bool:
            current_server = self._server(vm_id)
            name = (current_server.flavor or {}).get("original_name")
            if (current_server.status or "").upper() in _AT_REST and not current_server.task_state:
                if name != flavor.name:
                    raise ActionFailed(f"resize of {vm_id} to {flavor.name} reverted (flavor is {name})")
                return True
            return False

        self._poll(confirmed, deadline, f"server {vm_id} to settle as {flavor.name}")

    def _choose_flavor(self, size: Resources, min_disk_gb: float) -> Any | None:
        allowed = set(self.options.resize_flavors)
        with self._translated("listing flavors"):
            flavors = [f for f in self._compute.flavors(details=True) if not allowed or f.name in allowed]
        return convert.smallest_fitting_flavor(flavors, size, self.options.mhz_per_vcpu, min_disk_gb)

    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        """Disable (``enabled=True``) or enable the host's compute service: no new VMs land
        there; running ones stay until the planner moves them."""
        compute = self._compute
        with self._translated(f"finding the compute service of {host_id}"):
            services = list(compute.services(binary=COMPUTE_BINARY, host=host_id))
        services = [s for s in services if s.host == host_id]
        if not services:
            raise NotFound(f"no {COMPUTE_BINARY} service on host {host_id!r}")
        service = services[0]
        LOG.info("%s compute service on %s", "disabling" if enabled else "enabling", host_id)
        with self._translated(f"{'disabling' if enabled else 'enabling'} {host_id}", ActionFailed):
            if enabled:
                updated = compute.disable_service(service, disabled_reason=self.options.maintenance_reason)
            else:
                updated = compute.enable_service(service)
        expected = "disabled" if enabled else "enabled"
        if updated is not None and updated.status not in (None, expected):
            raise ActionFailed(f"compute service on {host_id} is {updated.status}, not {expected}")

    # -- waiting -------------------------------------------------------------------------------

    def _server(self, vm_id: str) -> Any:
        with self._translated(f"server {vm_id}"):
            return self._compute.get_server(vm_id)

    def _migration_ids(self, vm_id: str) -> set[str]:
        with self._translated(f"migrations of {vm_id}"):
            return {str(m.id) for m in self._compute.migrations(server_id=vm_id)}

    def _await_migration(self, vm_id: str, before: set[str], deadline: float, what: str) -> Any:
        """The migration Nova created for our request, once it is over.

        The server's own status cannot be trusted here: after a live migration it reads ACTIVE
        before the migration finished.
        """
        found: dict[str, Any] = {}

        def over() -> bool:
            self._server(vm_id)  # NotFound when the server vanished meanwhile
            with self._translated(f"migrations of {vm_id}"):
                fresh = [m for m in self._compute.migrations(server_id=vm_id) if str(m.id) not in before]
            if not fresh:
                return False
            migration = max(fresh, key=lambda m: int(m.id) if str(m.id).isdigit() else 0)
            found["migration"] = migration
            status = str(migration.status or "")
            if what == "resize" and status == "finished":
                return True
            return status in convert.MIGRATION_DONE or status in convert.MIGRATION_FAILED

        self._poll(over, deadline, f"{what} of {vm_id} (migrations API)", last=lambda: found.get("migration"))
        return found["migration"]

    def _deadline(self, timeout: float | None) -> float:
        return time.monotonic() + (self.options.action_timeout if timeout is None else timeout)

    def _poll(
        self,
        done: Callable[[], bool],
        deadline: float,
        what: str,
        last: Callable[[], Any] | None = None,
    ) -> None:
        while True:
            if done():
                return
            if time.monotonic() >= deadline:
                seen = last() if last else None
                status = f"; last migration status {seen.status!r}" if seen is not None else ""
                raise TimedOut(f"timed out waiting for {what}{status}")
            time.sleep(min(self.options.poll_interval, max(0.0, deadline - time.monotonic())))
