"""No VM or host name is ever run as PowerShell code.

The responder parses each script it receives and would execute any cmdlet that reached it, so a
name spliced into a script would show up as extra cmdlet calls (``Remove-VM``, ``Stop-Computer``)
or as a parse failure. These tests show that the script text is always one of the driver's fixed
scripts, byte for byte, that names appear only in the stdin payload (base64 JSON), and that every
operation on a hostile-named VM works.
"""

from __future__ import annotations

import base64
import json
import time

import pytest

from cotenancy.drivers.hyperv import scripts
from cotenancy.model import Allocation, Metric, Resources

HOSTILE_NAMES = [
    "quote'; Remove-VM -Name * -Force; '",
    'double"; Stop-Computer -Force; "',
    "semi; Stop-Computer -Force",
    "sub $(Remove-VM -Name * -Force) expr",
    "back`ntick`$(Stop-Computer)",
    "new\r\nline\nRemove-VM -Name * -Force",
    "pipe | Remove-VM -Force",
    "amp & Stop-Computer && Remove-VM",
    "paren(1) #hash /slash\\ {brace} @{x=1} [int]",
    "unicode ‘smart’ “quotes” — ☃",
]
PAYLOADS = ["Remove-VM", "Stop-Computer", "$(", "'; ", '"; ']
EXPECTED_CMDLETS = {
    "Out-String",
    "ConvertFrom-Json",
    "ConvertTo-Json",
    "Select-Object",
    "Where-Object",
    "Get-VMHost",
    "Get-CimInstance",
    "Get-VM",
    "Get-VMProcessor",
    "Get-VMMemory",
    "Set-VMProcessor",
    "Set-VMMemory",
    "Move-VM",
    "Invoke-Command",
    "Get-ItemProperty",
    "Get-Counter",
    "Measure-VM",
    "New-Item",
    "New-ItemProperty",
}


@pytest.fixture
def hostile_site(site):
    for index, name in enumerate(HOSTILE_NAMES):
        site.add_vm(
            name,
            "HV01" if index % 2 else "HV02",
            processor_count=1,
            startup_bytes=1024 * 1024**2,
            cpu_demand_mhz=100 + index,
        )
    return site


def test_every_operation_on_hostile_names_works_and_names_stay_data(make_driver, hostile_site):
    site = hostile_site
    driver = make_driver()
    vm_count = len(site.vms)

    inventory = driver.get_inventory()
    discovered = {vm.name: vm for vm in inventory.vms.values()}
    assert set(HOSTILE_NAMES) <= set(discovered), "names round-trip exactly, newlines included"

    samples = driver.get_metrics(time.time() - 10, time.time() + 1)
    cpu = {s.vm_id: s.value for s in samples if s.metric == Metric.CPU}
    for index, name in enumerate(HOSTILE_NAMES):
        assert cpu[discovered[name].id] == pytest.approx(100 + index), name

    for name in HOSTILE_NAMES:
        vm = discovered[name]
        target = "HV01" if vm.host_id == "HV02" else "HV02"
        driver.live_migrate(vm.id, target)
        driver.resize(vm.id, Resources(cpu=2500, memory=2048))
        driver.set_allocation(vm.id, Allocation(reservation=Resources(cpu=500), shares=500))
        state = site.vms[vm.id]
        assert (state.host, state.startup_bytes, state.reserve, state.relative_weight) == (
            target,
            2048 * 1024**2,
            20,
            50,
        )
    driver.set_host_maintenance("HV01", True)

    assert len(site.vms) == vm_count, "no VM was removed"
    assert {vm.name for vm in site.vms.values()} >= set(HOSTILE_NAMES)
    assert set(site.calls) <= EXPECTED_CMDLETS
    assert "Remove-VM" not in site.calls and "Stop-Computer" not in site.calls

    fixed = set(scripts.SCRIPTS.values())
    assert site.scripts and all(script in fixed for script in site.scripts), (
        "every script received is one of the fixed scripts, byte for byte"
    )
    for text in site.scripts + site.command_lines:
        for name in HOSTILE_NAMES:
            assert name not in text
        for payload in PAYLOADS[:2]:
            assert payload not in text
    for payload in site.stdin_payloads:
        assert set(payload.strip()) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
        )
    decoded = [json.loads(base64.b64decode(p)) for p in site.stdin_payloads]
    assert any(d.get("VMId") == discovered[HOSTILE_NAMES[0]].id for d in decoded), (
        "values travel in the stdin payload"
    )


def test_same_operation_sends_identical_script_whatever_the_vm(make_driver, hostile_site):
    site = hostile_site
    driver = make_driver()
    plain = next(vm for vm in site.vms.values() if vm.name == "web01")
    hostile = next(vm for vm in site.vms.values() if vm.name == HOSTILE_NAMES[0])

    driver.live_migrate(plain.id, "HV02")
    driver.live_migrate(hostile.id, "HV01")

    assert site.scripts[-1] == site.scripts[-2] == scripts.MIGRATE
    assert site.command_lines[-1] == site.command_lines[-2]
    assert site.stdin_payloads[-1] != site.stdin_payloads[-2]


def test_hostile_host_name_is_data_too(make_driver, hostile_site):
    site = hostile_site
    evil = "HV03'; Stop-Computer -Force; '"
    site.add_host(evil)
    driver = make_driver(hosts=["HV01", "HV02", evil])
    web = next(vm for vm in site.vms.values() if vm.name == "web01")

    driver.live_migrate(web.id, evil)
    driver.set_host_maintenance(evil, True)

    assert web.host == evil
    assert driver.get_inventory().hosts[evil].maintenance
    assert "Stop-Computer" not in site.calls
    assert all(evil not in script for script in site.scripts)


def test_a_name_spliced_into_script_text_would_have_run(hostile_site):
    """The control: the responder really executes what is in the script text, so the tests
    above would catch interpolation."""
    site = hostile_site
    count = len(site.vms)
    spliced = scripts.INVENTORY.replace(
        "$vms = @(Get-VM -ComputerName $computers)",
        "$vms = @(Get-VM -ComputerName $computers); Remove-VM -Name web01",
    )
    line = "powershell.exe " + " ".join(scripts.command_arguments(spliced))
    _, stderr, code = site.execute(
        line, scripts.encode_parameters({"Hosts": ["HV01", "HV02"], "Cluster": None}).decode()
    )
    assert code == 1
    assert b"Remove-VM" in stderr and "is not recognized" in stderr.decode()
    assert "Remove-VM" in site.calls, "the responder records every command it meets"
    assert len(site.vms) == count
