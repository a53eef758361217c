"""A stateful Hyper-V behind the WS-Management server.

It keeps hosts (with cluster membership, node state and a registry), VMs (processor, memory,
allocation, placement, demand) and serves the cmdlets the hyperv driver's scripts call. Scripts
are parsed by :mod:`pwsh` and run against these cmdlets, so a ``Move-VM`` changes what the next
``Get-VM`` returns. Every script text, stdin payload and cmdlet call is recorded for tests.

Behaviour copied from Hyper-V where it matters to the driver: the processor count of a running VM
cannot change; memory is set in multiples of 2 MB; a dynamic-memory VM's startup memory cannot
change while it runs; counter paths and instance names come back lower-cased.

A live migration is visible on its source host the way Hyper-V shows it while it runs: a
``Msvm_MigrationJob`` (``root\\virtualization\\v2``; Microsoft's class reference lists its
``VirtualSystemName``, ``DestinationHost``, ``JobState`` and ``PercentComplete``) with the CIM job
state Running (4) until it ends, then Completed (7) or Exception (10); and the VM's
``OperationalStatus`` from ``Get-VM`` reads ``Ok, MigratingVirtualMachine`` (2, 32774, the
``VMOperationalStatus`` values of the Hyper-V module) instead of ``Ok``. ``Move-VM`` and
``Move-ClusterVirtualMachineRole`` hold such a job for ``migration_seconds``, and go on when the
client stops waiting; :meth:`HyperVResponder.begin_migration` starts one the driver did not start
(Failover Cluster, SCVMM, an operator).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from . import pwsh
from .pwsh import CIDict, Invocation, PSEnum, PSError, as_list

MB = 1024 * 1024

VM_STATES = {"Other": 1, "Running": 2, "Off": 3, "Stopping": 4, "Saved": 6, "Paused": 9, "Starting": 10}
NODE_STATES = {"Up": 0, "Down": 1, "Paused": 2, "Joining": 3}
#: CIM_ConcreteJob.JobState values a migration job passes through
JOB_RUNNING, JOB_COMPLETED, JOB_EXCEPTION = 4, 7, 10
OPERATIONAL_OK = PSEnum("Ok", 2)
OPERATIONAL_MIGRATING = PSEnum("MigratingVirtualMachine", 32774)
VIRTUALIZATION_NAMESPACE = "root\\virtualization\\v2"
BASE_WAIT_NS = 8000.0


@dataclass
class HostState:
    name: str
    logical_processors: int = 16
    memory_bytes: int = 64 * 1024 * MB
    clock_mhz: int = 2400
    cluster: str | None = None
    node_state: str = "Up"
    registry: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def cpu_capacity_mhz(self) -> float:
        return float(self.logical_processors * self.clock_mhz)


@dataclass
class VMState:
    id: str
    name: str
    host: str
    state: str = "Running"
    processor_count: int = 2
    reserve: int = 0
    maximum: int = 100
    relative_weight: int = 100
    startup_bytes: int = 4096 * MB
    dynamic_memory: bool = False
    minimum_bytes: int = 512 * MB
    maximum_bytes: int = 1024 * 1024 * MB
    memory_priority: int = 50
    clustered: bool = False
    metering: bool = True
    cpu_demand_mhz: float = 500.0
    memory_demand_mb: float = 1024.0
    disk_kibps: float = 100.0
    network_kibps: float = 50.0
    metering_started: float = field(default_factory=lambda: time.time() - 3600.0)

    @property
    def assigned_bytes(self) -> int:
        if self.state != "Running":
            return 0
        if not self.dynamic_memory:
            return self.startup_bytes
        wanted = int(self.memory_demand_mb * 1.2) * MB
        return max(self.minimum_bytes, min(self.maximum_bytes, wanted))


@dataclass
class MigrationJob:
    """One Msvm_MigrationJob on the source host of a live migration."""

    vm_id: str
    source: str
    destination: str
    job_state: int = JOB_RUNNING
    percent: int = 0

    @property
    def running(self) -> bool:
        return self.job_state == JOB_RUNNING


class HyperVResponder:
    """The simulated Hyper-V site; thread-safe, one lock for all state."""

    def __init__(self) -> None:
        self.hosts: dict[str, HostState] = {}
        self.vms: dict[str, VMState] = {}
        self.lock = threading.RLock()
        self.scripts: list[str] = []
        self.stdin_payloads: list[str] = []
        self.command_lines: list[str] = []
        self.calls: list[str] = []
        self.migration_seconds = 0.0
        self.failures: dict[str, str] = {}
        self.migration_jobs: list[MigrationJob] = []
        #: host name -> how migration jobs to it name it, e.g. an address (default: its name)
        self.job_destinations: dict[str, str] = {}

    # ------------------------------------------------------------ set-up helpers for tests

    def add_host(self, name: str, **kwargs: Any) -> HostState:
        with self.lock:
            host = HostState(name=name, **kwargs)
            self.hosts[name.lower()] = host
            return host

    def add_vm(self, name: str, host: str, vm_id: str | None = None, **kwargs: Any) -> VMState:
        with self.lock:
            vm = VMState(
                id=(vm_id or str(uuid.uuid4())).lower(), name=name, host=self.host(host).name, **kwargs
            )
            self.vms[vm.id] = vm
            return vm

    def begin_migration(
        self, vm_id: str, target: str, percent: int = 45, destination: str | None = None
    ) -> MigrationJob:
        """A live migration someone else started, running until :meth:`end_migration`;
        ``destination`` is how the job names the target (e.g. its FQDN), by default its name."""
        with self.lock:
            vm = self.vm_by_id(vm_id)
            job = MigrationJob(vm.id, vm.host, destination or self.host(target).name, percent=percent)
            self.migration_jobs.append(job)
            return job

    def end_migration(self, job: MigrationJob, target: str | None = None) -> None:
        """End a migration: the VM lands on ``target`` (Completed), or stays (Exception)."""
        with self.lock:
            if target is None:
                job.job_state = JOB_EXCEPTION
                return
            self.vm_by_id(job.vm_id).host = self.host(target).name
            job.job_state, job.percent = JOB_COMPLETED, 100

    def fail_next(self, cmdlet: str, message: str) -> None:
        """Make the next call of ``cmdlet`` fail with ``message`` (a PowerShell error)."""
        with self.lock:
            self.failures[cmdlet.lower()] = message

    def host(self, name: str) -> HostState:
        host = self.hosts.get(str(name).lower())
        if host is None:
            raise PSError(
                f"The computer '{name}' could not be resolved. Make sure you typed the "
                "machine name correctly.",
                "ObjectNotFound",
                "InvalidParameter",
            )
        return host

    def vm_by_id(self, vm_id: str) -> VMState:
        vm = self.vms.get(str(vm_id).lower())
        if vm is None:
            raise PSError(
                f'Hyper-V was unable to find a virtual machine with ID "{vm_id}".',
                "InvalidArgument",
                "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
            )
        return vm

    # ------------------------------------------------------------ script execution

    def execute(self, command_line: str, stdin: str) -> tuple[bytes, bytes, int]:
        """Run one ``powershell.exe -EncodedCommand`` command; returns stdout, stderr, exit code."""
        try:
            script = _decode_command_line(command_line)
        except (PSError, ValueError) as exc:
            return b"", _clixml(f"powershell.exe: {exc}"), 1
        with self.lock:
            self.command_lines.append(command_line)
            self.scripts.append(script)
            self.stdin_payloads.append(stdin)
        try:
            statements = pwsh.parse(script)
        except pwsh.ParseError as exc:
            return b"", _clixml(f"ParserError: {exc}"), 1
        interpreter = pwsh.Interpreter(self.cmdlets(), stdin=stdin)
        try:
            output = interpreter.run(statements)
        except PSError as exc:
            return b"", _clixml(exc.message), 1
        finally:
            with self.lock:
                self.calls.extend(interpreter.calls)
        text = "\r\n".join(_to_text(item) for item in output)
        return (text + "\r\n").encode("utf-8") if text else b"", b"", 0

    def cmdlets(self) -> dict[str, pwsh.CmdletFunction]:
        table = {
            "ConvertFrom-Json": _convert_from_json,
            "ConvertTo-Json": _convert_to_json,
            "Out-String": _out_string,
            "Select-Object": _select_object,
            "Where-Object": _where_object,
            "Get-ClusterNode": self.get_cluster_node,
            "Suspend-ClusterNode": self.suspend_cluster_node,
            "Resume-ClusterNode": self.resume_cluster_node,
            "Get-VMHost": self.get_vmhost,
            "Get-CimInstance": self.get_cim_instance,
            "Get-VM": self.get_vm,
            "Get-VMProcessor": self.get_vmprocessor,
            "Get-VMMemory": self.get_vmmemory,
            "Set-VMProcessor": self.set_vmprocessor,
            "Set-VMMemory": self.set_vmmemory,
            "Move-VM": self.move_vm,
            "Move-ClusterVirtualMachineRole": self.move_cluster_role,
            "Stop-VM": self.stop_vm,
            "Start-VM": self.start_vm,
            "Invoke-Command": self.invoke_command,
            "New-Item": self.new_item,
            "New-ItemProperty": self.new_item_property,
            "Get-ItemProperty": self.get_item_property,
            "Get-Counter": self.get_counter,
            "Measure-VM": self.measure_vm,
        }
        return {name: self._guarded(name, fn) for name, fn in table.items()}

    def _guarded(self, name: str, fn: pwsh.CmdletFunction) -> pwsh.CmdletFunction:
        def call(invocation: Invocation) -> Iterable[Any]:
            with self.lock:
                message = self.failures.pop(name.lower(), None)
            if message is not None:
                raise PSError(message, "NotSpecified", f"InjectedFailure,{name}")
            return fn(invocation)

        return call

    # ------------------------------------------------------------ cluster

    def _cluster_hosts(self, cluster: str) -> list[HostState]:
        hosts = [h for h in self.hosts.values() if (h.cluster or "").lower() == str(cluster).lower()]
        if not hosts:
            raise PSError(
                f"The cluster '{cluster}' could not be found.",
                "ObjectNotFound",
                "Get-ClusterNode,Microsoft.FailoverClusters.PowerShell.GetNodeCommand",
            )
        return hosts

    def _cluster_node(self, invocation: Invocation) -> HostState:
        name = str(invocation.get("Name"))
        for host in self._cluster_hosts(invocation.get("Cluster")):
            if host.name.lower() == name.lower():
                return host
        raise PSError(f"The cluster node '{name}' was not found.", "ObjectNotFound", "ClusterNode")

    def get_cluster_node(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            hosts = self._cluster_hosts(invocation.get("Cluster"))
            if invocation.has("Name"):
                hosts = [self._cluster_node(invocation)]
            return [
                CIDict(Name=h.name, State=PSEnum(h.node_state, NODE_STATES[h.node_state]), Cluster=h.cluster)
                for h in hosts
            ]

    def suspend_cluster_node(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            node = self._cluster_node(invocation)
            node.node_state = "Paused"
            if invocation.has("Drain"):
                targets = [
                    h
                    for h in self._cluster_hosts(node.cluster or "")
                    if h.node_state == "Up" and h is not node
                ]
                for vm in self.vms.values():
                    if vm.host == node.name and vm.clustered:
                        if not targets:
                            raise PSError("No node is available to drain to.", "ResourceUnavailable")
                        vm.host = min(targets, key=self._used_mhz).name
            return [CIDict(Name=node.name, State=PSEnum("Paused", 2))]

    def resume_cluster_node(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            node = self._cluster_node(invocation)
            node.node_state = "Up"
            return [CIDict(Name=node.name, State=PSEnum("Up", 0))]

    # ------------------------------------------------------------ hosts and VMs

    def _computers(self, invocation: Invocation) -> list[HostState]:
        names = as_list(invocation.get("ComputerName"))
        if not names and invocation.interpreter.computer:
            names = [invocation.interpreter.computer]
        return [self.host(n) for n in names]

    def get_vmhost(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            return [
                CIDict(
                    ComputerName=h.name,
                    Name=h.name,
                    LogicalProcessorCount=h.logical_processors,
                    MemoryCapacity=h.memory_bytes,
                )
                for h in self._computers(invocation)
            ]

    def get_cim_instance(self, invocation: Invocation) -> list[Any]:
        class_name = str(invocation.get("ClassName")).lower()
        namespace = str(invocation.get("Namespace", "root\\cimv2")).lower()
        if class_name == "msvm_migrationjob" and namespace == VIRTUALIZATION_NAMESPACE:
            return self._migration_job_instances(invocation)
        if class_name != "win32_processor" or namespace != "root\\cimv2":
            raise PSError(f'Invalid class "{invocation.get("ClassName")}"', "ObjectNotFound")
        with self.lock:
            return [
                CIDict(
                    PSComputerName=h.name,
                    MaxClockSpeed=h.clock_mhz,
                    NumberOfLogicalProcessors=h.logical_processors,
                )
                for h in self._computers(invocation)
            ]

    def _migration_job_instances(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            computers = {h.name for h in self._computers(invocation)}
            return [
                CIDict(
                    PSComputerName=job.source,
                    VirtualSystemName=job.vm_id.upper(),
                    DestinationHost=job.destination,
                    JobState=job.job_state,
                    PercentComplete=job.percent,
                )
                for job in self.migration_jobs
                if job.source in computers
            ]

    def _migrating(self, vm: VMState) -> bool:
        return any(j.running and j.vm_id == vm.id and j.source == vm.host for j in self.migration_jobs)

    def _vm_object(self, vm: VMState) -> CIDict:
        return CIDict(
            VMId=vm.id,
            Id=vm.id,
            VMName=vm.name,
            Name=vm.name,
            ComputerName=vm.host,
            State=PSEnum(vm.state, VM_STATES[vm.state]),
            OperationalStatus=[OPERATIONAL_OK, *([OPERATIONAL_MIGRATING] if self._migrating(vm) else [])],
            ProcessorCount=vm.processor_count,
            MemoryStartup=vm.startup_bytes,
            MemoryAssigned=vm.assigned_bytes,
            DynamicMemoryEnabled=vm.dynamic_memory,
            IsClustered=vm.clustered,
            ResourceMeteringEnabled=vm.metering,
        )

    def get_vm(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            computers = {h.name for h in self._computers(invocation)}
            vms = [vm for vm in self.vms.values() if vm.host in computers]
            if invocation.has("Id"):
                wanted = str(invocation.get("Id")).lower()
                vms = [vm for vm in vms if vm.id == wanted]
                if not vms:
                    self.vm_by_id(wanted)
                    raise PSError(
                        f'Hyper-V was unable to find a virtual machine with ID "{wanted}".',
                        "InvalidArgument",
                        "InvalidParameter",
                    )
            return [self._vm_object(vm) for vm in vms]

    def _target_vms(self, invocation: Invocation) -> list[VMState]:
        if invocation.has("VM"):
            objects = as_list(invocation.get("VM"))
        elif invocation.pipeline_input is not None:
            objects = as_list(invocation.pipeline_input)
        else:
            objects = []
        if not objects and invocation.pipeline_input is None:
            raise PSError("Cannot validate argument on parameter 'VM'.", "InvalidData")
        return [self.vm_by_id(obj.lookup("VMId")) for obj in objects]

    def get_vmprocessor(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            return [
                CIDict(
                    VMId=vm.id,
                    VMName=vm.name,
                    Count=vm.processor_count,
                    Reserve=vm.reserve,
                    Maximum=vm.maximum,
                    RelativeWeight=vm.relative_weight,
                )
                for vm in self._target_vms(invocation)
            ]

    def get_vmmemory(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            return [
                CIDict(
                    VMId=vm.id,
                    VMName=vm.name,
                    Startup=vm.startup_bytes,
                    DynamicMemoryEnabled=vm.dynamic_memory,
                    Minimum=vm.minimum_bytes,
                    Maximum=vm.maximum_bytes,
                    Priority=vm.memory_priority,
                )
                for vm in self._target_vms(invocation)
            ]

    def set_vmprocessor(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            for vm in self._target_vms(invocation):
                if invocation.has("Count"):
                    count = int(invocation.get("Count"))
                    host = self.host(vm.host)
                    if vm.state != "Off" and count != vm.processor_count:
                        raise PSError(
                            f"'{vm.name}' failed to modify device 'Processor'. The "
                            "processor count cannot be changed while the virtual "
                            "machine is running.",
                            "InvalidOperation",
                        )
                    if not 1 <= count <= host.logical_processors:
                        raise PSError(
                            f"The processor count {count} is not valid for this host.", "InvalidArgument"
                        )
                    vm.processor_count = count
                for parameter, attribute, low, high in (
                    ("Reserve", "reserve", 0, 100),
                    ("Maximum", "maximum", 0, 100),
                    ("RelativeWeight", "relative_weight", 0, 10000),
                ):
                    if invocation.has(parameter):
                        value = int(invocation.get(parameter))
                        if not low <= value <= high:
                            raise PSError(
                                f"The value {value} of {parameter} is out of range {low}..{high}.",
                                "InvalidArgument",
                            )
                        setattr(vm, attribute, value)
                if vm.reserve > vm.maximum:
                    raise PSError("The reserve cannot exceed the maximum.", "InvalidArgument")
            return []

    def set_vmmemory(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            for vm in self._target_vms(invocation):
                changes: dict[str, int] = {}
                for parameter, attribute in (
                    ("StartupBytes", "startup_bytes"),
                    ("MinimumBytes", "minimum_bytes"),
                    ("MaximumBytes", "maximum_bytes"),
                ):
                    if invocation.has(parameter):
                        value = int(invocation.get(parameter))
                        if value <= 0 or value % (2 * MB):
                            raise PSError(
                                f"Invalid memory value {value}: memory must be a multiple of 2 MB.",
                                "InvalidArgument",
                            )
                        changes[attribute] = value
                if "startup_bytes" in changes and vm.dynamic_memory and vm.state == "Running":
                    raise PSError(
                        f"'{vm.name}' failed to modify memory: the startup memory of a "
                        "running VM with dynamic memory cannot change.",
                        "InvalidOperation",
                    )
                minimum = changes.get("minimum_bytes", vm.minimum_bytes)
                maximum = changes.get("maximum_bytes", vm.maximum_bytes)
                startup = changes.get("startup_bytes", vm.startup_bytes)
                if vm.dynamic_memory and not minimum <= startup <= maximum:
                    raise PSError(
                        "The startup memory must lie between the minimum and maximum.", "InvalidArgument"
                    )
                host = self.host(vm.host)
                if startup > host.memory_bytes:
                    raise PSError(
                        "Not enough memory in the system to start the virtual machine.", "ResourceUnavailable"
                    )
                for attribute, value in changes.items():
                    setattr(vm, attribute, value)
                if invocation.has("Priority"):
                    vm.memory_priority = int(invocation.get("Priority"))
            return []

    def _migrate(self, vm: VMState, target_name: str) -> None:
        target = self.host(target_name)
        if vm.host.lower() == target.name.lower():
            raise PSError(
                f"The virtual machine '{vm.name}' is already on host '{target.name}'.", "InvalidOperation"
            )
        if target.node_state != "Up":
            raise PSError(
                f"Host '{target.name}' is paused and accepts no virtual machines.", "InvalidOperation"
            )
        if vm.startup_bytes + self._used_bytes(target) > target.memory_bytes:
            raise PSError(
                f"There is not enough memory on '{target.name}' for '{vm.name}'.", "ResourceUnavailable"
            )
        vm.host = target.name

    def _live_migration(self, vm: VMState, target_name: str) -> None:
        """Migrate as Hyper-V does: a running job on the source for ``migration_seconds``."""
        with self.lock:
            target = self.host(target_name).name
            job = MigrationJob(vm.id, vm.host, self.job_destinations.get(target, target))
            self.migration_jobs.append(job)
        time.sleep(self.migration_seconds)
        with self.lock:
            try:
                self._migrate(vm, target_name)
            except PSError:
                job.job_state = JOB_EXCEPTION
                raise
            job.job_state, job.percent = JOB_COMPLETED, 100

    def move_vm(self, invocation: Invocation) -> list[Any]:
        for vm in self._target_vms(invocation):
            self._live_migration(vm, str(invocation.get("DestinationHost")))
        return []

    def move_cluster_role(self, invocation: Invocation) -> list[Any]:
        vm = self.vm_by_id(str(invocation.get("VMId")))
        if not vm.clustered:
            raise PSError(f"The virtual machine '{vm.name}' is not a cluster role.", "ObjectNotFound")
        node = self._cluster_node(CIDictInvocation(invocation, Name=invocation.get("Node")))
        self._live_migration(vm, node.name)
        return [CIDict(Name=vm.name, OwnerNode=node.name, State=PSEnum("Online", 3))]

    def stop_vm(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            for vm in self._target_vms(invocation):
                vm.state = "Off"
            return []

    def start_vm(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            for vm in self._target_vms(invocation):
                vm.state = "Running"
            return []

    def _used_mhz(self, host: HostState) -> float:
        return sum(vm.cpu_demand_mhz for vm in self.vms.values() if vm.host == host.name)

    def _used_bytes(self, host: HostState) -> int:
        return sum(
            vm.startup_bytes for vm in self.vms.values() if vm.host == host.name and vm.state == "Running"
        )

    # ------------------------------------------------------------ remoting and registry

    def invoke_command(self, invocation: Invocation) -> list[Any]:
        block = invocation.get("ScriptBlock")
        if not isinstance(block, pwsh.ScriptBlock):
            raise PSError("Invoke-Command needs -ScriptBlock.", "InvalidArgument")
        output: list[Any] = []
        interpreter = invocation.interpreter
        for host in self._computers(invocation):
            interpreter.computer = host.name
            try:
                for item in interpreter.run_scriptblock(block, as_list(invocation.get("ArgumentList"))):
                    if isinstance(item, CIDict):
                        item = CIDict(item, PSComputerName=host.name)
                    output.append(item)
            finally:
                interpreter.computer = None
        return output

    def _registry(self, invocation: Invocation) -> dict[str, dict[str, Any]]:
        computer = invocation.interpreter.computer
        if computer is None:
            raise PSError("Registry access outside Invoke-Command is not simulated.", "NotImplemented")
        return self.host(computer).registry

    def new_item(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            path = str(invocation.get("Path")).lower()
            self._registry(invocation)[path] = {}
            return [CIDict(Name=path)]

    def new_item_property(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            key = self._registry(invocation).get(str(invocation.get("Path")).lower())
            if key is None:
                raise PSError(f"Cannot find path '{invocation.get('Path')}'.", "ObjectNotFound")
            key[str(invocation.get("Name"))] = invocation.get("Value")
            return [CIDict(key)]

    def get_item_property(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            key = self._registry(invocation).get(str(invocation.get("Path")).lower())
            name = str(invocation.get("Name"))
            if key is None or name not in key:
                raise PSError(
                    f"Property {name} does not exist at path {invocation.get('Path')}.", "InvalidArgument"
                )
            return [CIDict({name: key[name]})]

    # ------------------------------------------------------------ telemetry

    def delivered_mhz(self, vm: VMState) -> tuple[float, float]:
        """CPU a VM gets and its contention factor: demand above capacity is shared by weight."""
        host = self.host(vm.host)
        running = [v for v in self.vms.values() if v.host == host.name and v.state == "Running"]
        demand = sum(min(v.cpu_demand_mhz, v.processor_count * host.clock_mhz) for v in running)
        wanted = min(vm.cpu_demand_mhz, vm.processor_count * host.clock_mhz)
        if vm.state != "Running":
            return 0.0, 1.0
        pressure = demand / host.cpu_capacity_mhz
        if pressure <= 1.0:
            return wanted, pressure
        weight = sum(
            v.relative_weight * min(v.cpu_demand_mhz, v.processor_count * host.clock_mhz) for v in running
        )
        share = host.cpu_capacity_mhz * vm.relative_weight * wanted / weight
        return min(wanted, share), pressure

    def get_counter(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            samples: list[CIDict] = []
            paths = [str(c).lower() for c in as_list(invocation.get("Counter"))]
            for host in self._computers(invocation):
                for vm in (v for v in self.vms.values() if v.host == host.name):
                    if vm.state != "Running":
                        continue
                    delivered, pressure = self.delivered_mhz(vm)
                    instance = counter_instance(vm.name)
                    per_vp = 100.0 * delivered / (vm.processor_count * host.clock_mhz)
                    wait = BASE_WAIT_NS * max(1.0, pressure) ** 4
                    for vp in range(vm.processor_count):
                        vp_instance = f"{instance}:hv vp {vp}"
                        values = {
                            "\\hyper-v hypervisor virtual processor(*)\\% guest run time": per_vp,
                            "\\hyper-v hypervisor virtual processor(*)\\cpu wait time per dispatch": wait,
                        }
                        for path, value in values.items():
                            if path in paths:
                                samples.append(_counter_sample(host.name, path, vp_instance, value))
                    if vm.dynamic_memory:
                        assigned = vm.assigned_bytes / MB
                        memory = {
                            "\\hyper-v dynamic memory vm(*)\\physical memory": assigned,
                            "\\hyper-v dynamic memory vm(*)\\current pressure": round(
                                100.0 * vm.memory_demand_mb / assigned
                            ),
                        }
                        for path, value in memory.items():
                            if path in paths:
                                samples.append(_counter_sample(host.name, path, instance, value))
            return [CIDict(Timestamp=time.time(), CounterSamples=samples)]

    def measure_vm(self, invocation: Invocation) -> list[Any]:
        with self.lock:
            reports = []
            now = time.time()
            for vm in self._target_vms(invocation):
                if not vm.metering:
                    raise PSError(f"Resource metering is not enabled for '{vm.name}'.", "InvalidOperation")
                seconds = max(now - vm.metering_started, 1e-3)
                delivered, _ = self.delivered_mhz(vm)
                traffic_mb = vm.network_kibps * seconds / 1024
                reports.append(
                    CIDict(
                        VMId=vm.id,
                        VMName=vm.name,
                        AvgCPU=int(delivered),
                        AvgRAM=int(min(vm.memory_demand_mb, vm.assigned_bytes / MB)),
                        AggregatedDiskDataRead=int(vm.disk_kibps * seconds / 2048),
                        AggregatedDiskDataWritten=int(vm.disk_kibps * seconds / 2048),
                        NetworkMeteredTrafficReport=[
                            CIDict(Direction=PSEnum("Inbound", 0), TotalTraffic=int(traffic_mb / 2)),
                            CIDict(Direction=PSEnum("Outbound", 1), TotalTraffic=int(traffic_mb / 2)),
                        ],
                        MeteringDuration=CIDict(Ticks=int(seconds * 1e7), TotalSeconds=seconds),
                    )
                )
            return reports


class CIDictInvocation(Invocation):
    """An invocation with some named parameters replaced (for reusing node lookup)."""

    def __init__(self, base: Invocation, **named: Any) -> None:
        super().__init__(
            base.name, {**base.named, **named}, base.positional, base.pipeline_input, base.interpreter
        )


def counter_instance(vm_name: str) -> str:
    """How Windows spells a VM name inside a counter instance: lower case, brackets for parens."""
    return (
        vm_name.lower()
        .replace("(", "[")
        .replace(")", "]")
        .replace("#", "_")
        .replace("/", "_")
        .replace("\\", "_")
    )


def _counter_sample(computer: str, path: str, instance: str, value: float) -> CIDict:
    counter_set, counter = path.split("(*)")
    return CIDict(
        Path=f"\\\\{computer.lower()}{counter_set}({instance}){counter}",
        InstanceName=instance,
        CookedValue=float(value),
    )


# ------------------------------------------------------------ generic cmdlets


def _convert_from_json(invocation: Invocation) -> list[Any]:
    text = "\n".join(str(i) for i in as_list(invocation.pipeline_input))
    try:
        return [json.loads(text, object_hook=CIDict)]
    except json.JSONDecodeError as exc:
        raise PSError(f"Invalid JSON primitive: {exc}", "InvalidArgument") from exc


def _jsonable(value: Any) -> Any:
    if isinstance(value, PSEnum):
        return value.number
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def _convert_to_json(invocation: Invocation) -> list[Any]:
    items = as_list(invocation.pipeline_input)
    value = items[0] if len(items) == 1 else items
    separators = (",", ":") if invocation.has("Compress") else (", ", ": ")
    return [json.dumps(_jsonable(value), separators=separators, ensure_ascii=False)]


def _out_string(invocation: Invocation) -> list[Any]:
    return ["\n".join(_to_text(i) for i in as_list(invocation.pipeline_input)) + "\n"]


def _select_object(invocation: Invocation) -> list[Any]:
    items = as_list(invocation.pipeline_input)
    expand = invocation.get("ExpandProperty")
    if expand is not None:
        return [item.lookup(str(expand)) for item in items]
    names = [str(n) for n in as_list(invocation.get("Property"))]
    for positional in invocation.positional:
        names.extend(str(n) for n in as_list(positional))
    return [CIDict((n, item.lookup(n)) for n in names) for item in items]


def _where_object(invocation: Invocation) -> list[Any]:
    name = str(invocation.positional[0])
    return [i for i in as_list(invocation.pipeline_input) if pwsh.truthy(i.lookup(name))]


def _to_text(item: Any) -> str:
    return item if isinstance(item, str) else json.dumps(_jsonable(item))


def _decode_command_line(command_line: str) -> str:
    words = command_line.split()
    for index, word in enumerate(words[:-1]):
        if word.lower() in ("-encodedcommand", "-enc", "-e"):
            return base64.b64decode(words[index + 1]).decode("utf-16-le")
    raise PSError("only powershell -EncodedCommand is served by this harness")


def _clixml(message: str) -> bytes:
    text = escape(message).replace("\r", "").replace("\n", "_x000D__x000A_")
    return (
        '#< CLIXML\r\n<Objs Version="1.1.0.1" '
        'xmlns="http://schemas.microsoft.com/powershell/2004/04">'
        f'<S S="Error">{text}_x000D__x000A_</S></Objs>'
    ).encode()
