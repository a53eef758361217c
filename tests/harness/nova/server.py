"""A real Nova (API, conductor, scheduler, computes) and placement, served on a loopback port.

Runs with the harness venv's interpreter (``.cache/venvs/nova/bin/python``), never inside the project
venv: Nova pins its own stack and registers ``[DEFAULT] host`` on the global config.

It builds the services exactly as Nova's functional tests do (``_IntegratedTestBase`` with the
fake virt driver) and then, instead of leaving them behind wsgi-intercept, serves the same WSGI
apps on a real socket with ``eventlet.wsgi``:

* ``/``                 the compute API (``/v2.1``), behind a tiny token check that plays keystone
* ``/placement``        the placement API, behind the same token check (then placement's noauth)
* ``/_harness/...``     test controls: fault injection, diagnostics counters, more computes, logs

Every request must carry ``X-Auth-Token: <token>`` (default ``admin``); the harness turns it into
the identity headers Nova's stubbed keystone context reads, as keystonemiddleware would.

When ready it prints one line ``NOVA_HARNESS_READY <endpoint-json>`` on stdout. It stops on
SIGTERM/SIGINT or when its stdin closes (so a killed test runner never leaves it behind).
"""

from __future__ import annotations

# Nova's code expects eventlet's monkey patching before anything else is imported.
from nova import monkey_patch

monkey_patch.patch()

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402

import eventlet  # noqa: E402
import eventlet.patcher  # noqa: E402
import eventlet.wsgi  # noqa: E402
import nova.tests.functional.integrated_helpers as integrated_helpers  # noqa: E402
import wsgi_intercept  # noqa: E402
from nova.objects import diagnostics as diagnostics_obj  # noqa: E402
from nova.virt import fake as fake_virt  # noqa: E402

PROJECT_ID = "6f70656e737461636b20342065766572"
VERSION_PATHS = frozenset({"", "/", "/v2", "/v2/", "/v2.1", "/v2.1/", "/placement", "/placement/"})
ORIGINAL_LIVE_MIGRATION = fake_virt.FakeDriver.live_migration
ORIGINAL_CHECK_DESTINATION = fake_virt.FakeDriver.check_can_live_migrate_destination
ORIGINAL_DIAGNOSTICS = fake_virt.FakeDriver.get_instance_diagnostics


class FaultBook:
    """Faults the tests ask for, consumed one by one by the patched fake driver."""

    def __init__(self) -> None:
        self.live_migration_failures = 0
        self.live_migration_precheck_failures = 0
        self.live_migration_delay = 0.0
        self.diagnostics: dict[str, dict[str, float]] = {}

    def take_live_migration_failure(self) -> bool:
        if self.live_migration_failures > 0:
            self.live_migration_failures -= 1
            return True
        return False

    def take_precheck_failure(self) -> bool:
        if self.live_migration_precheck_failures > 0:
            self.live_migration_precheck_failures -= 1
            return True
        return False

    def as_dict(self) -> dict[str, object]:
        return {
            "live_migration": {
                "fail": self.live_migration_failures,
                "fail_precheck": self.live_migration_precheck_failures,
                "delay": self.live_migration_delay,
            },
            "diagnostics": sorted(self.diagnostics),
        }


FAULTS = FaultBook()


def _live_migration(
    self, context, instance, dest, post_method, recover_method, block_migration=False, migrate_data=None
):
    """The fake driver's live migration, slowed down or failed on request."""
    if FAULTS.live_migration_delay > 0:
        eventlet.sleep(FAULTS.live_migration_delay)
    if FAULTS.take_live_migration_failure():
        # What a hypervisor failure does in the libvirt driver: roll back, VM stays on the source.
        recover_method(context, instance, dest, migrate_data)
        return
    return ORIGINAL_LIVE_MIGRATION(
        self, context, instance, dest, post_method, recover_method, block_migration, migrate_data
    )


def _check_can_live_migrate_destination(self, context, instance, *args, **kwargs):
    """The destination pre-check, refused on request (as when a target lacks a CPU feature)."""
    if FAULTS.take_precheck_failure():
        from nova import exception

        raise exception.MigrationPreCheckError(reason="injected by the test harness")
    return ORIGINAL_CHECK_DESTINATION(self, context, instance, *args, **kwargs)


