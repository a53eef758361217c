"""The session repeats a call only after NotAuthenticated (vCenter refused it unrun), never after a
transport error (vCenter may have run it): no relocation is ever sent twice."""

from __future__ import annotations

import socket

import pytest
from pyVmomi import vim

from cotenancy.drivers.vsphere.session import ReloginStub, Session
from cotenancy.exceptions import ConfigurationError


class ScriptedSoapStub:
    """Answers InvokeMethod from a script of (status, object) or exceptions; counts the calls."""

    version = "vim.version.version9"

    def __init__(self, script: list[object]) -> None:
        self.script = list(script)
        self.calls = 0

    def InvokeMethod(self, mo, info, args, outer):  # noqa: N802 - pyVmomi's name
        self.calls += 1
        step = self.script.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    def DropConnections(self):  # noqa: N802 - pyVmomi's name
        pass


def stub_with(script):
    soap = ScriptedSoapStub(script)
    logins = []
    return ReloginStub(soap, lambda s: logins.append(s)), soap, logins


def test_not_authenticated_logs_in_again_and_repeats_the_call_once():
    stub, soap, logins = stub_with([(500, vim.fault.NotAuthenticated()), (200, "done")])

    assert stub.InvokeMethod(None, None, ()) == "done"
    assert soap.calls == 2
    assert len(logins) == 2  # the first login and the one after the session was lost
    assert stub.relogins == 1


def test_a_second_not_authenticated_is_raised():
    stub, soap, _ = stub_with([(500, vim.fault.NotAuthenticated()), (500, vim.fault.NotAuthenticated())])

    with pytest.raises(vim.fault.NotAuthenticated):
        stub.InvokeMethod(None, None, ())
    assert soap.calls == 2


def test_a_socket_timeout_is_never_repeated():
    stub, soap, _ = stub_with([TimeoutError("timed out"), (200, "would run twice")])

    with pytest.raises(socket.timeout):
        stub.InvokeMethod(None, None, ())
    assert soap.calls == 1


def test_other_faults_are_raised_unrepeated():
    stub, soap, _ = stub_with([(500, vim.fault.MigrationFault()), (200, "would run twice")])

    with pytest.raises(vim.fault.MigrationFault):
        stub.InvokeMethod(None, None, ())
    assert soap.calls == 1


def test_missing_settings_are_configuration_errors():
    with pytest.raises(ConfigurationError, match="host"):
        Session(None, 443, "u", "p", None, False, 10.0)
    with pytest.raises(ConfigurationError, match="username and password"):
        Session("vc", 443, None, "p", None, False, 10.0)


def test_session_repr_hides_the_password():
    assert "s3cret" not in repr(Session("vc", 443, "u", "s3cret", None, False, 10.0))
