"""The ``vsphere`` driver: vCenter through pyVmomi.

Reads go through property collectors (one paged call per object kind, never one call per object);
changes are vCenter tasks that are waited on with a deadline. Every fault becomes a typed error of
:mod:`cotenancy.exceptions`, and each call is sent once: after ``NotAuthenticated`` the session
logs in again and repeats only that call (vCenter refused it before doing anything).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import logging
import math
import re
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from oslo_config import cfg
from pyVmomi import vim, vmodl

from cotenancy.drivers.base import Driver
from cotenancy.drivers.vsphere import convert
from cotenancy.drivers.vsphere.options import VSPHERE_OPTS
from cotenancy.drivers.vsphere.session import Session
from cotenancy.exceptions import ActionFailed, DriverError, NotFound, TimedOut, Unsupported
from cotenancy.model import (
    VM,
    AffinityRule,
    Allocation,
    Event,
    Host,
    Inventory,
    Metric,
    MetricSample,
    Resources,
    RuleKind,
    VMState,
)

LOG = logging.getLogger(__name__)

PC = vmodl.query.PropertyCollector
#: events per collector (vCenter's maximum) and per read
EVENTS_MAX = 1000
EVENTS_PAGE = 200

HOST_PATHS = [
    "name",
    "parent",
    "summary.hardware",
    "runtime.inMaintenanceMode",
    "runtime.connectionState",
]
VM_PATHS = [
    "name",
    "runtime.host",
    "runtime.powerState",
    "config.hardware.numCPU",
    "config.hardware.memoryMB",
    "config.cpuAllocation",
    "config.memoryAllocation",
    "config.cpuHotAddEnabled",
    "config.cpuHotRemoveEnabled",
    "config.memoryHotAddEnabled",
    "config.template",
    "config.annotation",
    "config.instanceUuid",
]
CLUSTER_PATHS = ["name", "configurationEx"]
TASK_PATHS = ["info.state", "info.descriptionId", "info.entity"]
#: TaskInfo.descriptionId of tasks that move a VM to another host: a relocation (RelocateVM_Task),
#: a migration (MigrateVM_Task) and a DRS-initiated vMotion
MIGRATION_TASKS = frozenset({"VirtualMachine.relocate", "VirtualMachine.migrate", "Drm.ExecuteVMotionLRO"})
#: methods (WSDL names) of scheduled tasks that move a VM to another host
MIGRATION_METHODS = frozenset({"RelocateVM_Task", "MigrateVM_Task"})
_UNFINISHED = (vim.TaskInfo.State.queued, vim.TaskInfo.State.running)
#: the task a TimedOut of :meth:`VSphereDriver.wait_for_task` names
_TIMED_OUT_TASK = re.compile(r"task (task-\d+) still \w+ after")


class Move(NamedTuple):
    """A move of a VM vCenter has queued, is carrying out or holds as a scheduled task: what it is
    (for the VM's ``migration`` attribute) and the host it goes to, where vCenter says (a
    scheduled task's RelocateSpec, a relocation this driver started) and None where it does not
    (a task's info does not carry its arguments)."""

    why: str
    target: str | None = None
    #: a scheduled task that has not started: the move holds room but nothing moves yet
    waits: bool = False


_POWER_STATES = {
    "poweredOn": VMState.ACTIVE,
    "poweredOff": VMState.STOPPED,
    "suspended": VMState.STOPPED,
}


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@contextlib.contextmanager
def faults(doing: str) -> Iterator[None]:
    """Turn vSphere faults and transport errors inside the block into typed errors."""
    try:
        yield
    except (vmodl.MethodFault, OSError, http.client.HTTPException) as exc:
        raise convert.error_from_fault(exc, doing) from exc


class VSphereDriver(Driver):
    """vCenter (or the test simulator) as a cotenancy cloud."""

    name = "vsphere"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return list(VSPHERE_OPTS)

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        super().__init__(conf)
        opts = self.options
        self.session = Session(
            host=opts.host,
            port=opts.port,
            username=opts.username,
            password=opts.password,
            ca_file=opts.ca_file,
            insecure=opts.insecure,
            call_timeout=opts.call_timeout,
        )
        self._counters: dict[str, int] | None = None
        #: vm id -> (vCPUs, configured memory MiB), refreshed by every inventory
        self._vm_shape: dict[str, tuple[int, float]] = {}
        #: vm id -> power state, refreshed with the shapes
        self._power: dict[str, str] = {}
        #: task id -> (task, what it does, VM it moves, host it moves it to) of tasks that outlived
        #: the wait for them: each inventory reads them until they end, so that their outcome is told
        self._timed_out: dict[str, tuple[vim.Task, str, str | None, str | None]] = {}

    def __repr__(self) -> str:
        return f"VSphereDriver({self.session!r})"

    def close(self) -> None:
        self.session.close()

    def now(self) -> float:
        """vCenter's clock, so metric and event windows do not drift with this host's clock."""
        with faults("reading vCenter's time"):
            return self.session.connect().CurrentTime().timestamp()

    # -- reading --------------------------------------------------------------------------------

    def _collect(
        self, container: vim.ManagedEntity, paths: dict[type, list[str]]
    ) -> list[tuple[Any, dict[str, Any]]]:
        """(object, {path: value}) for every object of the given types under ``container``,
        in pages of ``page_size`` objects."""
        content = self.session.content
        view = content.viewManager.CreateContainerView(container, list(paths), True)
        try:
            traversal = PC.TraversalSpec(name="view", path="view", skip=False, type=vim.view.ContainerView)
            spec = PC.FilterSpec(
                objectSet=[PC.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
                propSet=[PC.PropertySpec(type=t, pathSet=p) for t, p in paths.items()],
            )
            return self.retrieve(spec)
        finally:
            view.DestroyView()

    def retrieve(self, spec: vmodl.query.PropertyCollector.FilterSpec) -> list[tuple[Any, dict[str, Any]]]:
        """(object, {path: value}) of everything ``spec`` selects, in pages of ``page_size``."""
        collector = self.session.content.propertyCollector
        result = collector.RetrievePropertiesEx([spec], PC.RetrieveOptions(maxObjects=self.options.page_size))
        found: list[tuple[Any, dict[str, Any]]] = []
        while result is not None:
            for obj in result.objects:
                found.append((obj.obj, {p.name: p.val for p in obj.propSet}))
            if not result.token:
                break
            result = collector.ContinueRetrievePropertiesEx(result.token)
        return found

    def _props(self, obj: vim.ManagedObject, paths: list[str], what: str) -> dict[str, Any]:
        """Properties of one object; NotFound when it does not exist (any more)."""
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=obj, skip=False)],
            propSet=[PC.PropertySpec(type=type(obj), pathSet=paths)],
        )
        try:
            with faults(f"reading {what}"):
                result = self.session.content.propertyCollector.RetrievePropertiesEx(
                    [spec], PC.RetrieveOptions()
                )
        except NotFound:
            raise NotFound(f"{what} does not exist") from None
        if result is None or not result.objects:
            raise NotFound(f"{what} does not exist")
        content = result.objects[0]
        for missing in content.missingSet or []:
            if isinstance(missing.fault, vmodl.fault.ManagedObjectNotFound):
                raise NotFound(f"{what} does not exist")
        return {p.name: p.val for p in content.propSet}

    def get_inventory(self) -> Inventory:
        with faults("reading the vCenter inventory"):
            return self._inventory()

    def _inventory(self) -> Inventory:
        content = self.session.content
        inventory = Inventory()
        shapes: dict[str, tuple[int, float]] = {}
        power: dict[str, str] = {}
        prefix = self.options.metadata_prefix
        # read before the VMs: a move that ends in between leaves the VM pinned one round more,
        # never shown settled on the host it has just left
        moving = self._migrations()
        for dc, dc_props in self._collect(content.rootFolder, {vim.Datacenter: ["name"]}):
            dc_name = dc_props.get("name", dc._moId)
            objects = self._collect(
                dc,
                {
                    vim.ClusterComputeResource: CLUSTER_PATHS,
                    vim.HostSystem: HOST_PATHS,
                    vim.VirtualMachine: VM_PATHS,
                },
            )
            clusters = {o._moId: p for o, p in objects if isinstance(o, vim.ClusterComputeResource)}
            core_mhz: dict[str, float] = {}
            for obj, props in objects:
                if not isinstance(obj, vim.HostSystem):
                    continue
                hardware = props.get("summary.hardware")
                mhz = float(hardware.cpuMhz) if hardware else 0.0
                cores = int(hardware.numCpuCores) if hardware else 0
                memory = float(hardware.memorySize) / convert.MIB if hardware else 0.0
                parent = props.get("parent")
                cluster = clusters.get(parent._moId) if parent is not None else None
                core_mhz[obj._moId] = mhz
                inventory.hosts[obj._moId] = Host(
                    id=obj._moId,
                    name=props.get("name", obj._moId),
                    capacity=Resources(cpu=mhz * cores, memory=memory),
                    cluster=cluster.get("name") if cluster else None,
                    maintenance=bool(props.get("runtime.inMaintenanceMode")),
                    attributes={
                        "datacenter": dc_name,
                        "connection_state": str(props.get("runtime.connectionState", "")),
                        "core_mhz": f"{mhz:g}",
                        "cores": str(cores),
                        **({"cluster_id": parent._moId} if cluster else {}),
                    },
                )
            for obj, props in objects:
                if not isinstance(obj, vim.VirtualMachine) or props.get("config.template"):
                    continue
                vm = self._vm_record(obj, props, core_mhz, prefix, dc_name)
                if vm.id in moving:
                    vm.attributes["migration"] = moving[vm.id].why
                    if vm.state is VMState.ACTIVE:
                        vm.state = VMState.MIGRATING
                        vm.migration_target = moving[vm.id].target
                        vm.migration_waits = moving[vm.id].waits
                inventory.vms[vm.id] = vm
                shapes[vm.id] = (vm.vcpus, vm.size.memory)
                power[vm.id] = vm.attributes["power_state"]
            for cluster_props in clusters.values():
                inventory.rules.extend(_rules(cluster_props.get("configurationEx")))
        self._vm_shape = shapes
        self._power = power
        return inventory

    def scheduled_tasks(self) -> list[tuple[Any, Any]]:
        """(task, info) of every vCenter scheduled task, in one property-collector call."""
        manager = self.session.content.scheduledTaskManager
        if manager is None:
            raise Unsupported("this vCenter has no ScheduledTaskManager")
        traversal = PC.TraversalSpec(
            name="scheduled", path="scheduledTask", skip=False, type=vim.scheduler.ScheduledTaskManager
        )
        spec = PC.FilterSpec(
            objectSet=[PC.ObjectSpec(obj=manager, skip=True, selectSet=[traversal])],
            propSet=[PC.PropertySpec(type=vim.scheduler.ScheduledTask, pathSet=["info"])],
        )
        return [(task, props["info"]) for task, props in self.retrieve(spec) if "info" in props]

    def _migrations(self) -> dict[str, Move]:
        """VM id -> the task moving it, for every move vCenter has queued, is carrying out, or
        holds as a scheduled task that has not run yet, with its target host where one says it.

        vCenter's recent tasks hold every user's queued and running tasks (DRS's too), so one
        property-collector call finds them all; the tasks this driver stopped waiting for are read
        as well, and those that ended are told once (:meth:`_tell_outcomes`). A scheduled
        relocation (the ``vcenter-scheduled`` executor's, or an admin's) counts while it waits,
        also disabled, waiting for an admin: it will move the VM, so no plan should move it first.
        """
        spec = PC.FilterSpec(
            objectSet=[
                PC.ObjectSpec(
                    obj=self.session.content.taskManager,
                    skip=True,
                    selectSet=[
                        PC.TraversalSpec(name="recent", path="recentTask", skip=False, type=vim.TaskManager)
                    ],
                )
            ],
            propSet=[PC.PropertySpec(type=vim.Task, pathSet=TASK_PATHS)],
        )
        moving: dict[str, Move] = {}
        for task, props in self.retrieve(spec):
            entity = props.get("info.entity")
            if (
                props.get("info.descriptionId") in MIGRATION_TASKS
                and props.get("info.state") in _UNFINISHED
                and isinstance(entity, vim.VirtualMachine)
            ):
                moving[entity._moId] = Move(
                    f"task {task._moId} ({props['info.descriptionId']}, {props['info.state']})"
                )
        for vm_id, (task_id, to) in self._tell_outcomes().items():
            _note_move(moving, vm_id, Move(f"task {task_id} (timed out, still running)", to))
        if self.session.content.scheduledTaskManager is not None:
            for task, info in self.scheduled_tasks():
                if (found := _scheduled_move(task, info)) is not None:
                    _note_move(moving, *found)
        return moving

    def _tell_outcomes(self) -> dict[str, tuple[str, str | None]]:
        """Log how the tasks that outlived the wait for them ended; return VM id -> (task id,
        target host) of the moves among them still running."""
        running: dict[str, tuple[str, str | None]] = {}
        for task_id, (task, doing, vm_id, to) in list(self._timed_out.items()):
            try:
                info = self._props(task, ["info"], f"task {task_id}")["info"]
            except NotFound:
                LOG.warning(
                    "%s: task %s timed out earlier and vCenter no longer has it; its outcome is unknown",
                    doing,
                    task_id,
                )
                del self._timed_out[task_id]
                continue
            if info.state == vim.TaskInfo.State.success:
                LOG.info("%s: task %s, which timed out earlier, succeeded", doing, task_id)
            elif info.state == vim.TaskInfo.State.error:
                error = convert.error_from_fault(info.error, doing)
                LOG.warning("%s: task %s, which timed out earlier, failed: %s", doing, task_id, error)
            else:
                if vm_id is not None:
                    running[vm_id] = (task_id, to)
                continue
            del self._timed_out[task_id]
        return running

    @staticmethod
    def _vm_record(
        obj: vim.VirtualMachine,
        props: dict[str, Any],
        core_mhz: dict[str, float],
        prefix: str,
        dc_name: str,
    ) -> VM:
        host = props.get("runtime.host")
        host_id = host._moId if host is not None else None
        vcpus = int(props.get("config.hardware.numCPU") or 1)
        memory_mb = float(props.get("config.hardware.memoryMB") or 0)
        workload, tenant, critical = convert.parse_annotation(props.get("config.annotation"), prefix)
        return VM(
            id=obj._moId,
            name=props.get("name", obj._moId),
            host_id=host_id,
            size=Resources(cpu=vcpus * core_mhz.get(host_id or "", 0.0), memory=memory_mb),
            allocation=convert.allocation_from_vim(
                props.get("config.cpuAllocation"), props.get("config.memoryAllocation"), vcpus
            ),
            vcpus=vcpus,
            tenant=tenant or "default",
            workload=workload,
            critical=critical,
            state=_POWER_STATES.get(str(props.get("runtime.powerState")), VMState.ERROR),
            attributes={
                "datacenter": dc_name,
                "power_state": str(props.get("runtime.powerState", "")),
                "instance_uuid": str(props.get("config.instanceUuid") or ""),
                "cpu_hot_add": str(bool(props.get("config.cpuHotAddEnabled"))).lower(),
                "memory_hot_add": str(bool(props.get("config.memoryHotAddEnabled"))).lower(),
            },
        )

    def _counter_ids(self) -> dict[str, int]:
        if self._counters is None:
            counters = self.session.content.perfManager.perfCounter
            by_name = {convert.counter_name(c): c.key for c in counters}
            missing = [s.counter for s in convert.METRIC_COUNTERS if s.counter not in by_name]
            if missing:
                LOG.warning("vCenter has no performance counters %s; those metrics are skipped", missing)
            self._counters = {
                s.counter: by_name[s.counter] for s in convert.METRIC_COUNTERS if s.counter in by_name
            }
        return self._counters

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        if end <= start:
            return []
        with faults("querying vCenter performance counters"):
            if vm_ids is None or any(v not in self._vm_shape for v in vm_ids):
                self._refresh_shapes()
            if vm_ids is None:
                running = [v for v, state in self._power.items() if state == "poweredOn"]
            else:
                running = list(vm_ids)
            counters = self._counter_ids()
            wanted = set(self.options.metrics)
            specs = [s for s in convert.METRIC_COUNTERS if s.counter in counters and s.metric in wanted]
            by_id = {counters[s.counter]: s for s in specs}
            interval = self.options.perf_interval
            samples_wanted = min(self.options.perf_max_samples, math.ceil((end - start) / interval) + 1)
            metric_ids = [
                vim.PerformanceManager.MetricId(counterId=counters[s.counter], instance="") for s in specs
            ]
            samples: list[MetricSample] = []
            batch = self.options.perf_batch_size
            stub = self.session.stub

            def query(vm_ids: list[str]) -> list[MetricSample]:
                queries = [
                    vim.PerformanceManager.QuerySpec(
                        entity=vim.VirtualMachine(vm_id, stub),
                        intervalId=interval,
                        startTime=_utc(start),
                        endTime=_utc(end),
                        maxSample=samples_wanted,
                        metricId=metric_ids,
                        format="csv",
                    )
                    for vm_id in vm_ids
                ]
                found: list[MetricSample] = []
                for entity in self._query_perf(queries):
                    found.extend(self._samples(entity, by_id, start, end))
                return found

            batches = [running[i : i + batch] for i in range(0, len(running), batch)]
            # vCenter answers batches in parallel; the pool overlaps its work with our parsing
            with ThreadPoolExecutor(max_workers=self.options.perf_workers) as pool:
                for found in pool.map(query, batches):
                    samples.extend(found)
        samples.sort(key=lambda s: (s.timestamp, s.vm_id, s.metric))
        return samples

    def _query_perf(self, queries: list[Any]) -> list[Any]:
        """QueryPerf, leaving out VMs deleted since they were listed (one call per VM only then)."""
        manager = self.session.content.perfManager
        try:
            return list(manager.QueryPerf(queries) or [])
        except vmodl.fault.ManagedObjectNotFound:
            found = []
            for query in queries:
                try:
                    found.extend(manager.QueryPerf([query]) or [])
                except vmodl.fault.ManagedObjectNotFound:
                    LOG.info("VM %s vanished before its metrics were read", query.entity._moId)
            return found

    def _samples(
        self, entity: Any, by_id: dict[int, convert.CounterSpec], start: float, end: float
    ) -> list[MetricSample]:
        vm_id = entity.entity._moId
        vcpus, memory_mb = self._vm_shape.get(vm_id, (1, 0.0))
        default_interval = float(self.options.perf_interval)
        if isinstance(entity, vim.PerformanceManager.EntityMetricCSV):
            infos = convert.parse_sample_info_csv(entity.sampleInfoCSV, default_interval)
        else:
            infos = [
                (info.timestamp.timestamp(), float(info.interval or default_interval))
                for info in entity.sampleInfo or []
            ]
        out = []
        for series in entity.value or []:
            spec = by_id.get(series.id.counterId)
            if spec is None or series.id.instance:
                continue
            values = (
                convert.parse_values_csv(series.value)
                if isinstance(series.value, str)
                else [float(v) for v in series.value]
            )
            metric = str(spec.metric)
            # a guest's active memory never exceeds its configured memory (the simulator's does)
            is_memory = spec.metric == Metric.MEMORY
            for (ts, interval), raw in zip(infos, values, strict=False):
                if raw < 0 or not start <= ts < end:
                    continue  # -1 marks a missing sample
                value = spec.convert(raw, interval, vcpus)
                if is_memory and memory_mb > 0:
                    value = min(value, memory_mb)
                out.append(MetricSample(vm_id=vm_id, timestamp=ts, metric=metric, value=value))
        return out

    def _refresh_shapes(self) -> None:
        self._vm_shape = {}
        self._power = {}
        for obj, props in self._collect(
            self.session.content.rootFolder,
            {
                vim.VirtualMachine: [
                    "config.hardware.numCPU",
                    "config.hardware.memoryMB",
                    "runtime.powerState",
                ]
            },
        ):
            self._vm_shape[obj._moId] = (
                int(props.get("config.hardware.numCPU") or 1),
                float(props.get("config.hardware.memoryMB") or 0),
            )
            self._power[obj._moId] = str(props.get("runtime.powerState"))

    def get_events(self, start: float, end: float) -> list[Event]:
        if end <= start:
            return []
        spec = vim.event.EventFilterSpec(
            time=vim.event.EventFilterSpec.ByTime(beginTime=_utc(start), endTime=_utc(end)),
            eventTypeId=convert.EVENT_TYPE_IDS,
            maxCount=EVENTS_MAX,
        )
        events: list[Event] = []
        raw: list[Any] = []
        with faults("reading vCenter events"):
            collector = self.session.content.eventManager.CreateCollectorForEvents(spec)
            try:
                while page := collector.ReadNextEvents(EVENTS_PAGE):
                    raw.extend(page)
            finally:
                collector.DestroyCollector()
        for item in raw:
            event = convert.event_from_vim(item)
            if event is not None and start <= event.timestamp < end:
                events.append(event)
        events.sort(key=lambda e: e.timestamp)
        return events

    # -- acting ---------------------------------------------------------------------------------

    def _vm(self, vm_id: str) -> vim.VirtualMachine:
        return vim.VirtualMachine(vm_id, self.session.stub)

    def _host(self, host_id: str) -> vim.HostSystem:
        return vim.HostSystem(host_id, self.session.stub)

    def task_limit(self, timeout: float | None) -> float:
        """Seconds a task may take: ``task_timeout``, or the caller's (the executor's step timeout)
        when that is shorter; a longer step timeout does not lift the operator's task timeout."""
        limit = float(self.options.task_timeout)
        return limit if timeout is None else min(limit, timeout)

    def wait_for_task(
        self,
        task: vim.Task,
        timeout: float | None,
        doing: str,
        moves: str | None = None,
        to: str | None = None,
    ) -> Any:
        """Poll a task until it ends; TimedOut (outcome unknown) after :meth:`task_limit` seconds.

        vCenter carries on with a task nobody waits for, so one that timed out is remembered: the
        inventory shows the VM it ``moves`` as migrating (to host ``to``) until it ends, then logs
        its outcome.
        """
        limit = self.task_limit(timeout)
        deadline = time.monotonic() + limit
        poll = self.options.poll_interval
        while True:
            with faults(doing):
                info = task.info
            if info.state == vim.TaskInfo.State.success:
                return info.result
            if info.state == vim.TaskInfo.State.error:
                raise convert.error_from_fault(info.error, doing)
            if time.monotonic() >= deadline:
                self._timed_out[task._moId] = (task, doing, moves, to)
                raise TimedOut(
                    f"{doing}: task {task._moId} still {info.state} after {limit:g} s; its outcome is unknown"
                )
            time.sleep(min(poll, max(0.0, deadline - time.monotonic())))

    def outcome_later(self, unknown: str) -> str | None:
        """How the vCenter task that a :class:`TimedOut` from :meth:`wait_for_task` names ended.

        vCenter keeps a finished task only for a while (minutes, in its recent tasks); once it has
        dropped it, the outcome stays unknown, and that is what this says."""
        named = _TIMED_OUT_TASK.search(unknown)
        if named is None:
            return None
        task_id = named.group(1)
        try:
            info = self._props(vim.Task(task_id, self.session.stub), ["info"], f"task {task_id}")["info"]
        except NotFound:
            return f"vCenter no longer has task {task_id}: its outcome stays unknown"
        except DriverError as exc:
            LOG.debug("the outcome of task %s is looked for again later: %s", task_id, exc)
            return None
        if info.state == vim.TaskInfo.State.success:
            at = info.completeTime.isoformat() if info.completeTime else "?"
            return f"vCenter task {task_id} succeeded at {at}"
        if info.state == vim.TaskInfo.State.error:
            error = convert.error_from_fault(info.error, f"task {task_id}")
            return f"vCenter task {task_id} failed: {type(error).__name__}: {error}"
        return None

    def relocate_spec(self, vm_id: str, target_host_id: str) -> vim.vm.RelocateSpec | None:
        """The RelocateSpec that moves a VM to a host (with the target's resource pool when it is
        in another cluster); None when the VM already runs there."""
        doing = f"live-migrating VM {vm_id} to host {target_host_id}"
        vm_props = self._props(self._vm(vm_id), ["runtime.host"], f"VM {vm_id}")
        target = self._host(target_host_id)
        host_props = self._props(target, ["parent", "runtime.inMaintenanceMode"], f"host {target_host_id}")
        current = vm_props.get("runtime.host")
        if current is not None and current._moId == target_host_id:
            return None
        if host_props.get("runtime.inMaintenanceMode"):
            raise ActionFailed(f"{doing}: the target host is in maintenance mode")
        spec = vim.vm.RelocateSpec(host=target)
        current_parent = (
            self._props(current, ["parent"], f"host {current._moId}").get("parent")
            if current is not None
            else None
        )
        target_parent = host_props.get("parent")
        if target_parent is not None and (
            current_parent is None or current_parent._moId != target_parent._moId
        ):
            with faults(doing):
                spec.pool = target_parent.resourcePool
        return spec

    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        doing = f"live-migrating VM {vm_id} to host {target_host_id}"
        spec = self.relocate_spec(vm_id, target_host_id)
        if spec is None:
            return
        with faults(doing):
            task = self._vm(vm_id).RelocateVM_Task(spec)
        self.wait_for_task(task, timeout, doing, moves=vm_id, to=target_host_id)
        after = self._props(self._vm(vm_id), ["runtime.host"], f"VM {vm_id}").get("runtime.host")
        if after is None or after._moId != target_host_id:
            raise ActionFailed(f"{doing}: the task succeeded but the VM runs on {after}")

    def _reconfigure(self, vm_id: str, spec: vim.vm.ConfigSpec, timeout: float | None, doing: str) -> None:
        with faults(doing):
            task = self._vm(vm_id).ReconfigVM_Task(spec)
        self.wait_for_task(task, timeout, doing)

    def resize_spec(
        self, vm_id: str, size: Resources, allow_power_cycle: bool
    ) -> tuple[vim.vm.ConfigSpec, bool] | None:
        """The ConfigSpec of a resize and whether it needs a power cycle; None when the VM
        already has that size. Unsupported when a running VM cannot take it and power cycles
        are not allowed."""
        doing = f"resizing VM {vm_id}"
        if not (size.cpu > 0 and size.memory > 0):  # NaN fails this too
            raise ActionFailed(f"{doing}: a size needs positive CPU and memory, got {size}")
        props = self._props(
            self._vm(vm_id),
            [
                "name",
                "runtime.host",
                "runtime.powerState",
                "config.hardware.numCPU",
                "config.hardware.memoryMB",
                "config.cpuHotAddEnabled",
                "config.cpuHotRemoveEnabled",
                "config.memoryHotAddEnabled",
            ],
            f"VM {vm_id}",
        )
        host = props.get("runtime.host")
        core_mhz = 0.0
        if host is not None:
            hardware = self._props(host, ["summary.hardware"], f"host {host._moId}").get("summary.hardware")
            core_mhz = float(hardware.cpuMhz) if hardware else 0.0
        if core_mhz <= 0:
            raise ActionFailed(f"{doing}: the MHz of the VM's host are unknown")
        vcpus = max(1, math.ceil(size.cpu / core_mhz - 1e-6))
        memory_mb = int(math.ceil(size.memory / 4.0) * 4)
        current_vcpus = int(props.get("config.hardware.numCPU") or 1)
        current_mb = int(props.get("config.hardware.memoryMB") or 0)
        if vcpus == current_vcpus and memory_mb == current_mb:
            return None
        blockers = []
        if str(props.get("runtime.powerState")) == "poweredOn":
            if vcpus > current_vcpus and not props.get("config.cpuHotAddEnabled"):
                blockers.append("CPU hot-add is disabled")
            if vcpus < current_vcpus and not props.get("config.cpuHotRemoveEnabled"):
                blockers.append("CPU hot-remove is disabled")
            if memory_mb > current_mb and not props.get("config.memoryHotAddEnabled"):
                blockers.append("memory hot-add is disabled")
            if memory_mb < current_mb:
                blockers.append("memory cannot be removed from a running VM")
        detail = f"{current_vcpus}->{vcpus} vCPUs, {current_mb}->{memory_mb} MiB"
        if blockers and not allow_power_cycle:
            raise Unsupported(
                f"{doing} ({props.get('name', vm_id)}, {detail}) while it runs: "
                f"{', '.join(blockers)}; set [vsphere] allow_power_cycle = true to let the driver "
                "power it off and on"
            )
        return vim.vm.ConfigSpec(numCPUs=vcpus, memoryMB=memory_mb), bool(blockers)

    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        doing = f"resizing VM {vm_id}"
        planned = self.resize_spec(vm_id, size, self.options.allow_power_cycle)
        if planned is None:
            return
        spec, power_cycle = planned
        if not power_cycle:
            self._reconfigure(vm_id, spec, timeout, doing)
            return
        LOG.warning("power-cycling VM %s to resize it", vm_id)
        with faults(doing):
            off = self._vm(vm_id).PowerOffVM_Task()
        self.wait_for_task(off, timeout, f"{doing}: powering off")
        try:
            self._reconfigure(vm_id, spec, timeout, doing)
        finally:
            with faults(doing):
                on = self._vm(vm_id).PowerOnVM_Task()
            self.wait_for_task(on, timeout, f"{doing}: powering on")

    def allocation_spec(self, vm_id: str, allocation: Allocation) -> vim.vm.ConfigSpec:
        """The ConfigSpec that sets shares, reservations and limits of a VM."""
        props = self._props(
            self._vm(vm_id), ["config.hardware.numCPU", "config.hardware.memoryMB"], f"VM {vm_id}"
        )
        cpu, memory = convert.allocation_to_vim(
            allocation,
            int(props.get("config.hardware.numCPU") or 1),
            float(props.get("config.hardware.memoryMB") or 0),
        )
        return vim.vm.ConfigSpec(cpuAllocation=cpu, memoryAllocation=memory)

    def set_allocation(self, vm_id: str, allocation: Allocation, timeout: float | None = None) -> None:
        spec = self.allocation_spec(vm_id, allocation)
        self._reconfigure(vm_id, spec, timeout, f"changing the allocation of VM {vm_id}")

    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        doing = f"{'entering' if enabled else 'leaving'} maintenance mode on host {host_id}"
        host = self._host(host_id)
        props = self._props(host, ["runtime.inMaintenanceMode"], f"host {host_id}")
        if bool(props.get("runtime.inMaintenanceMode")) == enabled:
            return
        limit = self.task_limit(timeout)
        with faults(doing):
            if enabled:
                task = host.EnterMaintenanceMode_Task(timeout=int(limit), evacuatePoweredOffVms=False)
            else:
                task = host.ExitMaintenanceMode_Task(timeout=int(limit))
        self.wait_for_task(task, timeout, doing)
        after = self._props(host, ["runtime.inMaintenanceMode"], f"host {host_id}")
        if bool(after.get("runtime.inMaintenanceMode")) != enabled:
            raise ActionFailed(f"{doing}: the task succeeded but the host did not change")


