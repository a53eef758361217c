"""Running the driver's fixed PowerShell scripts over WinRM with pywinrm, and mapping failures.

A script runs as ``powershell.exe -EncodedCommand <fixed script>``; its parameters go to the
command's stdin as base64 JSON (see :mod:`cotenancy.drivers.hyperv.scripts`). The WS-Management
session (TLS and NTLM/Kerberos/CredSSP handshake) is kept per thread and reused across calls.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

import requests
import winrm
from winrm import transport as winrm_transport
from winrm.exceptions import (
    InvalidCredentialsError,
    WinRMError,
    WinRMOperationTimeoutError,
    WinRMTransportError,
    WSManFaultError,
)

from cotenancy.drivers.base import untrusted_certificate
from cotenancy.drivers.hyperv import scripts
from cotenancy.exceptions import (
    ActionFailed,
    AuthenticationFailed,
    ConfigurationError,
    NotFound,
    TimedOut,
    Unsupported,
)

LOG = logging.getLogger(__name__)

#: WSManFault codes with a meaning of their own (winerror.h)
WSMAN_ACCESS_DENIED = 5
WSMAN_OPERATION_TIMEOUT = 2150858793
WSMAN_SHELL_NOT_FOUND = 2150858843


class WinRMAccessDenied(ActionFailed):
    """The user logged in but may not run the operation (a rejected login is
    :class:`AuthenticationFailed`)."""


@dataclass(frozen=True)
class ConnectionSettings:
    """Where and how to connect; ``password`` is only ever handed to pywinrm."""

    endpoint: str
    username: str
    password: str
    transport: str = "ntlm"
    ca_file: str | None = None
    verify_tls: bool = True
    operation_timeout: int = 20
    message_encryption: str = "auto"

    def __repr__(self) -> str:
        return (
            f"ConnectionSettings(endpoint={self.endpoint!r}, username={self.username!r}, "
            f"transport={self.transport!r}, verify_tls={self.verify_tls})"
        )


class ScriptRunner:
    """Runs one fixed script with JSON parameters and returns its JSON answer."""

    def __init__(self, settings: ConnectionSettings) -> None:
        if not settings.endpoint:
            raise ConfigurationError("[hyperv] endpoint is not set")
        if not settings.endpoint.lower().startswith("https://") and settings.transport == "basic":
            raise ConfigurationError(
                "[hyperv] Basic authentication sends the password in clear text; use an https:// endpoint"
            )
        missing = {
            "kerberos": not winrm_transport.HAVE_KERBEROS,
            "credssp": not winrm_transport.HAVE_CREDSSP,
            "ntlm": not winrm_transport.HAVE_NTLM,
        }.get(settings.transport, False)
        if missing:
            raise ConfigurationError(
                f"[hyperv] transport {settings.transport} needs pywinrm[{settings.transport}] installed"
            )
        self.settings = settings
        self._local = threading.local()
        self._protocols: list[winrm.Protocol] = []
        self._lock = threading.Lock()

    def _protocol(self) -> winrm.Protocol:
        protocol = getattr(self._local, "protocol", None)
        if protocol is None:
            settings = self.settings
            try:
                protocol = winrm.Protocol(
                    settings.endpoint,
                    transport=settings.transport,  # type: ignore[arg-type]
                    username=settings.username,
                    password=settings.password,
                    server_cert_validation="validate" if settings.verify_tls else "ignore",
                    ca_trust_path=settings.ca_file or None,  # type: ignore[arg-type]
                    operation_timeout_sec=settings.operation_timeout,
                    read_timeout_sec=settings.operation_timeout + 10,
                    message_encryption=settings.message_encryption,  # type: ignore[arg-type]
                    proxy=None,
                )
            except WinRMError as exc:
                raise ConfigurationError(f"[hyperv] cannot set up WinRM: {exc}") from exc
            self._local.protocol = protocol
            with self._lock:
                self._protocols.append(protocol)
        return protocol

    def close(self) -> None:
        with self._lock:
            for protocol in self._protocols:
                protocol.transport.close_session()
            self._protocols.clear()
        self._local = threading.local()

    def run(self, operation: str, parameters: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run script ``operation``; typed errors for every way it can fail."""
        script = scripts.SCRIPTS[operation]
        started = time.monotonic()
        LOG.debug("hyperv: running %s on %s", operation, self.settings.endpoint)
        try:
            stdout, stderr, exit_code = self._execute(script, parameters, started + timeout)
        except InvalidCredentialsError as exc:
            raise AuthenticationFailed(
                f"[hyperv] WinRM at {self.settings.endpoint} rejected the credentials of "
                f"{self.settings.username!r} (HTTP 401); correct [hyperv] username and password"
            ) from exc
        except WSManFaultError as exc:
            if exc.wsman_fault_code == WSMAN_ACCESS_DENIED:
                raise WinRMAccessDenied(f"WinRM access denied: {exc.reason}") from exc
            raise ActionFailed(
                f"WS-Management fault {exc.wsman_fault_code or exc.fault_subcode}: {exc.reason}"
            ) from exc
        except WinRMTransportError as exc:
            raise ActionFailed(f"WinRM transport error: HTTP {exc.code}") from exc
        except requests.exceptions.SSLError as exc:
            server = f"WinRM at {self.settings.endpoint}"
            fix = "set [hyperv] ca_file to the CA that signed the WinRM listener's certificate"
            if (untrusted := untrusted_certificate(exc, "hyperv", server, fix)) is not None:
                raise untrusted from exc
            raise ActionFailed(f"TLS with WinRM at {self.settings.endpoint} failed: {exc}") from exc
        except requests.exceptions.Timeout as exc:
            raise TimedOut(f"{operation}: no answer from {self.settings.endpoint}") from exc
        except requests.exceptions.ConnectionError as exc:
            raise ActionFailed(f"cannot reach WinRM at {self.settings.endpoint}: {exc}") from exc
        except WinRMError as exc:
            raise ActionFailed(f"WinRM error: {exc}") from exc
        LOG.debug("hyperv: %s finished in %.3f s (exit %d)", operation, time.monotonic() - started, exit_code)
        if exit_code != 0:
            raise ActionFailed(f"{operation} failed: {powershell_error(stderr)}")
        return self._answer(operation, stdout)

    def _execute(self, script: str, parameters: dict[str, Any], deadline: float) -> tuple[bytes, bytes, int]:
        protocol = self._protocol()
        shell_id = protocol.open_shell()
        try:
            command_id = protocol.run_command(shell_id, "powershell.exe", scripts.command_arguments(script))
            protocol.send_command_input(shell_id, command_id, scripts.encode_parameters(parameters), end=True)
            stdout, stderr = bytearray(), bytearray()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._abandon(protocol, shell_id, command_id)
                    raise TimedOut("the PowerShell command did not finish in time; its outcome is unknown")
                protocol.operation_timeout_sec = max(
                    1, min(self.settings.operation_timeout, math.ceil(remaining))
                )
                try:
                    out, err, exit_code, done = protocol.get_command_output_raw(shell_id, command_id)
                except WinRMOperationTimeoutError:
                    continue
                stdout += out
                stderr += err
                if done:
                    break
            protocol.cleanup_command(shell_id, command_id)
        finally:
            protocol.operation_timeout_sec = self.settings.operation_timeout
            try:
                protocol.close_shell(shell_id, close_session=False)
            except (WinRMError, WinRMTransportError, requests.exceptions.RequestException):
                LOG.debug("hyperv: could not delete shell %s", shell_id)
        return bytes(stdout), bytes(stderr), exit_code

    @staticmethod
    def _abandon(protocol: winrm.Protocol, shell_id: str, command_id: str) -> None:
        try:
            protocol.cleanup_command(shell_id, command_id)
        except (WinRMError, WinRMTransportError, requests.exceptions.RequestException):
            LOG.debug("hyperv: could not signal command %s", command_id)

    @staticmethod
    def _answer(operation: str, stdout: bytes) -> dict[str, Any]:
        text = stdout.decode("utf-8", errors="replace").strip()
        try:
            answer = json.loads(text.splitlines()[-1]) if text else None
        except json.JSONDecodeError as exc:
            raise ActionFailed(f"{operation}: the host answered no JSON: {text[:200]!r}") from exc
        if not isinstance(answer, dict) or "Status" not in answer:
            raise ActionFailed(f"{operation}: unexpected answer {text[:200]!r}")
        status = answer["Status"]
        if status == "NotFound":
            raise NotFound(f"{operation}: no such virtual machine")
        if status == "HostNotFound":
            raise NotFound(f"{operation}: no such Hyper-V host")
        if status == "Unsupported":
            raise Unsupported(f"{operation}: {answer.get('Reason', 'not supported')}")
        if status != "OK":
            raise ActionFailed(f"{operation}: unexpected status {status!r}")
        return answer


_CLIXML_STRING = re.compile(r"_x([0-9A-Fa-f]{4})_")


def powershell_error(stderr: bytes) -> str:
    """The error text of PowerShell's CLIXML error stream, readable."""
    text = stderr.decode("utf-8", errors="replace")
    if not text.startswith("#< CLIXML"):
        return text.strip() or "(no error message)"
    try:
        root = ET.fromstring(text.split("\n", 1)[1])
    except (ET.ParseError, IndexError):
        return text.strip()
    parts = [
        node.text or ""
        for node in root.iter()
        if node.tag.endswith("}S") or node.tag == "S"
        if node.get("S") == "Error"
    ]
    message = "".join(parts)
    message = _CLIXML_STRING.sub(lambda m: chr(int(m.group(1), 16)), message)
    return message.strip() or "(no error message)"
