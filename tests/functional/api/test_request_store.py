"""The ``api_requests`` table on SQLite and PostgreSQL: requests round-trip, expire, conflict, and
turn into the rules, maintenance flags, critical flags and forecaster hints the loop uses."""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cotenancy.exceptions import NotFound
from cotenancy.model import VM, Host, Inventory, Resources, RuleKind, WorkloadClass
from cotenancy.model.policy import AffinityRule
from cotenancy.predict.hints import apply_hints
from cotenancy.store import HistoryStore
from cotenancy.store.requests import (
    Conflict,
    InvalidRequest,
    RequestKind,
    RequestStore,
    active_hints,
    apply_requests,
    forecaster_calendar,
)

#: 2027-01-15T08:00:00Z
NOW = 1_800_000_000.0


def inventory() -> Inventory:
    return Inventory(
        hosts={
            "h1": Host("h1", "host-1", Resources(cpu=8000, memory=16384)),
            "h2": Host("h2", "host-2", Resources(cpu=8000, memory=16384)),
        },
        vms={
            "a": VM("a", "alpha", "h1", Resources(cpu=1000), workload=WorkloadClass("web")),
            "b": VM("b", "beta", "h1", Resources(cpu=1000), workload=WorkloadClass("web")),
            "c*1": VM("c*1", "gamma", "h2", Resources(cpu=1000), workload=WorkloadClass("batch")),
        },
        rules=[AffinityRule("from-the-cloud", RuleKind.AFFINITY, frozenset({"a", "b"}))],
    )


def test_every_kind_round_trips(history_store) -> None:
    requests = RequestStore(history_store)
    bodies = {
        RequestKind.HINT: {
            "vm_ids": ["a"],
            "start": "2027-01-15T08:00:00+01:00",
            "end": NOW + 3600,
            "demand": {"cpu": 1.5, "network": 3},
            "name": "sale",
        },
        RequestKind.RULE: {"type": "anti_affinity", "vm_ids": ["a", "b", "a"], "created_by": "me"},
        RequestKind.DRAIN: {"host_id": "h1", "reason": "BIOS update", "expires_at": NOW + 60},
        RequestKind.CRITICAL: {"vm_id": "b"},
    }
    created = {kind: requests.add(kind, body, NOW + i) for i, (kind, body) in enumerate(bodies.items())}
    hint = requests.get(RequestKind.HINT, created[RequestKind.HINT].id)
    assert hint.spec == {
        "name": "sale",
        "vm_ids": ["a"],
        "start": dt.datetime(2027, 1, 15, 7, 0, tzinfo=dt.UTC).timestamp(),
        "end": NOW + 3600,
        "demand": {"cpu": 1.5, "network": 3.0},
    }
    rule = requests.get(RequestKind.RULE, created[RequestKind.RULE].id)
    assert rule.spec["vm_ids"] == ["a", "b"] and rule.spec["hard"] is True
    assert rule.created_by == "me" and created[RequestKind.HINT].created_by == "api"
    assert requests.get(RequestKind.DRAIN, created[RequestKind.DRAIN].id).expires_at == NOW + 60
    assert [r.kind for r in requests.list(None, NOW + 5)] == list(bodies)  # oldest first
    assert [r.id for r in requests.list(RequestKind.CRITICAL, NOW + 5)] == [created[RequestKind.CRITICAL].id]
    # ids are per kind: a rule id is not a drain
    with pytest.raises(NotFound):
        requests.get(RequestKind.DRAIN, created[RequestKind.RULE].id)
    requests.delete(RequestKind.RULE, created[RequestKind.RULE].id)
    with pytest.raises(NotFound):
        requests.delete(RequestKind.RULE, created[RequestKind.RULE].id)
    assert len(requests.list(None, NOW + 5, include_inactive=True)) == 3


def test_expiry_and_the_end_of_a_hint(history_store) -> None:
    requests = RequestStore(history_store)
    drain = requests.add(RequestKind.DRAIN, {"host_id": "h1", "expires_at": NOW + 60}, NOW)
    hint = requests.add(
        RequestKind.HINT, {"app_type": "web", "start": NOW, "end": NOW + 30, "demand": {"cpu": 2}}, NOW
    )
    assert {r.id for r in requests.list(None, NOW + 29)} == {drain.id, hint.id}
    assert {r.id for r in requests.list(None, NOW + 30)} == {drain.id}
    assert requests.list(None, NOW + 60) == []
    assert len(requests.list(None, NOW + 60, include_inactive=True)) == 2


