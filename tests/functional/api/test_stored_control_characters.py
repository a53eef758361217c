"""Requests stored before control characters were refused may still hold them: read back, through
the API, into the plan ``cotenancy plan`` prints and into the server log, they are shown as escapes
(``\\n``, ``\\x1b``), so such a name cannot forge a line, a table row or a terminal command."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from api_helpers import Client, serving

from cotenancy.model import VM, Host, Inventory, Resources
from cotenancy.plan.planner import Planner
from cotenancy.plan.problem import PlannerSettings
from cotenancy.plan.report import format_plan
from cotenancy.store import HistoryStore, schema
from cotenancy.store.requests import RequestKind, RequestStore, apply_requests
from cotenancy.text import CONTROL_CHARACTERS

NOW = 1_800_000_000.0
FORGED = "FORGED plan abc by evil: 0 steps"
#: as an older release stored them (PostgreSQL never held NUL: it refused it)
OLD_ROWS = [
    {
        "id": "r" * 32,
        "kind": "rule",
        # a hard anti-affinity rule over three VMs on two hosts: it is named in the plan
        "spec": {
            "type": "anti_affinity",
            "vm_ids": ["a", "b", "c"],
            "hard": True,
            "name": f"spread\n{FORGED}",
        },
        "created_at": NOW - 60,
        "expires_at": None,
        "created_by": "jdoe\x1b[2J\u2028",
    },
    {
        "id": "d" * 32,
        "kind": "drain",
        "spec": {"host_id": "h9", "reason": "BIOS\r\x85update\x9b31m"},
        "created_at": NOW - 60,
        "expires_at": None,
        "created_by": "ops\x7f",
    },
    {
        "id": "h" * 32,
        "kind": "hint",
        "spec": {
            "name": "sale\x1b]0;owned\x07",
            "vm_ids": ["a\nb"],
            "start": NOW,
            "end": NOW + 3600,
            "demand": {"cpu": 2.0},
        },
        "created_at": NOW - 60,
        "expires_at": None,
        "created_by": "api",
    },
]


@pytest.fixture
def old_store(history_store: HistoryStore) -> HistoryStore:
    with history_store.engine.begin() as connection:
        connection.execute(schema.api_requests.insert(), OLD_ROWS)
    return history_store


@pytest.fixture
def old_client(api_conf_obj, old_store: HistoryStore) -> Iterator[Client]:
    with serving(api_conf_obj, old_store, lambda: NOW) as client:
        yield client


def texts(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [t for v in value.values() for t in texts(v)]
    if isinstance(value, list):
        return [t for v in value for t in texts(v)]
    return []


def test_stored_control_characters_are_read_back_as_escapes(old_store) -> None:
    requests = {r.kind: r for r in RequestStore(old_store).list(None, NOW, include_inactive=True)}
    assert requests[RequestKind.RULE].spec["name"] == f"spread\\n{FORGED}"
    assert requests[RequestKind.RULE].created_by == "jdoe\\x1b[2J\\u2028"
    assert requests[RequestKind.DRAIN].spec["reason"] == "BIOS\\r\\x85update\\x9b31m"
    assert requests[RequestKind.HINT].spec["vm_ids"] == ["a\\nb"]
    for request in requests.values():
        assert not [t for t in texts(request.as_dict(NOW)) if CONTROL_CHARACTERS.search(t)]


def test_the_api_answers_stored_control_characters_as_escapes(old_client) -> None:
    for collection in ("rules", "drains", "hints"):
        listed = old_client.get(f"/v1/{collection}?all=true")
        assert listed.status == 200
        (item,) = listed.json["items"]
        one = old_client.get(f"/v1/{collection}/{item['id']}").json
        found = [t for t in texts(item) + texts(one) if CONTROL_CHARACTERS.search(t)]
        assert found == [], collection
        # nor C1 controls or line separators raw in the bytes sent (JSON escapes only C0); the
        # answer ends with its one newline
        assert not CONTROL_CHARACTERS.search(listed.raw.decode("utf-8").removesuffix("\n"))


def test_the_plan_table_and_log_show_a_stored_rule_name_without_forging_a_line(old_store, caplog) -> None:
    hosts = {h: Host(h, h, Resources(cpu=40000, memory=65536)) for h in ("h1", "h2")}
    vms = {v: VM(v, v, "h1" if v != "c" else "h2", Resources(cpu=1000, memory=1024)) for v in "abc"}
    inventory = apply_requests(old_store, Inventory(hosts=hosts, vms=vms), NOW)
    with caplog.at_level(logging.WARNING):
        plan = Planner(PlannerSettings(time_limit=5.0)).plan(inventory, strategy="test")
    assert "spread" in plan.stats["unsatisfied"]
    printed = format_plan(plan).splitlines()
    assert not [line for line in printed if line.startswith("FORGED") or CONTROL_CHARACTERS.search(line)]
    assert any(f"spread\\n{FORGED}" in line for line in printed)
    logged = [r.getMessage() for r in caplog.records if "spread" in r.getMessage()]
    assert logged and not [m for m in logged if CONTROL_CHARACTERS.search(m)]
