"""Helpers of the API tests: an HTTP client that controls every byte, a clock tests can move, and
a small cloud to seed a history store with (two hosts, five VMs, two hours of CPU samples, events
and a plan)."""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from cotenancy.api import ApiServer, make_server
from cotenancy.model import (
    VM,
    ActionKind,
    ActionPlan,
    Event,
    EventKind,
    Host,
    Inventory,
    MetricSample,
    Resources,
    StepStatus,
    WorkloadClass,
)
from cotenancy.store import HistoryStore

T0 = 1_700_000_000.0
STEP = 300.0
N_STEPS = 24
#: just after the newest sample: what "now" is for the seeded cloud
NOW = T0 + N_STEPS * STEP

#: what a client is told of the server's own fault: nothing that could leak from the traceback
INTERNAL_ERROR = {
    "code": 500,
    "title": "Internal Server Error",
    "message": "internal error; the server log has the details",
}


class FakeClock:
    """The server's clock, moved by tests to check expiry without sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)

    @property
    def error(self) -> dict[str, Any]:
        return self.json["error"]


@dataclass
class Client:
    """Plain http.client calls, so tests control every header and byte sent."""

    server: ApiServer
    token: str | None = None
    ssl_context: ssl.SSLContext | None = None

    def connection(self) -> http.client.HTTPConnection:
        host, port = self.server.server_address[:2]
        if self.ssl_context is not None:
            return http.client.HTTPSConnection(host, port, context=self.ssl_context, timeout=30)
        return http.client.HTTPConnection(host, port, timeout=30)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> Answer:
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        connection = self.connection()
        try:
            connection.request(method, path, body=data, headers=sent)
            response = connection.getresponse()
            return Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            connection.close()

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, body: Any, **kwargs: Any) -> Answer:
        return self.call("POST", path, body=body, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Answer:
        return self.call("DELETE", path, **kwargs)


@contextlib.contextmanager
def serving(conf: Any, store: HistoryStore, clock: Callable[[], float]) -> Iterator[Client]:
    """A real server over ``store`` on a free loopback port while the block runs, and a client."""
    server = make_server(conf, store, listen="127.0.0.1:0", clock=clock)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield Client(server)
    finally:
        server.shutdown()
        server.server_close()


def seed(store: HistoryStore) -> None:
    hosts = {
        "h1": Host("h1", "host-1", Resources(cpu=8000, memory=16384), cluster="c1"),
        "h2": Host("h2", "host-2", Resources(cpu=8000, memory=16384), cluster="c1"),
    }
    vms = {
        "web-1": VM("web-1", "web-1", "h1", Resources(cpu=3000, memory=4096), workload=WorkloadClass("web")),
        "web-2": VM("web-2", "web-2", "h1", Resources(cpu=3000, memory=4096), workload=WorkloadClass("web")),
        "batch-1": VM(
            "batch-1", "batch-1", "h1", Resources(cpu=3000, memory=4096), workload=WorkloadClass("batch")
        ),
        "db-1": VM("db-1", "db-1", "h2", Resources(cpu=2000, memory=8192), workload=WorkloadClass("db")),
        "idle-1": VM("idle-1", "idle-1", "h2", Resources(cpu=1000, memory=1024)),
    }
    store.upsert_inventory(Inventory(hosts=hosts, vms=vms), T0)
    # h1 runs hot (three busy VMs), h2 is quiet
    busy = {"web-1": 2600.0, "web-2": 2500.0, "batch-1": 2800.0, "db-1": 600.0, "idle-1": 50.0}
    store.add_samples(
        MetricSample(vm, T0 + i * STEP, "cpu", level + 5.0 * i)
        for vm, level in busy.items()
        for i in range(N_STEPS)
    )
    store.add_events(
        [
            Event(T0 + 3600, EventKind.DEGRADATION, ("web-1",), "h1", 300.0, 0.2, "cpu", "web-1 starved"),
            Event(T0 + 4000, EventKind.ANOMALY, ("db-1",), "h2", 0.0, 0.0, "cpu", "db-1 spiked"),
            Event(T0 + 5000, EventKind.MIGRATION, ("idle-1",), "h2", 60.0, 0.0, None, "moved"),
        ]
    )
    old = ActionPlan("predictive", id="plan-old", created_at=T0 + 600)
    old.add(
        ActionKind.LIVE_MIGRATE,
        vm_id="batch-1",
        source_host_id="h1",
        target_host_id="h2",
        reason="pair web-1/batch-1 risk 0.81 within 30 min",
        expected_benefit=0.6,
        status=StepStatus.SUCCEEDED,
    )
    store.save_plan(old)
    store.save_plan(ActionPlan("predictive", id="plan-new", created_at=T0 + 1200))
