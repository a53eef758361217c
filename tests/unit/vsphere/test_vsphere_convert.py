"""Translations between vSphere objects and project records: units, share levels, faults, events."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from oslo_config import cfg
from pyVmomi import vim, vmodl

from cotenancy.drivers.vsphere import convert
from cotenancy.drivers.vsphere.options import VSPHERE_OPTS
from cotenancy.exceptions import ActionFailed, NotFound, TimedOut, Unsupported
from cotenancy.model import Allocation, EventKind, Metric, MetricSample, Resources


def alloc(reservation=0, limit=-1, level="normal", shares=0):
    return vim.ResourceAllocationInfo(
        reservation=reservation, limit=limit, shares=vim.SharesInfo(level=level, shares=shares)
    )


def test_simulator_defaults_read_as_normal_unlimited():
    allocation = convert.allocation_from_vim(alloc(), alloc(), vcpus=2)
    assert allocation == Allocation(reservation=Resources(), limit=None, shares=1000)


@pytest.mark.parametrize(("level", "weight"), [("low", 500), ("normal", 1000), ("high", 2000)])
def test_share_levels_map_to_weights(level, weight):
    assert convert.allocation_from_vim(alloc(level=level), None, vcpus=4).shares == weight


def test_custom_cpu_shares_are_relative_to_the_vcpu_count():
    # normal is 1000 shares per vCPU: 3000 shares on 2 vCPUs is 1.5x normal
    assert convert.allocation_from_vim(alloc(level="custom", shares=3000), None, vcpus=2).shares == 1500


def test_one_finite_limit_keeps_the_other_unlimited():
    allocation = convert.allocation_from_vim(alloc(limit=2500), alloc(limit=-1), vcpus=1)
    assert allocation.limit is not None
    assert allocation.limit.cpu == 2500
    assert math.isinf(allocation.limit.memory)


def test_allocation_round_trip_through_vim():
    wanted = Allocation(
        reservation=Resources(cpu=700, memory=128),
        limit=Resources(cpu=3000, memory=math.inf),
        shares=1500,
    )
    cpu, memory = convert.allocation_to_vim(wanted, vcpus=2, memory_mb=1024)
    assert (cpu.reservation, cpu.limit, cpu.shares.level, cpu.shares.shares) == (700, 3000, "custom", 3000)
    assert (memory.reservation, memory.limit, memory.shares.shares) == (128, -1, 15360)
    assert convert.allocation_from_vim(cpu, memory, vcpus=2) == wanted


def test_named_weights_become_share_levels():
    cpu, memory = convert.allocation_to_vim(Allocation(shares=2000), vcpus=1, memory_mb=512)
    assert cpu.shares.level == memory.shares.level == "high"
    assert (cpu.limit, memory.limit) == (-1, -1)


@pytest.mark.parametrize(
    ("allocation", "problem"),
    [
        (Allocation(shares=0), "shares must be positive"),
        (Allocation(reservation=Resources(memory=2048)), "exceeds the VM's 1024 MiB"),
        (Allocation(reservation=Resources(cpu=-1)), "must not be negative"),
        (
            Allocation(reservation=Resources(cpu=2000), limit=Resources(cpu=1000, memory=math.inf)),
            "below its reservation",
        ),
    ],
)
def test_allocations_vsphere_would_refuse_are_rejected(allocation, problem):
    with pytest.raises(ActionFailed, match=problem):
        convert.allocation_to_vim(allocation, vcpus=1, memory_mb=1024)


def test_counter_conversions_give_project_units():
    by_metric = {s.metric: s for s in convert.METRIC_COUNTERS}
    # 2000 ms ready over a 20 s interval on 2 vCPUs: 5 % of the time
    assert by_metric[Metric.CPU_READY].convert(2000, 20, 2) == pytest.approx(0.05)
    assert by_metric[Metric.MEMORY].convert(2048, 20, 1) == 2.0  # KB -> MiB
    assert by_metric[Metric.CPU].convert(1234, 20, 4) == 1234  # MHz
    assert MetricSample(
        "vm", 0.0, Metric.CPU_READY, by_metric[Metric.CPU_READY].convert(20000, 20, 1)
    ).is_valid()


def test_counter_names_are_group_name_rollup():
    counter = vim.PerformanceManager.CounterInfo(
        key=6,
        groupInfo=vim.ElementDescription(key="cpu"),
        nameInfo=vim.ElementDescription(key="usagemhz"),
        rollupType="average",
    )
    assert convert.counter_name(counter) == "cpu.usagemhz.average"


def test_annotation_lines_describe_the_workload():
    text = "\n".join(
        [
            "owner: ops team",
            "cotenancy:app_type=db",
            "cotenancy:priority=9",
            "cotenancy:tenant=acme",
            "cotenancy:critical=true",
        ]
    )
    workload, tenant, critical = convert.parse_annotation(text, "cotenancy:")
    assert (workload.app_type, workload.priority, workload.security_level) == ("db", 9, "internal")
    assert (tenant, critical) == ("acme", True)


def test_unreadable_annotation_values_fall_back_to_defaults():
    workload, tenant, critical = convert.parse_annotation("cotenancy:priority=urgent", "cotenancy:")
    assert workload.priority == 5
    assert (tenant, critical) == (None, False)
    assert convert.parse_annotation(None, "cotenancy:")[0].priority == 5


def host_arg(moid):
    return vim.event.HostEventArgument(host=vim.HostSystem(moid), name=moid)


def vm_arg(moid):
    return vim.event.VmEventArgument(vm=vim.VirtualMachine(moid), name=moid)


WHEN = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def test_migration_event_names_source_and_target():
    event = vim.event.VmMigratedEvent(
        createdTime=WHEN,
        vm=vm_arg("vm-1"),
        host=host_arg("host-2"),
        sourceHost=host_arg("host-1"),
        fullFormattedMessage="moved",
        key=1,
        chainId=1,
        userName="u",
    )
    record = convert.event_from_vim(event)
    assert record is not None
    assert (record.kind, record.vm_ids, record.host_id) == (EventKind.MIGRATION, ("vm-1",), "host-2")
    assert record.details == {"source_host_id": "host-1"}
    assert record.timestamp == WHEN.timestamp()


def test_reconfigure_events_split_into_resize_and_allocation():
    def reconfigured(spec):
        return vim.event.VmReconfiguredEvent(
            createdTime=WHEN, vm=vm_arg("vm-1"), configSpec=spec, key=1, chainId=1, userName="u"
        )

    resize = convert.event_from_vim(reconfigured(vim.vm.ConfigSpec(numCPUs=2)))
    allocation = convert.event_from_vim(reconfigured(vim.vm.ConfigSpec(cpuAllocation=alloc())))
    other = convert.event_from_vim(reconfigured(vim.vm.ConfigSpec(annotation="x")))
    assert resize is not None and resize.kind is EventKind.RESIZE
    assert allocation is not None and allocation.kind is EventKind.ALLOCATION
    assert other is None


def test_power_events_keep_their_type():
    event = vim.event.VmPoweredOffEvent(createdTime=WHEN, vm=vm_arg("vm-3"), key=1, chainId=1, userName="u")
    record = convert.event_from_vim(event)
    assert record is not None
    assert (record.kind, record.details["type"]) == (EventKind.POWER, "VmPoweredOffEvent")


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (vmodl.fault.ManagedObjectNotFound(obj=vim.VirtualMachine("vm-9")), NotFound),
        (vim.fault.NotFound(), NotFound),
        (vmodl.fault.NotSupported(), Unsupported),
        (vim.fault.CpuHotPlugNotSupported(), Unsupported),
        (vim.fault.Timedout(), TimedOut),
        (TimeoutError("timed out"), TimedOut),
        (vim.fault.MigrationFault(msg="no vMotion network"), ActionFailed),
        (ConnectionRefusedError(111, "refused"), ActionFailed),
    ],
)
def test_faults_map_to_typed_errors(fault, error):
    mapped = convert.error_from_fault(fault, "doing it")
    assert type(mapped) is error
    assert str(mapped).startswith("doing it: ")


def test_fault_message_names_the_fault_and_its_text():
    mapped = convert.error_from_fault(vim.fault.MigrationFault(msg="no vMotion network"), "moving vm-1")
    assert str(mapped) == "moving vm-1: MigrationFault: no vMotion network"


def test_options_verify_tls_and_hide_the_password():
    conf = cfg.ConfigOpts()
    conf.register_opts(VSPHERE_OPTS, group="vsphere")
    conf([])
    assert conf.vsphere.insecure is False
    assert conf.vsphere.port == 443
    assert conf.vsphere.allow_power_cycle is False
    password = next(o for o in VSPHERE_OPTS if o.name == "password")
    assert password.secret is True
