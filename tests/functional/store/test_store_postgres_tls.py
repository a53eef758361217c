"""A PostgreSQL history store on another machine is reached over verified TLS unless the URL says
otherwise: the API and the loop log in to it with a password and read from it the drains and
rules that steer the cloud, so a server that cannot prove who it is must not get either. libpq's
own default (``sslmode=prefer``) takes any certificate, or none.

The server here is real TLS with a certificate no system CA signed, in front of no database: it
answers PostgreSQL's SSL negotiation and records whether a client went on to send its startup
message (the step before the password).
"""

from __future__ import annotations

import socket
import ssl
import struct
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cotenancy.store import HistoryStore
from cotenancy.store.history import normalise_url

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from tests.harness.wsman import certs  # noqa: E402

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


class FakePostgres:
    """Accepts connections on a loopback port and records how each startup message arrived."""

    def __init__(self, files: certs.CertificateFiles) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(files.cert_file, files.key_file)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.startups: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                connection.settimeout(10)
                self._one(connection)

    def _one(self, connection: socket.socket) -> None:
        stream: socket.socket = connection
        while True:
            header = _read(stream, 8)
            if header is None:
                return
            _length, code = struct.unpack("!ii", header)
            if code == GSSENC_REQUEST:
                stream.sendall(b"N")
            elif code == SSL_REQUEST and stream is connection:
                connection.sendall(b"S")
                try:
                    stream = self.context.wrap_socket(connection, server_side=True)
                except (ssl.SSLError, OSError):
                    return
            else:
                self.startups.append("tls" if stream is not connection else "plain")
                return

    def close(self) -> None:
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() waiting in the thread
        self.listener.close()
        self.thread.join(timeout=10)


def _read(stream: socket.socket, size: int) -> bytes | None:
    """``size`` bytes, or None when the client hangs up first (TLS sockets take no recv flags)."""
    data = b""
    while len(data) < size:
        try:
            chunk = stream.recv(size - len(data))
        except OSError:
            return None
        if not chunk:
            return None
        data += chunk
    return data


@pytest.fixture
def fake_postgres(tmp_path: Path) -> Iterator[FakePostgres]:
    server = FakePostgres(certs.generate(tmp_path / "tls"))
    try:
        yield server
    finally:
        server.close()


def remote_url(port: int, query: str = "") -> str:
    """A server named db.example.test, reached at the fake's loopback address (libpq's hostaddr
    spares a DNS entry; the name is what TLS verifies)."""
    return f"postgresql://cotenancy:s3cret@db.example.test:{port}/cotenancy?hostaddr=127.0.0.1{query}"


def test_a_remote_server_without_a_trusted_certificate_gets_no_login(fake_postgres: FakePostgres) -> None:
    with pytest.raises(sa.exc.OperationalError) as failure:
        HistoryStore(remote_url(fake_postgres.port))
    assert fake_postgres.startups == []
    assert "certificate" in str(failure.value)
    assert "s3cret" not in str(failure.value)


def test_an_explicit_sslmode_is_kept(fake_postgres: FakePostgres) -> None:
    """The operator's own choice wins, here libpq's default, which sends the login to anyone."""
    with pytest.raises(sa.exc.OperationalError):
        HistoryStore(remote_url(fake_postgres.port, "&sslmode=prefer"))
    assert "tls" in fake_postgres.startups


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p@127.0.0.1/db",
        "postgresql://u:p@localhost:5433/db",
        "postgresql://u:p@[::1]/db",
        "postgresql://u:p@/db?host=/var/run/postgresql",
        "postgresql://u:p@/db",
        "postgresql://u:p@/db?host=127.0.0.1:5432&host=localhost:5433",
    ],
)
def test_a_server_on_this_machine_keeps_libpq_defaults(url: str) -> None:
    assert "sslmode" not in normalise_url(url).query


def test_remote_servers_are_verified_against_the_system_cas_by_default() -> None:
    query = normalise_url("postgresql://u:p@db.example.test/db").query
    assert query["sslmode"] == "verify-full"
    assert query["sslrootcert"] == "system"
    several = normalise_url("postgresql://u:p@/db?host=127.0.0.1:5432&host=db.example.test:5432").query
    assert several["sslmode"] == "verify-full"
    own_ca = normalise_url("postgresql://u:p@db.example.test/db?sslrootcert=/etc/ca.pem").query
    assert own_ca["sslmode"] == "verify-full"
    assert own_ca["sslrootcert"] == "/etc/ca.pem"
