"""A real API server on a free loopback port, over a real SQLite history store seeded with a small
cloud (see ``api_helpers``)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from api_helpers import NOW, STEP, Client, FakeClock, seed

from cotenancy.api import ApiServer, make_server
from cotenancy.conf import api as api_conf
from cotenancy.store import HistoryStore


@pytest.fixture
def api_conf_obj(conf, tmp_path: Path):
    conf.register_opts(api_conf.OPTS, group=api_conf.GROUP)
    conf.set_override("state_path", str(tmp_path / "state"))
    conf.set_override("interval", int(STEP))
    return conf


@pytest.fixture
def seeded_store(sqlite_store: HistoryStore) -> HistoryStore:
    seed(sqlite_store)
    return sqlite_store


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def start_server(api_conf_obj, seeded_store, clock) -> Iterator[Callable[..., Client]]:
    """Starts a server with ``[api]`` overrides; every one started is stopped after the test."""
    servers: list[ApiServer] = []

    def start(ssl_context: ssl.SSLContext | None = None, **overrides: Any) -> Client:
        for name, value in overrides.items():
            api_conf_obj.set_override(name, value, group="api")
        server = make_server(api_conf_obj, seeded_store, listen="127.0.0.1:0", clock=clock)
        servers.append(server)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return Client(server, overrides.get("auth_token"), ssl_context)

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(start_server) -> Client:
    return start_server()
