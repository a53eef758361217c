"""A login vCenter rejects, or a certificate that fails verification, is an
:class:`AuthenticationFailed` naming vCenter and the options to fix (never the password):
``cotenancy run`` stops on it at the first round instead of retrying it every interval, while a
vCenter that cannot be reached stays a failed round that the loop retries.

The simulator accepts only its configured user and password, and serves a self-signed certificate
that no system trust store holds (the driver-level certificate test is in test_vsphere_driver.py).
"""

from __future__ import annotations

import logging
import os
import socket

import pytest
from vcsim_admin import vsphere_overrides

from cotenancy.cli.main import main
from cotenancy.conf import make_conf
from cotenancy.drivers.vsphere.driver import VSphereDriver
from cotenancy.engine.loop import ControlLoop
from cotenancy.exceptions import ActionFailed, AuthenticationFailed, ConfigurationError
from cotenancy.strategies.noop import NoopStrategy

WRONG = "wr0ng;'\"password"


def free_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def vsphere_conf(vcsim, tmp_path, **changes: object):
    conf = make_conf([], config_files=[])
    for name, value in (vsphere_overrides(vcsim) | changes).items():
        conf.set_override(name, value, group="vsphere")
    conf.set_override("interval", 1)
    conf.set_override("state_path", str(tmp_path))
    return conf


def test_a_wrong_password_is_an_authentication_failure_naming_vcenter_and_options(vcsim, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    driver = VSphereDriver(vsphere_conf(vcsim, tmp_path, password=WRONG))
    try:
        with pytest.raises(AuthenticationFailed) as raised:
            driver.get_inventory()
    finally:
        driver.close()
    message = str(raised.value)
    assert isinstance(raised.value, ConfigurationError)
    assert f"{vcsim.host}:{vcsim.port}" in message and repr(vcsim.username) in message
    assert "[vsphere] username and password" in message
    assert WRONG not in message and WRONG not in caplog.text


def test_the_loop_stops_at_the_first_round_a_login_is_rejected(vcsim, tmp_path):
    conf = vsphere_conf(vcsim, tmp_path, password=WRONG)
    driver = VSphereDriver(conf)
    loop = ControlLoop(conf, driver=driver, strategy=NoopStrategy(conf), dry_run=True)
    try:
        with pytest.raises(AuthenticationFailed):
            loop.run(rounds=3)
    finally:
        driver.close()
    assert loop.rounds_run == 0 and loop.failed_rounds == 0


def test_the_loop_retries_a_vcenter_it_cannot_reach(vcsim, tmp_path, caplog):
    conf = vsphere_conf(vcsim, tmp_path, port=free_port())
    driver = VSphereDriver(conf)
    loop = ControlLoop(conf, driver=driver, strategy=NoopStrategy(conf), dry_run=True)
    try:
        assert loop.run(rounds=2) == []
    finally:
        driver.close()
    assert loop.rounds_run == 2 and loop.failed_rounds == 2
    assert caplog.text.count("control-loop round failed") == 2
    assert f"{ActionFailed.__name__}: connecting to vCenter" in caplog.text


@pytest.mark.parametrize("command", [["run", "--rounds", "3"], ["plan"]], ids=["run", "plan"])
@pytest.mark.parametrize("change", [{"password": WRONG}, {"ca_file": ""}], ids=["password", "certificate"])
def test_the_command_stops_with_a_one_line_error_and_configuration_exit_code(
    vcsim, tmp_path, capsys, caplog, command, change
):
    settings = [f"DEFAULT.state_path={tmp_path}", "DEFAULT.interval=1"]
    settings += [f"vsphere.{name}={value}" for name, value in (vsphere_overrides(vcsim) | change).items()]
    argv = ["--config-file", os.devnull]
    for setting in settings:
        argv += ["--set", setting]
    argv += [*command, "--driver", "vsphere", "--strategy", "noop", "--dry-run"]

    status = main([*argv, "--store", f"sqlite:///{tmp_path / 'history.sqlite'}"])

    err = capsys.readouterr().err
    assert status == 2, err
    assert "cotenancy: error: [vsphere] " in err and f"{vcsim.host}:{vcsim.port}" in err
    assert "Traceback" not in err and "control-loop round failed" not in caplog.text
    assert WRONG not in err and WRONG not in caplog.text