def _instance_diagnostics(self, instance):
    """Diagnostics with counters the tests set per server (fake defaults otherwise)."""
    values = FAULTS.diagnostics.get(instance.uuid)
    if values is None:
        return ORIGINAL_DIAGNOSTICS(self, instance)
    diags = diagnostics_obj.Diagnostics(
        state="running",
        driver="libvirt",
        hypervisor="kvm",
        hypervisor_os="debian",
        uptime=int(values.get("uptime", 1000)),
        config_drive=False,
    )
    cpu_ns = int(values.get("cpu_time_ns", 0))
    vcpus = max(1, int(instance.flavor.vcpus))
    for cpu_id in range(vcpus):
        diags.add_cpu(id=cpu_id, time=cpu_ns // vcpus, utilisation=None)
    diags.add_nic(
        mac_address="fa:16:3e:00:00:01",
        rx_octets=int(values.get("rx_bytes", 0)),
        tx_octets=int(values.get("tx_bytes", 0)),
    )
    diags.add_disk(read_bytes=int(values.get("read_bytes", 0)), write_bytes=int(values.get("write_bytes", 0)))
    diags.memory_details = diagnostics_obj.MemoryDiagnostics(
        maximum=int(instance.flavor.memory_mb), used=int(values.get("memory_used_mib", 0))
    )
    return diags


def _install_fake_driver_hooks() -> None:
    fake_virt.FakeDriver.live_migration = _live_migration
    fake_virt.FakeDriver.check_can_live_migrate_destination = _check_can_live_migrate_destination
    fake_virt.FakeDriver.get_instance_diagnostics = _instance_diagnostics


class NovaCloud(integrated_helpers._IntegratedTestBase):
    """Nova's integrated functional test base, kept running instead of torn down."""

    ADMIN_API = True
    # Real RPC casts: the API returns 202 and work happens in the background, as in production.
    CAST_AS_CALL = False
    compute_driver = "fake.MediumFakeDriver"
    microversion = "latest"
    hosts: tuple[str, ...] = ("host1", "host2", "host3")
    api_paste_config = ""

    def _setup_services(self):
        self.flags(compute_driver=self.compute_driver)
        self.flags(api_paste_config=self.api_paste_config, group="wsgi")
        super()._setup_services()

    def _setup_compute_service(self):
        first = None
        for host in self.hosts:
            compute = self._start_compute(host)
            first = first or compute
        return first

    def runTest(self) -> None:
        """Required by unittest's constructor; the harness never runs it."""


def _intercepted_apps() -> tuple[object, object]:
    """The WSGI apps the fixtures registered with wsgi-intercept: (compute API, placement)."""
    nova_app = placement_app = None
    for app_factory, script_name in wsgi_intercept._wsgi_intercept.values():
        if script_name == "/placement":
            placement_app = app_factory()
        elif script_name == "":
            nova_app = app_factory()
    if nova_app is None or placement_app is None:
        raise RuntimeError("the Nova fixtures registered no compute or placement app")
    return nova_app, placement_app


def _json(start_response, status: str, body: object):
    payload = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


class Dispatcher:
    """Routes a request to placement, the harness controls or the compute API."""

    def __init__(self, cloud: NovaCloud, nova_app, placement_app, token: str) -> None:
        self.cloud = cloud
        self.nova_app = nova_app
        self.placement_app = placement_app
        self.token = token

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        # Version documents are public in real deployments too: clients discover before auth.
        discovery = environ["REQUEST_METHOD"] in ("GET", "HEAD") and path in VERSION_PATHS
        if environ.get("HTTP_X_AUTH_TOKEN") != self.token and not discovery:
            return _json(
                start_response,
                "401 Unauthorized",
                {"error": {"message": "The request you have made requires authentication.", "code": 401}},
            )
        if path == "/placement" or path.startswith("/placement/"):
            environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/placement"
            environ["PATH_INFO"] = path[len("/placement") :]
            # Placement's noauth reads "user:project" from the token; admin is its admin.
            environ["HTTP_X_AUTH_TOKEN"] = f"admin:{PROJECT_ID}"
            return self.placement_app(environ, start_response)
        if path.startswith("/_harness"):
            return self.control(environ, start_response, path[len("/_harness") :].strip("/"))
        # What keystonemiddleware + NovaKeystoneContext would derive from a valid admin token.
        environ["HTTP_X_AUTH_USER"] = "admin"
        environ["HTTP_X_AUTH_PROJECT_ID"] = PROJECT_ID
        environ["HTTP_X_ROLES"] = "reader,member,admin"
        return self.nova_app(environ, start_response)

    def control(self, environ, start_response, route: str):
        method = environ["REQUEST_METHOD"]
        body = _read_json(environ)
        if route == "" and method == "GET":
            return _json(
                start_response,
                "200 OK",
                {"hosts": sorted(self.cloud.computes), "project_id": PROJECT_ID, "faults": FAULTS.as_dict()},
            )
        if route == "faults" and method == "POST":
            migration = body.get("live_migration", {})
            FAULTS.live_migration_failures += int(migration.get("fail", 0))
            FAULTS.live_migration_precheck_failures += int(migration.get("fail_precheck", 0))
            if "delay" in migration:
                FAULTS.live_migration_delay = float(migration["delay"])
            return _json(start_response, "200 OK", FAULTS.as_dict())
        if route == "faults" and method == "DELETE":
            FAULTS.live_migration_failures = 0
            FAULTS.live_migration_precheck_failures = 0
            FAULTS.live_migration_delay = 0.0
            FAULTS.diagnostics.clear()
            return _json(start_response, "200 OK", FAULTS.as_dict())
        if route.startswith("diagnostics/") and method == "PUT":
            server_id = route.split("/", 1)[1]
            FAULTS.diagnostics[server_id] = {k: float(v) for k, v in body.items()}
            return _json(start_response, "200 OK", FAULTS.diagnostics[server_id])
        if route == "computes" and method == "POST":
            host = str(body["host"])
            if host not in self.cloud.computes:
                self.cloud._start_compute(host)
            return _json(start_response, "201 Created", {"hosts": sorted(self.cloud.computes)})
        if route == "log" and method == "GET":
            output = self.cloud.stdlog.logger.output
            payload = output.encode()
            start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(payload)))])
            return [payload]
        return _json(start_response, "404 Not Found", {"error": f"no control {method} {route}"})


