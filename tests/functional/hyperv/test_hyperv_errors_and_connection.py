"""Failures come back as typed errors; the connection validates TLS and keeps the password secret."""

from __future__ import annotations

import logging
import socket
import time

import pytest

from cotenancy.drivers.hyperv.client import WinRMAccessDenied
from cotenancy.exceptions import (
    ActionFailed,
    AuthenticationFailed,
    ConfigurationError,
    NotFound,
    TimedOut,
)
from cotenancy.model import Allocation, Resources

UNKNOWN = "00000000-0000-0000-0000-000000000000"


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vm_named(site, name):
    return next(vm for vm in site.vms.values() if vm.name == name)


@pytest.mark.parametrize(
    "action",
    [
        lambda d: d.live_migrate(UNKNOWN, "HV02"),
        lambda d: d.set_allocation(UNKNOWN, Allocation()),
        lambda d: d.resize(UNKNOWN, Resources(cpu=2500, memory=1024)),
    ],
    ids=["live_migrate", "set_allocation", "resize"],
)
def test_unknown_vm_is_not_found(make_driver, site, action):
    with pytest.raises(NotFound):
        action(make_driver())


def test_unknown_host_is_not_found(make_driver, site):
    driver = make_driver()
    with pytest.raises(NotFound, match="host"):
        driver.live_migrate(vm_named(site, "web01").id, "HV99")
    with pytest.raises(NotFound, match="host"):
        driver.set_host_maintenance("HV99", True)


def test_powershell_error_is_action_failed_with_its_message(make_driver, site):
    site.fail_next(
        "Move-VM",
        "Virtual machine migration operation for 'web01' failed at migration source 'HV01'. (0x80042001)",
    )
    web = vm_named(site, "web01")
    with pytest.raises(ActionFailed, match=r"migration operation for 'web01' failed.*0x80042001"):
        make_driver().live_migrate(web.id, "HV02")
    assert web.host == "HV01"


def test_hyper_v_refusal_is_action_failed(make_driver, site):
    site.hosts["hv02"].memory_bytes = 1024**3
    with pytest.raises(ActionFailed, match="not enough memory"):
        make_driver().live_migrate(vm_named(site, "web01").id, "HV02")


def test_slow_migration_times_out_within_the_given_time(make_driver, site, wsman_server):
    site.migration_seconds = 4.0
    driver = make_driver(operation_timeout=1)
    started = time.monotonic()
    with pytest.raises(TimedOut):
        driver.live_migrate(vm_named(site, "web01").id, "HV02", timeout=1.5)
    assert time.monotonic() - started < 3.5
    assert "http://schemas.microsoft.com/wbem/wsman/1/windows/shell/Signal" in wsman_server.requests


def test_soap_fault_is_mapped(make_driver, site, wsman_server):
    wsman_server.inject_fault("/Command", "Access is denied.")
    with pytest.raises(WinRMAccessDenied, match="Access is denied"):
        make_driver().get_inventory()


def test_other_soap_faults_are_action_failed(make_driver, site, wsman_server):
    wsman_server.inject_fault(
        "/transfer/Create",
        "The WS-Management service cannot process the "
        "request. The maximum number of concurrent shells for this user "
        "has been exceeded.",
        wsman_code=2150859173,
        subcode="w:QuotaLimit",
    )
    with pytest.raises(ActionFailed, match="2150859173.*concurrent shells"):
        make_driver().get_inventory()


def test_a_wrong_password_is_an_authentication_failure_naming_endpoint_and_options(
    make_driver, site, wsman_server
):
    """Another round would be refused the same way: ``cotenancy run`` stops on it at once."""
    with pytest.raises(AuthenticationFailed) as raised:
        make_driver(password="wrong").get_inventory()
    message = str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert wsman_server.endpoint in message and "rejected the credentials" in message
    assert "[hyperv] username and password" in message


def test_a_certificate_no_trusted_ca_signed_is_an_authentication_failure_naming_ca_file(
    make_driver, site, wsman_server
):
    """Certificates are validated by default, against the system's CAs when ca_file is unset."""
    with pytest.raises(AuthenticationFailed) as raised:
        make_driver(ca_file=None).get_inventory()
    message = str(raised.value)
    assert wsman_server.endpoint in message and "failed verification" in message
    assert "[hyperv] ca_file" in message


def test_an_endpoint_that_is_down_stays_a_transient_action_failure(make_driver, site, wsman_server):
    with pytest.raises(ActionFailed, match="cannot reach WinRM") as raised:
        make_driver(endpoint=f"https://127.0.0.1:{free_port()}/wsman").get_inventory()
    assert not isinstance(raised.value, ConfigurationError)


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "not-pem"])
def test_a_ca_file_that_cannot_be_used_is_a_configuration_error_naming_it(
    make_driver, site, tmp_path, content
):
    """A mistyped path must stop ``cotenancy run`` at once with the option's name, not fail every
    round with a traceback from requests."""
    ca_file = tmp_path / "winrm-ca.pem"
    if content is not None:
        ca_file.write_text(content)
    with pytest.raises(ConfigurationError, match=r"\[hyperv\] ca_file") as raised:
        make_driver(ca_file=str(ca_file))
    assert str(ca_file) in str(raised.value)


def test_validation_can_be_switched_off_and_says_so(make_driver, site, caplog):
    caplog.set_level(logging.WARNING, logger="cotenancy.drivers.hyperv")
    inventory = make_driver(ca_file=None, verify_tls=False).get_inventory()
    assert len(inventory.vms) == 3
    assert "validation is off" in caplog.text


def test_basic_authentication_over_https(make_driver, site):
    assert len(make_driver(transport="basic").get_inventory().hosts) == 2


def test_basic_authentication_over_http_is_refused(make_driver, site, wsman_server):
    with pytest.raises(ConfigurationError, match="clear text"):
        make_driver(transport="basic", endpoint=f"http://127.0.0.1:{wsman_server.port}/wsman")


def test_password_never_reaches_the_logs(make_driver, site, caplog, password):
    caplog.set_level(logging.DEBUG)
    driver = make_driver()
    driver.get_inventory()
    driver.live_migrate(vm_named(site, "web01").id, "HV02")
    with pytest.raises(AuthenticationFailed):
        make_driver(password=password + "x").get_inventory()
    assert "hyperv: running migrate" in caplog.text
    assert password not in caplog.text
    assert password not in repr(driver.runner.settings)


def test_password_option_is_secret():
    from cotenancy.drivers.hyperv.driver import list_opts

    [(group, opts)] = list_opts()
    assert group == "hyperv"
    assert {o.name: o.secret for o in opts}["password"] is True