def _note_move(moving: dict[str, Move], vm_id: str, move: Move) -> None:
    """Record ``move`` of ``vm_id`` unless one is known: the first found describes it; a later
    one that names the target host (a scheduled task running as a recent task) fills it in."""
    known = moving.get(vm_id)
    if known is None:
        moving[vm_id] = move
    elif known.target is None and move.target is not None:
        moving[vm_id] = known._replace(target=move.target)


def _scheduled_move(task: Any, info: Any) -> tuple[str, Move] | None:
    """(VM id, move) of a scheduled task that will relocate a VM and has not run yet."""
    action = info.action
    if not isinstance(action, vim.action.MethodAction) or not isinstance(info.entity, vim.VirtualMachine):
        return None
    method = getattr(getattr(action.name, "info", None), "wsdlName", action.name)
    if method not in MIGRATION_METHODS or info.state not in _UNFINISHED:
        return None
    spec = action.argument[0].value if action.argument else None
    host = getattr(spec, "host", None)
    where = f" to host {host._moId}" if host is not None else ""
    if not info.enabled:
        when = "disabled: waits for an admin"
    else:
        at = info.nextRunTime or getattr(info.scheduler, "runAt", None)
        when = f"at {at.isoformat()}" if at is not None else "enabled"
    why = f"scheduled task {task._moId}{where} ({info.state}, {when})"
    waits = info.state != vim.TaskInfo.State.running
    return info.entity._moId, Move(why, host._moId if host is not None else None, waits)


def _rules(config: Any) -> list[AffinityRule]:
    """DRS VM-VM affinity and anti-affinity rules of a cluster."""
    rules: list[AffinityRule] = []
    for rule in getattr(config, "rule", None) or []:
        if rule.enabled is False:
            continue
        if isinstance(rule, vim.cluster.AffinityRuleSpec):
            kind = RuleKind.AFFINITY
        elif isinstance(rule, vim.cluster.AntiAffinityRuleSpec):
            kind = RuleKind.ANTI_AFFINITY
        else:
            continue
        rules.append(
            AffinityRule(
                name=rule.name or f"rule-{rule.key}",
                kind=kind,
                vm_ids=frozenset(v._moId for v in rule.vm or []),
                hard=bool(rule.mandatory),
            )
        )
    return rules
