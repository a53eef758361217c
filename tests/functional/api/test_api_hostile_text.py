"""Text a client sends (ids, names, query values) is stored and returned exactly when it is
printable, however hostile to shells, and refused with a 400 naming where it is when it holds
control characters, on every store backend: PostgreSQL cannot store NUL at all (a 500 before),
and a newline or terminal escape in a hint's name, a ``created_by`` or a request line forged
lines in the server log and in the plan table ``cotenancy plan`` prints."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from api_helpers import NOW, Client, seed, serving

from cotenancy.store import HistoryStore

#: C0, DEL and C1 control characters, and the separators that end a line in Python and JavaScript
CONTROL = ["\x00", "\n", "\r", "\x1b[2J", "\x7f", "\x85", "\x9b", "\u2028"]

PRINTABLE_HOSTILE = [
    "vm; rm -rf / #",
    "$(reboot)`id`",
    "vm'; DROP TABLE api_requests; --",
    '"; Stop-Computer -Force; $x="',
    "& calc.exe | Out-Null @{a=1}",
    "vm-ünïcødé-虚拟机-🖥️",
    "%s%n{0}{{7*7}}",
    "x" * 255,
]

CREATES = {
    "drains": lambda text: {"host_id": text, "reason": "r"},
    "critical": lambda text: {"vm_id": text, "reason": "r"},
    "rules": lambda text: {"type": "affinity", "vm_ids": ["web-1", text]},
    "hints": lambda text: {"vm_ids": [text], "start": NOW, "end": NOW + 3600, "demand": {"cpu": 2}},
}


@pytest.fixture
def backend_client(api_conf_obj, history_store: HistoryStore, clock) -> Iterator[Client]:
    """A real server over a seeded store, once on SQLite and once on PostgreSQL."""
    seed(history_store)
    with serving(api_conf_obj, history_store, clock) as client:
        yield client


def stored(client: Client) -> int:
    return sum(len(client.get(f"/v1/{c}?all=true").json["items"]) for c in CREATES)


@pytest.mark.parametrize("text", PRINTABLE_HOSTILE, ids=range(len(PRINTABLE_HOSTILE)))
def test_printable_hostile_text_is_stored_and_returned_exactly(backend_client, text: str) -> None:
    for collection, body in CREATES.items():
        created = backend_client.post(f"/v1/{collection}", body(text) | {"created_by": text})
        assert created.status == 201, created.json
        again = backend_client.get(created.headers["location"]).json
        assert again["created_by"] == text
        assert text in (again.get("host_id"), again.get("vm_id"), *again.get("vm_ids", []))
        assert again["unknown"] == [text]
    vm = backend_client.get(f"/v1/vms/{quote(text, safe='')}")
    assert vm.status == 404 and vm.error["field"] == "vm_id"
    assert backend_client.get(f"/v1/events?vm_id={quote(text, safe='')}&since=0").json["events"] == []


@pytest.mark.parametrize("bad", CONTROL, ids=[repr(c) for c in CONTROL])
def test_control_characters_in_a_body_are_refused_naming_the_field(backend_client, bad: str) -> None:
    cases = [
        ("drains", {"host_id": f"h{bad}1"}, "host_id"),
        ("drains", {"host_id": "h1", "reason": f"BIOS{bad}update"}, "reason"),
        ("critical", {"vm_id": "web-1", "created_by": f"jdoe{bad}"}, "created_by"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", f"web{bad}2"]}, "vm_ids[1]"),
        ("rules", {"type": "affinity", "vm_ids": ["web-1", "web-2"], "name": f"n{bad}"}, "name"),
        ("hints", {"app_type": f"web{bad}", "start": NOW, "end": NOW + 60, "demand": {"cpu": 2}}, "app_type"),
        (
            "hints",
            {"vm_ids": ["web-1"], "start": NOW, "end": NOW + 60, "demand": {"cpu": 2}, "name": f"sale{bad}"},
            "name",
        ),
    ]
    for collection, body, field in cases:
        answer = backend_client.post(f"/v1/{collection}", body)
        assert answer.status == 400, (collection, field, answer.raw)
        assert answer.error["field"] == field
        assert "control character" in answer.error["message"]
    assert stored(backend_client) == 0


@pytest.mark.parametrize("bad", CONTROL, ids=[repr(c) for c in CONTROL])
def test_control_characters_in_a_query_or_path_are_a_400_naming_it(backend_client, bad: str) -> None:
    text = quote(f"web{bad}1", safe="")
    cases = [
        (f"/v1/vms/{text}", "vm_id"),
        (f"/v1/hosts/{text}", "host_id"),
        (f"/v1/plans/{text}", "plan_id"),
        (f"/v1/drains/{text}", "request_id"),
        (f"/v1/predictions/forecast/{text}", "vm_id"),
        (f"/v1/vms?host_id={text}", "host_id"),
        (f"/v1/plans?strategy={text}", "strategy"),
        (f"/v1/events?vm_id={text}", "vm_id"),
        (f"/v1/events?host_id={text}", "host_id"),
        (f"/v1/predictions/pairs?vm_id={text}", "vm_id"),
    ]
    for path, field in cases:
        answer = backend_client.get(path)
        assert answer.status == 400, (path, answer.raw)
        assert answer.error["field"] == field
        assert "control character" in answer.error["message"]
    answer = backend_client.delete(f"/v1/rules/{text}")
    assert answer.status == 400 and answer.error["field"] == "request_id"


def test_the_access_log_shows_control_characters_escaped(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="cotenancy.api")
    host, port = client.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /v1/hosts\x1b[31m\rFORGED HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        while sock.recv(4096):
            pass
    lines = [r.getMessage() for r in caplog.records if "FORGED" in r.getMessage()]
    assert lines, caplog.text
    assert all("\x1b" not in line and "\r" not in line for line in lines)
    assert any("\\x1b[31m\\rFORGED" in line for line in lines)
