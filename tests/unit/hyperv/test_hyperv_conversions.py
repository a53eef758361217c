"""Hyper-V's JSON shapes and units become model records in project units."""

from __future__ import annotations

import pytest

from cotenancy.drivers.hyperv import driver as hv
from cotenancy.drivers.hyperv.client import ConnectionSettings, ScriptRunner, powershell_error
from cotenancy.exceptions import ActionFailed, ConfigurationError, NotFound, Unsupported
from cotenancy.model import VMState

MIB = 1024 * 1024


def test_static_memory_vm_in_project_units():
    vm = hv._vm_from(
        {"VMId": "ABC", "VMName": "web", "State": 2, "IsClustered": False, "MemoryAssigned": 4096 * MIB},
        {"Count": 4, "Reserve": 25, "Maximum": 50, "RelativeWeight": 200},
        {"Startup": 4096 * MIB, "DynamicMemoryEnabled": False, "Minimum": 512 * MIB, "Maximum": 1 << 40},
        "HV01",
        2500.0,
    )
    assert vm.id == "abc" and vm.host_id == "HV01" and vm.vcpus == 4
    assert (vm.size.cpu, vm.size.memory) == (10000.0, 4096.0)
    assert vm.allocation.reservation.cpu == 2500.0
    assert vm.allocation.reservation.memory == 4096.0, "static memory is fully backed"
    assert vm.allocation.limit is not None and vm.allocation.limit.cpu == 5000.0
    assert vm.allocation.shares == 2000
    assert vm.state is VMState.ACTIVE


def test_dynamic_memory_vm_is_sized_by_its_maximum_and_reserves_its_minimum():
    vm = hv._vm_from(
        {"VMId": "d", "VMName": "db", "State": "Off"},
        {"Count": 2, "Reserve": 0, "Maximum": 100, "RelativeWeight": 100},
        {"Startup": 2048 * MIB, "DynamicMemoryEnabled": True, "Minimum": 1024 * MIB, "Maximum": 8192 * MIB},
        "HV02",
        3000.0,
    )
    assert vm.size.memory == 8192.0
    assert vm.allocation.reservation.memory == 1024.0
    assert vm.allocation.limit is None
    assert vm.state is VMState.STOPPED


def test_convert_to_json_single_objects_become_lists():
    assert hv._items({"a": 1}) == [{"a": 1}]
    assert hv._items(None) == []
    assert hv._items([{"a": 1}, "junk"]) == [{"a": 1}]


def test_counter_instance_names_follow_windows_spelling():
    assert hv.counter_instance("Web(1) #A/B\\C") == "web[1] _a_b_c"


def test_clixml_error_stream_becomes_readable_text():
    stderr = (
        b'#< CLIXML\r\n<Objs Version="1.1.0.1" xmlns="http://schemas.microsoft.com/powershell/'
        b'2004/04"><S S="Error">Move-VM : migration failed_x000D__x000A_</S>'
        b'<S S="Error">at line 3_x000D__x000A_</S><S S="progress">ignored</S></Objs>'
    )
    assert powershell_error(stderr) == "Move-VM : migration failed\r\nat line 3"
    assert powershell_error(b"plain failure\n") == "plain failure"


@pytest.mark.parametrize(
    "status, error",
    [
        ("NotFound", NotFound),
        ("HostNotFound", NotFound),
        ("Unsupported", Unsupported),
        ("Weird", ActionFailed),
    ],
)
def test_script_status_maps_to_typed_errors(status, error):
    with pytest.raises(error):
        ScriptRunner._answer("migrate", f'{{"Status": "{status}"}}\r\n'.encode())


def test_non_json_answer_is_action_failed():
    with pytest.raises(ActionFailed, match="no JSON"):
        ScriptRunner._answer("inventory", b"WARNING: something\r\n")


def test_basic_over_http_and_missing_endpoint_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="clear text"):
        ScriptRunner(ConnectionSettings("http://h:5985/wsman", "u", "p", transport="basic"))
    with pytest.raises(ConfigurationError, match="endpoint"):
        ScriptRunner(ConnectionSettings("", "u", "p"))


def test_a_transport_without_its_library_is_a_configuration_error(monkeypatch):
    from winrm import transport

    monkeypatch.setattr(transport, "HAVE_KERBEROS", False)
    with pytest.raises(ConfigurationError, match=r"pywinrm\[kerberos\]"):
        ScriptRunner(ConnectionSettings("https://h/wsman", "u", "p", transport="kerberos"))


def test_settings_repr_hides_the_password():
    assert "s3cr3t" not in repr(ConnectionSettings("https://h/wsman", "u", "s3cr3t"))


def test_options_are_in_the_hyperv_group_with_safe_defaults():
    [(group, opts)] = hv.list_opts()
    by_name = {o.name: o for o in opts}
    assert group == "hyperv"
    assert by_name["password"].secret
    assert by_name["verify_tls"].default is True
    assert set(by_name["transport"].type.choices) == {"ntlm", "kerberos", "credssp", "basic"}


HOSTS = {"hv01": "HV01", "hv02": "HV02", "hv02.lab.example.com": "hv02.lab.example.com"}


@pytest.mark.parametrize(
    ("destination", "host"),
    [
        ("hv01", "HV01"),
        ("HV01.corp.example.com.", "HV01"),
        ("hv02.lab.example.com", "hv02.lab.example.com"),
        ("hv02.other.example.com", None),  # two managed hosts are called hv02: not guessed
        ("10.0.0.5", None),
        ("fe80::1", None),
        ("hv77.corp.example.com", None),
    ],
)
def test_a_migration_destination_is_matched_to_one_managed_host_or_none(destination, host):
    assert hv._host_named(destination, HOSTS) == host


def test_only_migration_jobs_that_have_not_ended_and_name_a_destination_are_moves():
    jobs = [
        {"VirtualSystemName": "AAA", "DestinationHost": "hv02", "JobState": 4, "PercentComplete": 45},
        {"VirtualSystemName": "BBB", "DestinationHost": "hv02", "JobState": 7, "PercentComplete": 100},
        {"VirtualSystemName": "CCC", "DestinationHost": "hv02", "JobState": 10, "PercentComplete": 60},
        {"VirtualSystemName": "DDD", "DestinationHost": "", "JobState": 4, "PercentComplete": 10},
    ]
    moving = hv._migration_jobs(jobs, HOSTS)
    assert list(moving) == ["aaa"]
    assert moving["aaa"].target == "HV02" and "45%" in moving["aaa"].why