def test_one_active_drain_per_host_and_one_critical_mark_per_vm(history_store) -> None:
    requests = RequestStore(history_store)
    first = requests.add(RequestKind.DRAIN, {"host_id": "h1", "expires_at": NOW + 60}, NOW)
    with pytest.raises(Conflict) as caught:
        requests.add(RequestKind.DRAIN, {"host_id": "h1"}, NOW + 1)
    assert caught.value.existing_id == first.id
    requests.add(RequestKind.DRAIN, {"host_id": "h1"}, NOW + 61)
    requests.add(RequestKind.CRITICAL, {"vm_id": "a"}, NOW)
    with pytest.raises(Conflict):
        requests.add(RequestKind.CRITICAL, {"vm_id": "a"}, NOW)


def _race(add: Callable[[int], str], racers: int, rounds: int) -> list[list[str]]:
    """Per round, what ``racers`` threads released at once got from ``add(round)``."""
    barrier = threading.Barrier(racers)
    got: list[list[str]] = [[] for _ in range(rounds)]

    def racer() -> None:
        for i in range(rounds):
            barrier.wait(timeout=30)
            got[i].append(add(i))

    threads = [threading.Thread(target=racer) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return got


def test_racing_drains_and_critical_marks_store_one_and_the_others_conflict(history_store) -> None:
    requests = RequestStore(history_store)

    def add(kind: RequestKind, body: dict[str, str]) -> str:
        try:
            return requests.add(kind, body, NOW).id
        except Conflict as exc:
            return f"conflict with {exc.existing_id}"

    drains = _race(lambda i: add(RequestKind.DRAIN, {"host_id": f"h{i}"}), racers=8, rounds=25)
    marks = _race(lambda i: add(RequestKind.CRITICAL, {"vm_id": f"v{i}"}), racers=8, rounds=25)
    for got in drains + marks:
        stored = [g for g in got if not g.startswith("conflict")]
        assert len(stored) == 1, f"{len(stored)} of 8 racing requests stored"
        assert sorted(got) == sorted(stored + [f"conflict with {stored[0]}"] * 7)
    assert Counter(r.spec["host_id"] for r in requests.list(RequestKind.DRAIN, NOW)) == {
        f"h{i}": 1 for i in range(25)
    }
    # withdrawing the drain its caller got back leaves the host undrained
    requests.delete(RequestKind.DRAIN, next(g for g in drains[1] if not g.startswith("conflict")))
    hosts = apply_requests(history_store, inventory(), NOW).hosts
    assert not hosts["h1"].maintenance and hosts["h2"].maintenance


def _drain_each_host(url: str, hosts: list[str], barrier: Any) -> None:
    """One of two processes draining the same hosts at the same moments, each with its own store."""
    with HistoryStore(url) as store:
        requests = RequestStore(store)
        for host in hosts:
            barrier.wait(timeout=60)
            with contextlib.suppress(Conflict):
                requests.add(RequestKind.DRAIN, {"host_id": host}, NOW)


def test_drains_racing_from_two_processes_store_one_per_host(history_store) -> None:
    hosts = [f"h{i}" for i in range(30)]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    url = history_store.url.render_as_string(hide_password=False)
    workers = [context.Process(target=_drain_each_host, args=(url, hosts, barrier)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    stored = Counter(r.spec["host_id"] for r in RequestStore(history_store).list(RequestKind.DRAIN, NOW))
    assert stored == dict.fromkeys(hosts, 1)


def test_invalid_bodies_are_refused_and_not_stored(history_store) -> None:
    requests = RequestStore(history_store)
    with pytest.raises(InvalidRequest) as caught:
        requests.add(RequestKind.RULE, {"type": "affinity", "vm_ids": ["a"]}, NOW)
    assert caught.value.field == "vm_ids"
    assert requests.list(None, NOW, include_inactive=True) == []


def test_apply_requests_overlays_the_inventory(history_store) -> None:
    requests = RequestStore(history_store)
    requests.add(RequestKind.DRAIN, {"host_id": "h2"}, NOW)
    requests.add(RequestKind.DRAIN, {"host_id": "h-gone"}, NOW)
    requests.add(RequestKind.CRITICAL, {"vm_id": "a"}, NOW)
    requests.add(RequestKind.RULE, {"type": "anti_affinity", "vm_ids": ["a", "b"], "hard": False}, NOW)
    withdrawn = requests.add(RequestKind.RULE, {"type": "affinity", "vm_ids": ["b", "c*1"]}, NOW)
    requests.delete(RequestKind.RULE, withdrawn.id)
    expired = requests.add(RequestKind.CRITICAL, {"vm_id": "b", "expires_at": NOW + 10}, NOW)

    given = inventory()
    result = apply_requests(history_store, given, NOW + 20)
    assert result.hosts["h2"].maintenance and not result.hosts["h1"].maintenance
    assert set(result.hosts) == {"h1", "h2"}  # an unknown host is ignored, not invented
    assert result.vms["a"].critical and not result.vms["b"].critical
    assert len(result.rules) == 2 and result.rules[0].name == "from-the-cloud"
    api_rule = result.rules[1]
    assert api_rule.name.startswith("api-")
    assert api_rule.kind is RuleKind.ANTI_AFFINITY and not api_rule.hard
    assert api_rule.vm_ids == frozenset({"a", "b"})
    # the inventory handed in is not changed
    assert not given.hosts["h2"].maintenance and not given.vms["a"].critical and len(given.rules) == 1
    assert expired.id not in {r.id for r in requests.list(None, NOW + 20)}


def test_active_hints_feed_the_forecaster_calendar(history_store) -> None:
    history_store.upsert_inventory(inventory(), NOW)
    requests = RequestStore(history_store)
    requests.add(
        RequestKind.HINT,
        {"vm_ids": ["c*1"], "start": NOW, "end": NOW + 600, "demand": {"cpu": 3.0, "memory": 0.5}},
        NOW,
    )
    requests.add(
        RequestKind.HINT,
        {"app_type": "web", "start": NOW + 300, "end": NOW + 900, "demand": {"cpu": 2.0}, "name": "sale"},
        NOW,
    )
    hints = active_hints(history_store, NOW)
    assert sorted((h.vms, h.resource, h.factor) for h in hints) == [
        ("a", "cpu", 2.0),
        ("b", "cpu", 2.0),
        ("c[*]1", "cpu", 3.0),
        ("c[*]1", "memory", 0.5),
    ]
    # the same structure the forecaster applies: only VM "c*1" (not "cx1") is scaled by the first
    vm_keys = [("a", "alpha"), ("b", "beta"), ("c*1", "gamma"), ("cx1", "delta")]
    values = {"cpu": np.ones((4, 3, 1)), "memory": np.ones((4, 3, 1))}
    times = np.array([NOW + 100, NOW + 400, NOW + 700])
    applied = apply_hints(values, hints, vm_keys, times)
    assert "sale" in applied
    np.testing.assert_allclose(values["cpu"][:, :, 0], [[1, 2, 2], [1, 2, 2], [3, 3, 1], [1, 1, 1]])
    np.testing.assert_allclose(values["memory"][:, :, 0], [[1, 1, 1], [1, 1, 1], [0.5, 0.5, 1], [1, 1, 1]])
    assert active_hints(history_store, NOW + 900) == []


def test_the_forecaster_calendar_is_configured_hints_then_requested_ones(history_store, conf) -> None:
    conf.set_override(
        "hint", ["start=2027-01-15T00:00:00,end=2027-01-16T00:00:00,vms=web-*,factor=1.2"], "predict"
    )
    RequestStore(history_store).add(
        RequestKind.HINT, {"vm_ids": ["a"], "start": NOW, "end": NOW + 60, "demand": {"gpu": 0}}, NOW
    )
    calendar = forecaster_calendar(conf, history_store, NOW)
    assert [(h.vms, h.resource, h.factor) for h in calendar] == [("web-*", "*", 1.2), ("a", "gpu", 0.0)]


def test_a_body_with_text_that_is_not_valid_unicode_is_refused_and_not_stored(history_store) -> None:
    requests = RequestStore(history_store)
    with pytest.raises(InvalidRequest) as caught:
        requests.add(RequestKind.CRITICAL, {"vm_id": "a\ud800"}, NOW)
    assert caught.value.field == "vm_id"
    assert requests.list(None, NOW, include_inactive=True) == []
