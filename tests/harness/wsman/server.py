"""A loopback WS-Management server speaking the Windows Remote Shell protocol pywinrm uses.

Operations: Create (a shell), Command, Send (stdin), Receive (stdout/stderr/exit code), Signal
and Delete, as SOAP 1.2 over HTTP or HTTPS, with Basic or NTLM authentication (NTLM through
pyspnego's acceptor, with channel-binding checks over TLS) and WS-Management faults shaped like
Windows sends them. Commands run ``powershell -EncodedCommand`` against :class:`HyperVResponder`.

Only for tests: it binds to 127.0.0.1 and keeps everything in memory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import ssl
import tempfile
import threading
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import spnego
from spnego.channel_bindings import GssChannelBindings

from .certs import CertificateFiles
from .hyperv import HyperVResponder

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "a": "http://schemas.xmlsoap.org/ws/2004/08/addressing",
    "w": "http://schemas.dmtf.org/wbem/wsman/1/wsman.xsd",
    "rsp": "http://schemas.microsoft.com/wbem/wsman/1/windows/shell",
    "x": "http://schemas.xmlsoap.org/ws/2004/09/transfer",
    "f": "http://schemas.microsoft.com/wbem/wsman/1/wsmanfault",
}
SHELL_URI = "http://schemas.microsoft.com/wbem/wsman/1/windows/shell"
TRANSFER = "http://schemas.xmlsoap.org/ws/2004/09/transfer"
FAULT_ACTION = "http://schemas.dmtf.org/wbem/wsman/1/wsman/fault"
DONE = SHELL_URI + "/CommandState/Done"
RUNNING = SHELL_URI + "/CommandState/Running"

# Windows' WSManFault codes (winerror.h) for the faults served here
OPERATION_TIMEOUT = 2150858793
SHELL_NOT_FOUND = 2150858843
ACCESS_DENIED = 5


class Fault(Exception):
    """A WS-Management fault to send back: SOAP code, subcode, reason and WSManFault code."""

    def __init__(self, code: str, subcode: str, reason: str, wsman_code: int) -> None:
        super().__init__(reason)
        self.code = code
        self.subcode = subcode
        self.reason = reason
        self.wsman_code = wsman_code


@dataclass
class CommandRecord:
    command_line: str
    stdin: bytearray = field(default_factory=bytearray)
    started: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    stdout: bytes = b""
    stderr: bytes = b""
    exit_code: int = 0
    stdout_sent: int = 0


@dataclass
class ShellRecord:
    commands: dict[str, CommandRecord] = field(default_factory=dict)


class WSManServer:
    """The server, its shells and the responder behind it. Use as a context manager."""

    def __init__(
        self,
        responder: HyperVResponder | None = None,
        users: dict[str, str] | None = None,
        certificates: CertificateFiles | None = None,
        auth_schemes: tuple[str, ...] = ("basic", "ntlm"),
    ) -> None:
        self.responder = responder or HyperVResponder()
        self.users = users or {"administrator": "Secr3t!pass"}
        self.certificates = certificates
        self.auth_schemes = auth_schemes
        self.shells: dict[str, ShellRecord] = {}
        self.lock = threading.Lock()
        self.requests: list[str] = []
        self.injected: list[tuple[str, Fault]] = []
        self.auth_failures = 0
        #: stdout goes out in pieces of this size, in several Receive answers (as Windows does
        #: for large output), so clients must keep receiving until the command state is Done
        self.receive_chunk_bytes = 4096
        self._user_file = self._write_ntlm_user_file()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.cbt: GssChannelBindings | None = None
        if certificates is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(certificates.cert_file, certificates.key_file)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            der = ssl.PEM_cert_to_DER_cert(certificates.cert_file.read_text())
            self.cbt = GssChannelBindings(
                application_data=b"tls-server-end-point:" + hashlib.sha256(der).digest()
            )
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name="wsman-server")

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        scheme = "https" if self.certificates else "http"
        return f"{scheme}://127.0.0.1:{self.port}/wsman"

    def start(self) -> WSManServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        Path(self._user_file).unlink(missing_ok=True)

    def __enter__(self) -> WSManServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def inject_fault(
        self, action: str, reason: str, wsman_code: int = ACCESS_DENIED, subcode: str = "w:AccessDenied"
    ) -> None:
        """Answer the next request whose action ends with ``action`` with this fault."""
        with self.lock:
            self.injected.append((action, Fault("s:Sender", subcode, reason, wsman_code)))

    def _write_ntlm_user_file(self) -> str:
        """pyspnego's NTLM acceptor reads accounts from ``$NTLM_USER_FILE`` (process-wide), so
        the last server started in a process defines the NTLM accounts."""
        handle, path = tempfile.mkstemp(prefix="wsman-ntlm-", suffix=".txt")
        with os.fdopen(handle, "w") as stream:
            for user, password in self.users.items():
                stream.write(f":{user}:{password}\nWSMAN:{user}:{password}\n")
        os.environ["NTLM_USER_FILE"] = path
        return path

    # ------------------------------------------------------------ SOAP operations

    def dispatch(self, body: bytes) -> tuple[int, bytes]:
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 400, _fault_envelope(
                "",
                Fault(
                    "s:Sender",
                    "w:SchemaValidationError",
                    "The SOAP XML in the message is not valid.",
                    2150858817,
                ),
            )
        header = root.find("s:Header", NS)
        message_id = _text(header, "a:MessageID")
        action = _text(header, "a:Action")
        with self.lock:
            self.requests.append(action)
            for index, (suffix, fault) in enumerate(self.injected):
                if action.endswith(suffix):
                    del self.injected[index]
                    return 500, _fault_envelope(message_id, fault)
        try:
            handler = {
                TRANSFER + "/Create": self.create,
                SHELL_URI + "/Command": self.command,
                SHELL_URI + "/Send": self.send,
                SHELL_URI + "/Receive": self.receive,
                SHELL_URI + "/Signal": self.signal,
                TRANSFER + "/Delete": self.delete,
            }.get(action)
            if handler is None:
                raise Fault(
                    "s:Sender",
                    "a:ActionNotSupported",
                    f"The action {action} is not supported by the service.",
                    2150858783,
                )
            response_action, payload = handler(root)
        except Fault as fault:
            return 500, _fault_envelope(message_id, fault)
        return 200, _envelope(response_action, message_id, payload)

    def _shell(self, root: ET.Element) -> tuple[str, ShellRecord]:
        selector = root.find("s:Header/w:SelectorSet/w:Selector[@Name='ShellId']", NS)
        shell_id = selector.text if selector is not None and selector.text else ""
        with self.lock:
            shell = self.shells.get(shell_id)
        if shell is None:
            raise Fault(
                "s:Sender",
                "w:InvalidSelectors",
                f"The request for the Windows Remote Shell with ShellId {shell_id} "
                "failed because the shell was not found on the server.",
                SHELL_NOT_FOUND,
            )
        return shell_id, shell

    def _command(self, shell: ShellRecord, command_id: str | None) -> CommandRecord:
        record = shell.commands.get(command_id or "")
        if record is None:
            raise Fault(
                "s:Sender",
                "w:InvalidParameter",
                f"The command {command_id} was not found in this shell.",
                2150858882,
            )
        return record

    def create(self, root: ET.Element) -> tuple[str, str]:
        shell_id = str(uuid.uuid4()).upper()
        with self.lock:
            self.shells[shell_id] = ShellRecord()
        return TRANSFER + "/CreateResponse", (
            "<x:ResourceCreated><a:Address>http://127.0.0.1/wsman</a:Address>"
            "<a:ReferenceParameters><w:ResourceURI>http://schemas.microsoft.com/wbem/wsman/1/"
            "windows/shell/cmd</w:ResourceURI><w:SelectorSet>"
            f'<w:Selector Name="ShellId">{shell_id}</w:Selector></w:SelectorSet>'
            "</a:ReferenceParameters></x:ResourceCreated>"
            f"<rsp:Shell><rsp:ShellId>{shell_id}</rsp:ShellId>"
            "<rsp:InputStreams>stdin</rsp:InputStreams>"
            "<rsp:OutputStreams>stdout stderr</rsp:OutputStreams></rsp:Shell>"
        )

    def command(self, root: ET.Element) -> tuple[str, str]:
        _, shell = self._shell(root)
        line = root.find("s:Body/rsp:CommandLine", NS)
        if line is None:
            raise Fault("s:Sender", "w:SchemaValidationError", "No rsp:CommandLine.", 2150858817)
        words = [_text(line, "rsp:Command")]
        words += [(a.text or "") for a in line.findall("rsp:Arguments", NS)]
        command_id = str(uuid.uuid4()).upper()
        with self.lock:
            shell.commands[command_id] = CommandRecord(" ".join(w for w in words if w))
        return SHELL_URI + "/CommandResponse", (
            f"<rsp:CommandResponse><rsp:CommandId>{command_id}</rsp:CommandId></rsp:CommandResponse>"
        )

    def send(self, root: ET.Element) -> tuple[str, str]:
        _, shell = self._shell(root)
        stream = root.find("s:Body/rsp:Send/rsp:Stream", NS)
        if stream is None:
            raise Fault("s:Sender", "w:SchemaValidationError", "No rsp:Stream.", 2150858817)
        record = self._command(shell, stream.get("CommandId"))
        if record.started:
            raise Fault("s:Sender", "w:InvalidParameter", "stdin is already closed.", 2150858882)
        record.stdin.extend(base64.b64decode(stream.text or ""))
        if stream.get("End", "false").lower() == "true":
            self._start(record)
        return SHELL_URI + "/SendResponse", "<rsp:SendResponse/>"

    def _start(self, record: CommandRecord) -> None:
        record.started = True

        def run() -> None:
            try:
                stdin = record.stdin.decode("cp437")
                record.stdout, record.stderr, record.exit_code = self.responder.execute(
                    record.command_line, stdin
                )
            except Exception as exc:  # a harness bug must reach the client, not hang it
                record.stderr, record.exit_code = f"harness error: {exc!r}".encode(), 1
            finally:
                record.done.set()

        threading.Thread(target=run, daemon=True, name="wsman-command").start()

    def receive(self, root: ET.Element) -> tuple[str, str]:
        _, shell = self._shell(root)
        desired = root.find("s:Body/rsp:Receive/rsp:DesiredStream", NS)
        command_id = desired.get("CommandId") if desired is not None else None
        record = self._command(shell, command_id)
        if not record.started:
            self._start(record)
        timeout = _duration_seconds(_text(root.find("s:Header", NS), "w:OperationTimeout"))
        if not record.done.wait(timeout):
            raise Fault(
                "s:Receiver",
                "w:TimedOut",
                "The WS-Management service cannot complete "
                "the operation within the time specified in OperationTimeout.",
                OPERATION_TIMEOUT,
            )
        start = record.stdout_sent
        piece = record.stdout[start : start + self.receive_chunk_bytes]
        record.stdout_sent = start + len(piece)
        finished = record.stdout_sent >= len(record.stdout)
        streams = ""
        if piece:
            streams += (
                f'<rsp:Stream Name="stdout" CommandId="{command_id}">'
                f"{base64.b64encode(piece).decode()}</rsp:Stream>"
            )
        if not finished:
            return SHELL_URI + "/ReceiveResponse", (
                f'<rsp:ReceiveResponse>{streams}<rsp:CommandState CommandId="{command_id}" '
                f'State="{RUNNING}"/></rsp:ReceiveResponse>'
            )
        if record.stderr:
            streams += (
                f'<rsp:Stream Name="stderr" CommandId="{command_id}">'
                f"{base64.b64encode(record.stderr).decode()}</rsp:Stream>"
            )
        for name in ("stdout", "stderr"):
            streams += f'<rsp:Stream Name="{name}" CommandId="{command_id}" End="true"/>'
        return SHELL_URI + "/ReceiveResponse", (
            f'<rsp:ReceiveResponse>{streams}<rsp:CommandState CommandId="{command_id}" '
            f'State="{DONE}"><rsp:ExitCode>{record.exit_code}</rsp:ExitCode>'
            "</rsp:CommandState></rsp:ReceiveResponse>"
        )

    def signal(self, root: ET.Element) -> tuple[str, str]:
        _, shell = self._shell(root)
        signal = root.find("s:Body/rsp:Signal", NS)
        command_id = signal.get("CommandId") if signal is not None else None
        with self.lock:
            shell.commands.pop(command_id or "", None)
        return SHELL_URI + "/SignalResponse", "<rsp:SignalResponse/>"

    def delete(self, root: ET.Element) -> tuple[str, str]:
        shell_id, _ = self._shell(root)
        with self.lock:
            self.shells.pop(shell_id, None)
        return TRANSFER + "/DeleteResponse", ""

    # ------------------------------------------------------------ HTTP and authentication

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            ntlm: Any = None
            authenticated = False

            def setup(self) -> None:
                """No Nagle: headers and body go out in separate writes."""
                super().setup()
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Quiet: tests read state, not logs (and logs would hold headers)."""

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length) if length else b""
                if self.path.rstrip("/").lower() != "/wsman":
                    self._reply(404, b"", "text/plain")
                    return
                if not self._authenticate():
                    return
                if not body:
                    self._reply(200, b"", "application/soap+xml;charset=UTF-8")
                    return
                status, payload = server.dispatch(body)
                self._reply(status, payload, "application/soap+xml;charset=UTF-8")

            def _authenticate(self) -> bool:
                header = self.headers.get("Authorization", "")
                scheme, _, value = header.partition(" ")
                scheme = scheme.lower()
                if self.authenticated and not header:
                    return True
                if scheme == "basic" and "basic" in server.auth_schemes:
                    user, _, password = base64.b64decode(value).decode("utf-8").partition(":")
                    if server.users.get(user.split("\\")[-1].lower()) == password:
                        return True
                elif scheme in ("negotiate", "ntlm") and "ntlm" in server.auth_schemes:
                    return self._ntlm_step(scheme, value)
                server.auth_failures += 1
                self._challenge()
                return False

            def _ntlm_step(self, scheme: str, value: str) -> bool:
                token = base64.b64decode(value)
                if token[8:12] == b"\x01\x00\x00\x00" or self.ntlm is None:
                    self.ntlm = spnego.server(protocol="ntlm", channel_bindings=server.cbt)
                    self.authenticated = False
                try:
                    answer = self.ntlm.step(token)
                except spnego.exceptions.SpnegoError:
                    self.ntlm = None
                    server.auth_failures += 1
                    self._challenge()
                    return False
                if self.ntlm.complete:
                    self.authenticated = True
                    return True
                label = "Negotiate" if scheme == "negotiate" else "NTLM"
                challenge = f"{label} {base64.b64encode(answer or b'').decode()}"
                self._reply(401, b"", "text/plain", {"WWW-Authenticate": challenge})
                return False

            def _challenge(self) -> None:
                headers = []
                if "ntlm" in server.auth_schemes:
                    headers += ["Negotiate", "NTLM"]
                if "basic" in server.auth_schemes:
                    headers.append('Basic realm="WSMAN"')
                self._reply(401, b"", "text/plain", {"WWW-Authenticate": headers})

            def _reply(
                self, status: int, payload: bytes, content_type: str, headers: dict[str, Any] | None = None
            ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                for name, values in (headers or {}).items():
                    for value in values if isinstance(values, list) else [values]:
                        self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)

        return Handler


