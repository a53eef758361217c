"""The loopback WS-Management server speaks the shell protocol as pywinrm expects it."""

from __future__ import annotations

import json

import pytest
import winrm
from winrm.exceptions import InvalidCredentialsError, WSManFaultError

RECEIVE = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Receive"


@pytest.fixture
def session(wsman_server, certificates, password):
    return winrm.Session(
        wsman_server.endpoint,
        auth=("administrator", password),
        transport="ntlm",
        ca_trust_path=str(certificates.ca_file),
    )


def test_run_ps_round_trip_without_stdin(session, site):
    result = session.run_ps(
        "Get-VMHost -ComputerName 'HV01', 'HV02' | Select-Object ComputerName | ConvertTo-Json -Compress"
    )
    assert result.status_code == 0
    assert json.loads(result.std_out) == [{"ComputerName": "HV01"}, {"ComputerName": "HV02"}]


def test_powershell_errors_come_back_as_clixml_on_stderr(session, site):
    result = session.run_ps("Get-VM -ComputerName 'HV01' -Id 'nope'")
    assert result.status_code == 1
    assert b"unable to find a virtual machine" in result.std_err


def test_a_deleted_shell_is_a_wsman_fault(wsman_server, certificates, password, site):
    protocol = winrm.Protocol(
        wsman_server.endpoint,
        transport="basic",
        username="administrator",
        password=password,
        ca_trust_path=str(certificates.ca_file),
    )
    shell = protocol.open_shell()
    protocol.close_shell(shell)
    with pytest.raises(WSManFaultError) as fault:
        protocol.run_command(shell, "ipconfig")
    assert fault.value.wsman_fault_code == 2150858843
    assert "shell was not found" in fault.value.reason


def test_signal_and_delete_answer_with_relates_to(wsman_server, certificates, password, site):
    protocol = winrm.Protocol(
        wsman_server.endpoint,
        transport="ntlm",
        username="administrator",
        password=password,
        ca_trust_path=str(certificates.ca_file),
    )
    shell = protocol.open_shell()
    command = protocol.run_command(shell, "powershell.exe", ["-EncodedCommand", "JABhACAAPQAgADEA"])
    protocol.cleanup_command(shell, command)
    protocol.close_shell(shell)
    assert shell not in wsman_server.shells


def test_wrong_credentials_are_refused(wsman_server, certificates, site):
    for transport in ("basic", "ntlm"):
        session = winrm.Session(
            wsman_server.endpoint,
            auth=("administrator", "nope"),
            transport=transport,
            ca_trust_path=str(certificates.ca_file),
        )
        with pytest.raises((InvalidCredentialsError, PermissionError)):
            session.run_ps("Get-VMHost")


def test_large_output_arrives_over_several_receives(make_driver, site, wsman_server):
    for index in range(60):
        site.add_vm(f"filler{index:02d}", "HV02", processor_count=1, startup_bytes=512 * 1024**2)
    receives_before = wsman_server.requests.count(RECEIVE)

    inventory = make_driver().get_inventory()

    assert len(inventory.vms) == 63
    assert wsman_server.requests.count(RECEIVE) - receives_before > 3
