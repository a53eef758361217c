"""A reused vCenter session that logs in again when vCenter forgets it.

pyVmomi's ``SessionOrientedStub`` also re-sends a call after a socket error, which could run a
relocation twice; here a call is repeated only after ``NotAuthenticated``, which vCenter raises
before it does anything.
"""

from __future__ import annotations

import logging
import ssl
import threading
from typing import Any

from pyVim.connect import SmartStubAdapter, VimSessionOrientedStub
from pyVmomi import vim
from pyVmomi.SoapAdapter import StubAdapterBase

from cotenancy.drivers.base import untrusted_certificate, verifying_tls_context
from cotenancy.drivers.vsphere.convert import error_from_fault
from cotenancy.exceptions import AuthenticationFailed, ConfigurationError

LOG = logging.getLogger(__name__)


class ReloginStub(VimSessionOrientedStub):
    """Logs in lazily and once more after NotAuthenticated; never retries anything else."""

    def __init__(self, soap_stub: Any, login: Any) -> None:
        super().__init__(soap_stub, login, retryDelay=0, retryCount=1)
        self.relogins = 0

    def InvokeMethod(self, mo: Any, info: Any, args: Any) -> Any:  # noqa: N802 - pyVmomi's name
        for attempt in (1, 2):
            if self.state == self.STATE_UNAUTHENTICATED:
                self._CallLoginMethod()
            status, obj = self.soapStub.InvokeMethod(mo, info, args, self)
            if status == 200:
                return obj
            if attempt == 1 and isinstance(obj, self.SESSION_EXCEPTIONS):
                LOG.info("vCenter session expired; logging in again")
                self.relogins += 1
                self._SetStateUnauthenticated()
                continue
            raise obj
        raise AssertionError("unreachable")  # pragma: no cover

    def InvokeAccessor(self, mo: Any, info: Any) -> Any:  # noqa: N802 - pyVmomi's name
        return StubAdapterBase.InvokeAccessor(self, mo, info)


class Session:
    """Lazily connected ServiceInstance shared by every call of one driver."""

    def __init__(
        self,
        host: str | None,
        port: int,
        username: str | None,
        password: str | None,
        ca_file: str | None,
        insecure: bool,
        call_timeout: float,
    ) -> None:
        if not host:
            raise ConfigurationError("[vsphere] host is not set")
        if not username or password is None:
            raise ConfigurationError("[vsphere] username and password must be set")
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._insecure = insecure
        #: built now, so a CA bundle that cannot be used stops the command before any round
        self._verifying_context = None if insecure else verifying_tls_context(ca_file, "[vsphere] ca_file")
        self._call_timeout = call_timeout
        self._lock = threading.Lock()
        self._stub: ReloginStub | None = None
        self._si: vim.ServiceInstance | None = None
        self._content: vim.ServiceInstanceContent | None = None

    def __repr__(self) -> str:
        return f"Session({self._username}@{self.host}:{self.port})"

    def _ssl_context(self) -> ssl.SSLContext:
        if self._insecure:
            LOG.warning("TLS verification of vCenter %s is disabled ([vsphere] insecure)", self.host)
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        assert self._verifying_context is not None
        return self._verifying_context

    def connect(self) -> vim.ServiceInstance:
        with self._lock:
            if self._si is not None:
                return self._si
            try:
                soap_stub = SmartStubAdapter(
                    host=self.host,
                    port=self.port,
                    sslContext=self._ssl_context(),
                    httpConnectionTimeout=self._call_timeout,
                )
                username, password = self._username, self._password

                def login(stub: Any) -> None:
                    content = vim.ServiceInstance("ServiceInstance", stub).RetrieveContent()
                    try:
                        content.sessionManager.Login(username, password, None)
                    except vim.fault.InvalidLogin as exc:
                        # also when logging in again after vCenter forgot the session: a password
                        # changed while cotenancy runs stops it as one wrong from the start does
                        raise AuthenticationFailed(
                            f"[vsphere] vCenter {self.host}:{self.port} rejected the login of "
                            f"{username!r}; correct [vsphere] username and password"
                        ) from exc

                self._stub = ReloginStub(soap_stub, login)
                si = vim.ServiceInstance("ServiceInstance", self._stub)
                self._content = si.RetrieveContent()
                self._stub._CallLoginMethod()
            except AuthenticationFailed:
                raise
            except Exception as exc:
                server = f"vCenter {self.host}:{self.port}"
                fix = "set [vsphere] ca_file to the CA that signed it"
                if (untrusted := untrusted_certificate(exc, "vsphere", server, fix)) is not None:
                    raise untrusted from exc
                raise error_from_fault(exc, f"connecting to vCenter {self.host}:{self.port}") from exc
            LOG.info("connected to vCenter %s:%s as %s", self.host, self.port, self._username)
            self._si = si
            return si

    @property
    def content(self) -> vim.ServiceInstanceContent:
        self.connect()
        assert self._content is not None
        return self._content

    @property
    def stub(self) -> ReloginStub:
        self.connect()
        assert self._stub is not None
        return self._stub

    @property
    def relogins(self) -> int:
        return self._stub.relogins if self._stub else 0

    def close(self) -> None:
        with self._lock:
            if self._si is None:
                return
            try:
                assert self._content is not None
                self._content.sessionManager.Logout()
            except Exception as exc:  # a closed or expired session needs no logout
                LOG.debug("logout from vCenter %s failed: %s", self.host, exc)
            finally:
                if self._stub is not None:
                    self._stub.DropConnections()
                self._si = self._stub = self._content = None