def _text(parent: ET.Element | None, path: str) -> str:
    if parent is None:
        return ""
    node = parent.find(path, NS)
    return (node.text or "").strip() if node is not None else ""


def _duration_seconds(value: str) -> float:
    """``PT20S`` / ``PT20.000S`` -> 20.0 (the only form pywinrm sends)."""
    if value.upper().startswith("PT") and value.upper().endswith("S"):
        try:
            return float(value[2:-1])
        except ValueError:
            pass
    return 60.0


def _namespaces() -> str:
    return " ".join(f'xmlns:{prefix}="{uri}"' for prefix, uri in NS.items())


def _envelope(action: str, relates_to: str, body: str) -> bytes:
    return (
        f'<s:Envelope {_namespaces()} xml:lang="en-US"><s:Header>'
        f"<a:Action>{action}</a:Action><a:MessageID>uuid:{uuid.uuid4()}</a:MessageID>"
        "<a:To>http://schemas.xmlsoap.org/ws/2004/08/addressing/role/anonymous</a:To>"
        f"<a:RelatesTo>{escape(relates_to)}</a:RelatesTo></s:Header>"
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault_envelope(relates_to: str, fault: Fault) -> bytes:
    body = (
        f"<s:Fault><s:Code><s:Value>{fault.code}</s:Value><s:Subcode>"
        f"<s:Value>{fault.subcode}</s:Value></s:Subcode></s:Code>"
        f'<s:Reason><s:Text xml:lang="en-US">{escape(fault.reason)}</s:Text></s:Reason>'
        f'<s:Detail><f:WSManFault Code="{fault.wsman_code}" Machine="127.0.0.1">'
        f"<f:Message>{escape(fault.reason)}</f:Message></f:WSManFault></s:Detail></s:Fault>"
    )
    return _envelope(FAULT_ACTION, relates_to, body)
