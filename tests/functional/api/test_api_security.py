"""Who may call the API, what it accepts, and what it never gives away."""

from __future__ import annotations

import json
import socket
import ssl
import sys
from pathlib import Path

import pytest
from api_helpers import INTERNAL_ERROR

from cotenancy.api import make_server
from cotenancy.exceptions import ConfigurationError

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.harness.wsman import certs  # noqa: E402

TOKEN = "s3cret-token-with-enough-entropy"


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends before it closes the connection (it does after an error)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def test_without_a_token_configured_loopback_calls_need_no_credentials(client) -> None:
    assert client.get("/v1").status == 200


def test_with_a_token_every_route_needs_the_bearer_token(start_server) -> None:
    client = start_server(auth_token=TOKEN)
    assert client.get("/v1/vms").status == 200
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
        for method, path in [("GET", "/v1/vms"), ("GET", "/v1/openapi.yaml"), ("DELETE", "/v1/rules/x")]:
            answer = client.call(method, path, headers=headers)
            assert answer.status == 401, (headers, path)
            assert answer.headers["www-authenticate"].startswith("Bearer")
            assert answer.error["message"] == "missing or wrong bearer token"
            assert TOKEN.encode() not in answer.raw
    # a refused POST creates nothing
    refused = client.post("/v1/drains", {"host_id": "h1"}, headers={"Authorization": "Bearer wrong"})
    assert refused.status == 401
    assert client.get("/v1/drains").json["items"] == []
    assert client.call("GET", "/v1/vms", headers={"Authorization": f"bearer {TOKEN}"}).status == 200


def test_listening_beyond_loopback_without_a_token_is_refused(api_conf_obj, seeded_store) -> None:
    with pytest.raises(ConfigurationError, match="auth_token"):
        make_server(api_conf_obj, seeded_store, listen="0.0.0.0:0")
    with pytest.raises(ConfigurationError, match="HOST:PORT"):
        make_server(api_conf_obj, seeded_store, listen="localhost")


def test_bad_bodies_get_clear_errors_and_store_nothing(client) -> None:
    answer = client.call(
        "POST", "/v1/rules", raw=b'{"type": "affinity",', headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400 and answer.error["field"] == "body"
    answer = client.call("POST", "/v1/rules", raw=b"type=affinity", headers={"Content-Type": "text/plain"})
    assert answer.status == 415 and answer.error["field"] == "Content-Type"
    answer = client.call(
        "POST", "/v1/rules", raw=b'{"type": NaN}', headers={"Content-Type": "application/json"}
    )
    assert answer.status == 400 and answer.error["field"] == "body"
    answer = client.post("/v1/rules", ["a", "b"])
    assert answer.status == 400 and answer.error["field"] == "body"
    assert client.get("/v1/rules?all=true").json["items"] == []


def test_oversized_bodies_are_refused_before_reading(start_server) -> None:
    client = start_server(max_body_bytes=2048)
    big = {"type": "affinity", "vm_ids": [f"vm-{i:06d}" for i in range(400)]}
    answer = client.post("/v1/rules", big)
    assert answer.status == 413
    assert answer.headers["connection"] == "close"
    assert client.get("/v1/rules").json["items"] == []


def test_a_body_without_length_is_refused(client) -> None:
    host, port = client.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/drains HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Transfer-Encoding: chunked\r\n\r\n10\r\n{"host_id":"h1"}\r\n0\r\n\r\n'
        )
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 411")


def test_wrong_routes_methods_and_query_parameters(client) -> None:
    answer = client.get("/v2/vms")
    assert answer.status == 404 and "field" not in answer.error
    answer = client.call("PUT", "/v1/rules")
    assert answer.status == 405 and answer.headers["allow"] == "GET, POST"
    answer = client.get("/v1/vms?hostid=h1")
    assert answer.status == 400 and answer.error["field"] == "hostid"
    answer = client.get("/v1/plans?limit=many")
    assert answer.status == 400 and answer.error["field"] == "limit"
    answer = client.get("/v1/plans?limit=1&limit=2")
    assert answer.status == 400 and answer.error["field"] == "limit"


def test_head_and_options_are_methods_not_allowed_with_the_allowed_ones(client) -> None:
    """A monitoring probe's HEAD or a browser's OPTIONS is a known method the routes do not serve:
    405 with Allow, as for PUT, not 501 "unsupported method"; a HEAD answer has no body, and the
    connection serves the next request."""
    connection = client.connection()
    try:
        connection.request("HEAD", "/v1")
        head = connection.getresponse()
        assert head.status == 405 and head.getheader("Allow") == "GET"
        assert head.read() == b""
        connection.request("OPTIONS", "/v1/rules")
        options = connection.getresponse()
        assert options.status == 405 and options.getheader("Allow") == "GET, POST"
        assert json.loads(options.read())["error"]["code"] == 405
        connection.request("GET", "/v1")
        assert connection.getresponse().status == 200
    finally:
        connection.close()


def test_malformed_http_gets_a_json_error(client) -> None:
    host, port = client.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"BREW /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = read_until_closed(sock)
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 501")
    assert b"application/json" in head
    assert b'"error"' in body


def test_an_internal_failure_is_500_without_details(client, caplog) -> None:
    def explode(call):
        raise RuntimeError("password=hunter2 in a stack frame")

    route = next(r for r in client.server.api.routes if r.template == "/v1/hosts")
    route.handler = explode
    answer = client.get("/v1/hosts")
    assert answer.status == 500
    assert answer.error == INTERNAL_ERROR
    assert b"hunter2" not in answer.raw and b"Traceback" not in answer.raw
    assert "hunter2" in caplog.text  # the operator's log keeps what went wrong
    assert client.get("/v1/vms").status == 200


def test_https_with_the_configured_certificate(start_server, tmp_path: Path) -> None:
    files = certs.generate(tmp_path / "tls")
    context = ssl.create_default_context(cafile=str(files.ca_file))
    client = start_server(
        ssl_context=context,
        cert_file=str(files.cert_file),
        key_file=str(files.key_file),
        auth_token=TOKEN,
    )
    assert client.server.url.startswith("https://127.0.0.1:")
    assert client.get("/v1/vms").status == 200
    # plain HTTP to the TLS port gets nothing usable, and the server keeps serving
    host, port = client.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            reply = sock.recv(4096)
        except ConnectionResetError:
            reply = b""
    assert b"200 OK" not in reply
    assert client.get("/v1").status == 200


def test_half_configured_tls_is_refused(api_conf_obj, seeded_store, tmp_path: Path) -> None:
    api_conf_obj.set_override("cert_file", str(tmp_path / "missing.pem"), group="api")
    with pytest.raises(ConfigurationError, match="key_file"):
        make_server(api_conf_obj, seeded_store, listen="127.0.0.1:0")
    api_conf_obj.set_override("key_file", str(tmp_path / "missing.key"), group="api")
    with pytest.raises(ConfigurationError, match="cannot load"):
        make_server(api_conf_obj, seeded_store, listen="127.0.0.1:0")