def _read_json(environ) -> dict:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if not length:
        return {}
    return json.loads(environ["wsgi.input"].read(length) or b"{}")


def _watch_stdin() -> None:
    """Stop when the parent closes our stdin (it died or is done): no orphaned harness."""
    real_threading = eventlet.patcher.original("threading")
    real_os = eventlet.patcher.original("os")

    def wait_for_eof() -> None:
        while real_os.read(0, 4096):
            pass
        real_os.kill(real_os.getpid(), signal.SIGTERM)

    real_threading.Thread(target=wait_for_eof, daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--hosts", type=int, default=3, help="compute hosts host1..hostN")
    parser.add_argument("--token", default="admin")
    parser.add_argument("--watch-stdin", action="store_true")
    args = parser.parse_args(argv)

    paste = os.path.join(sys.prefix, "etc", "nova", "api-paste.ini")
    if not os.path.exists(paste):
        print(f"missing {paste}: is this the nova harness venv?", file=sys.stderr)
        return 2

    _install_fake_driver_hooks()
    NovaCloud.api_paste_config = paste
    NovaCloud.hosts = tuple(f"host{i}" for i in range(1, args.hosts + 1))
    cloud = NovaCloud("runTest")
    try:
        cloud.setUp()
    except BaseException:
        # The test base captures stderr; show why startup failed where the parent looks.
        traceback.print_exc(file=sys.__stderr__)
        with eventlet.Timeout(5, False):
            cloud.doCleanups()
        return 1

    nova_app, placement_app = _intercepted_apps()
    app = Dispatcher(cloud, nova_app, placement_app, args.token)
    sock = eventlet.listen(("127.0.0.1", args.port))
    port = sock.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    ready = {
        "endpoint": base,
        "compute": f"{base}/v2.1",
        "placement": f"{base}/placement",
        "control": f"{base}/_harness",
        "token": args.token,
        "project_id": PROJECT_ID,
        "hosts": list(NovaCloud.hosts),
        "image_id": cloud.glance.image1["id"],
        "pid": os.getpid(),
    }

    def stop(signum, frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.watch_stdin:
        _watch_stdin()

    # The test base captured sys.stdout; the parent reads the real one.
    print("NOVA_HARNESS_READY " + json.dumps(ready), file=sys.__stdout__, flush=True)
    try:
        eventlet.wsgi.server(sock, app, log_output=False, debug=False)
    finally:
        # Remove temp dirs and stop services, but never hang on a stuck green thread.
        with eventlet.Timeout(5, False):
            cloud.doCleanups()
        sys.__stdout__.flush()
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
