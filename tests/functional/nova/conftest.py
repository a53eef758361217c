"""A real Nova for the nova driver's functional tests.

One harness process per session (``tests/harness/nova/server.py`` in its own venv) on a free
loopback port; every test gets a fresh driver and deletes the servers it created.
If the harness venv is missing or Nova does not start, the tests fail: they never skip.
"""

from __future__ import annotations

import ssl
import sys
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import openstack.connection
import pytest
from oslo_config import cfg

REPO = Path(__file__).resolve().parents[3]
HARNESS_DIR = REPO / "tests" / "harness" / "nova"
sys.path.insert(0, str(HARNESS_DIR))
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import nova_harness  # noqa: E402

from cotenancy.drivers.nova.driver import NovaDriver  # noqa: E402
from cotenancy.drivers.nova.options import GROUP, NOVA_OPTS  # noqa: E402
from tests.harness.wsman import certs  # noqa: E402

HOSTS = 3


@pytest.fixture(scope="session")
def nova(tmp_path_factory: pytest.TempPathFactory) -> Iterator[nova_harness.NovaHarness]:
    """The running Nova harness (API, conductor, scheduler, placement, computes host1..host3)."""
    # A start failure is cached by pytest for the session: later tests fail at once with it.
    with nova_harness.running(HOSTS, tmp_path_factory.mktemp("nova-harness")) as harness:
        yield harness


@pytest.fixture(scope="session")
def clouds_yaml(nova: nova_harness.NovaHarness, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return nova.write_clouds_yaml(tmp_path_factory.mktemp("clouds") / "clouds.yaml")


@pytest.fixture(scope="session")
def admin(clouds_yaml: Path) -> openstack.connection.Connection:
    """An openstacksdk connection used by tests to arrange and check, independent of the driver."""
    return nova_harness.admin_connection(clouds_yaml)


@pytest.fixture(scope="session")
def nova_overrides(clouds_yaml: Path) -> dict[str, object]:
    """``[nova]`` options that point the driver at the harness and keep waits short."""
    return {
        "cloud": nova_harness.CLOUD_NAME,
        "clouds_file": str(clouds_yaml),
        "poll_interval": 0.1,
        "action_timeout": 60.0,
    }


@pytest.fixture
def nova_conf(nova_overrides: dict[str, object]) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="cotenancy", default_config_files=[])
    conf.register_opts(NOVA_OPTS, group=GROUP)
    for name, value in nova_overrides.items():
        conf.set_override(name, value, group=GROUP)
    return conf


@pytest.fixture
def driver(nova_conf: cfg.ConfigOpts, nova: nova_harness.NovaHarness) -> Iterator[NovaDriver]:
    nova.clear_faults()
    nova_driver = NovaDriver(nova_conf)
    try:
        yield nova_driver
    finally:
        nova_driver.close()
        nova.clear_faults()


ServerFactory = Callable[..., Any]


@pytest.fixture
def make_server(
    admin: openstack.connection.Connection, nova: nova_harness.NovaHarness
) -> Iterator[ServerFactory]:
    """Boot servers pinned to a host (admin's ``nova:<host>`` zone); deleted after the test."""
    with nova_harness.pinned_servers(admin, nova.image_id) as boot:
        yield boot


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """On a failure, attach what Nova logged (the tail), so CI failures explain themselves."""
    outcome = yield
    report = outcome.get_result()
    harness = getattr(item, "funcargs", {}).get("nova")
    if report.when != "call" or not report.failed or harness is None:
        return
    try:
        tail = "\n".join(harness.log().splitlines()[-80:])
    except Exception as exc:  # the harness may be the thing that broke
        tail = f"(could not read the harness log: {exc}; process alive: {harness.alive()})"
    report.sections.append(("nova harness log (last 80 lines)", tail))


@pytest.fixture(scope="session")
def unavailable_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS endpoint on loopback that answers every request ``503 Service Unavailable``, with
    a certificate from a throw-away CA no trust store holds: ``(endpoint, that CA's file)``.

    The Nova harness speaks plain HTTP, so certificate verification is tested here, at the TLS
    handshake keystoneauth makes before any request reaches a service."""
    files = certs.generate(tmp_path_factory.mktemp("nova-tls"))

    class Unavailable(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            body = b'{"error": {"message": "Service Unavailable", "code": 503}}'
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer  # noqa: N815 (http.server's naming)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(files.cert_file, files.key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", files.ca_file
    finally:
        server.shutdown()
        server.server_close()
