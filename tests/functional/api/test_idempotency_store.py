"""Idempotency keys in the history store, on SQLite and PostgreSQL: a key is recognised by every
process sharing the store, racing requests with one key store one request, and keys past their
lifetime are forgotten."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from cotenancy.store import HistoryStore, schema
from cotenancy.store.idempotency import IdempotencyKey, KeyReused, Remembered
from cotenancy.store.requests import Conflict, RequestKind, RequestStore

NOW = 1_800_000_000.0
DAY = 86400.0
RULE = {"type": "anti_affinity", "vm_ids": ["a", "b"]}


def rules_key(value: str = "k-1") -> IdempotencyKey:
    return IdempotencyKey("/v1/rules", value)


def test_a_key_is_recognised_by_another_store_opened_on_the_same_database(history_store) -> None:
    first = RequestStore(history_store).add_once(RequestKind.RULE, RULE, NOW, rules_key(), DAY)
    assert not first.replayed
    url = history_store.url.render_as_string(hide_password=False)
    with HistoryStore(url) as other:
        again = RequestStore(other).add_once(RequestKind.RULE, RULE, NOW + 1, rules_key(), DAY)
    assert again.replayed and again.request_id == first.request_id and again.answer == first.answer
    assert len(RequestStore(history_store).list(None, NOW, include_inactive=True)) == 1


def test_another_body_under_a_used_key_is_refused_and_stores_nothing(history_store) -> None:
    requests = RequestStore(history_store)
    requests.add_once(RequestKind.RULE, RULE, NOW, rules_key(), DAY)
    with pytest.raises(KeyReused) as caught:
        requests.add_once(RequestKind.RULE, RULE | {"hard": False}, NOW, rules_key(), DAY)
    assert caught.value.first_used_at == NOW
    assert len(requests.list(None, NOW, include_inactive=True)) == 1


def _at_once(add: Callable[[], Remembered], racers: int) -> list[Remembered]:
    """What ``racers`` threads released at the same moment got from ``add()``."""
    barrier = threading.Barrier(racers)

    def racer(_: int) -> Remembered:
        barrier.wait(timeout=30)
        return add()

    with ThreadPoolExecutor(max_workers=racers) as pool:
        return list(pool.map(racer, range(racers)))


def test_racing_requests_with_one_key_store_one_request(history_store) -> None:
    requests = RequestStore(history_store)
    for i in range(10):
        key = IdempotencyKey("/v1/drains", f"r{i}")
        got = _at_once(partial(requests.add_once, RequestKind.DRAIN, {"host_id": f"h{i}"}, NOW, key, DAY), 8)
        assert len({g.request_id for g in got}) == 1
        assert sorted(g.replayed for g in got) == [False] + [True] * 7
    assert len(requests.list(RequestKind.DRAIN, NOW)) == 10


def _add_with_keys(url: str, keys: list[str], barrier: Any, results: Any) -> None:
    """One of two processes sending the same keyed rules at the same moments, each with its store."""
    with HistoryStore(url) as store:
        requests = RequestStore(store)
        for key in keys:
            barrier.wait(timeout=60)
            results.put(requests.add_once(RequestKind.RULE, RULE, NOW, rules_key(key), DAY).request_id)


def test_keyed_requests_racing_from_two_processes_store_one_each(history_store) -> None:
    keys = [f"p{i}" for i in range(20)]
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(2)
    results = context.Queue()
    url = history_store.url.render_as_string(hide_password=False)
    workers = [context.Process(target=_add_with_keys, args=(url, keys, barrier, results)) for _ in range(2)]
    for worker in workers:
        worker.start()
    answered = [results.get(timeout=120) for _ in range(2 * len(keys))]
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0]
    stored = RequestStore(history_store).list(None, NOW, include_inactive=True)
    assert len(stored) == len(keys)
    assert sorted(set(answered)) == sorted(r.id for r in stored)


def test_a_conflict_does_not_use_up_the_key(history_store) -> None:
    requests = RequestStore(history_store)
    requests.add(RequestKind.DRAIN, {"host_id": "h1"}, NOW)
    key = IdempotencyKey("/v1/drains", "k")
    with pytest.raises(Conflict):
        requests.add_once(RequestKind.DRAIN, {"host_id": "h1"}, NOW, key, DAY)
    assert not requests.add_once(RequestKind.DRAIN, {"host_id": "h2"}, NOW, key, DAY).replayed


def test_keys_past_their_lifetime_are_forgotten_and_removed(history_store) -> None:
    requests = RequestStore(history_store)
    first = requests.add_once(RequestKind.RULE, RULE, NOW, rules_key("old"), DAY)
    requests.add_once(RequestKind.RULE, RULE, NOW + DAY / 2, rules_key("young"), DAY)
    reused = requests.add_once(RequestKind.RULE, RULE, NOW + DAY, rules_key("old"), DAY)
    assert not reused.replayed and reused.request_id != first.request_id
    requests.add_once(RequestKind.RULE, RULE, NOW + DAY * 1.6, rules_key("new"), DAY)
    with history_store.engine.connect() as connection:
        kept = connection.execute(sa.select(schema.api_idempotency_keys.c.key)).scalars().all()
    assert sorted(kept) == ["new", "old"]
