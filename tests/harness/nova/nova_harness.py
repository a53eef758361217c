"""Start, drive and stop the Nova harness (``server.py``) from the project's tests.

The harness runs in its own venv and process; this module only speaks HTTP to it. A missing venv
or a harness that does not come up raises :class:`HarnessError`: tests that need Nova fail, never skip.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[2]
SERVER = HERE / "server.py"
READY_MARK = "NOVA_HARNESS_READY "
CLOUD_NAME = "nova-harness"


class HarnessError(RuntimeError):
    """The Nova harness is not installed, did not start, or refused a control request."""


def venv_python() -> Path:
    """The harness venv's interpreter (``$COTENANCY_NOVA_VENV`` or ``.cache/venvs/nova``)."""
    venv = Path(os.environ.get("COTENANCY_NOVA_VENV", REPO_ROOT / ".cache" / "venvs" / "nova"))
    python = venv / "bin" / "python"
    if not python.exists():
        raise HarnessError(f"Nova harness venv missing at {venv}: run scripts/setup.d/40-nova.sh")
    return python


@dataclass
class NovaHarness:
    """A running harness: its endpoints and the controls tests use to inject faults."""

    endpoint: str
    compute: str
    placement: str
    control: str
    token: str
    project_id: str
    hosts: list[str]
    image_id: str
    process: subprocess.Popen[bytes]
    log_path: Path
    startup_seconds: float = 0.0
    _http: requests.Session = field(default_factory=requests.Session, repr=False)

    def __post_init__(self) -> None:
        self._http.headers["X-Auth-Token"] = self.token

    def cloud_config(self) -> dict[str, Any]:
        """A clouds.yaml entry: keystoneauth's ``admin_token`` plugin plus per-service endpoints.

        The harness plays keystone by accepting this one token, as a deployment that uses
        keystonemiddleware with a service token would; TLS does not apply to plain loopback HTTP.
        """
        return {
            "auth_type": "admin_token",
            "auth": {"endpoint": self.endpoint, "token": self.token},
            "compute_endpoint_override": self.compute,
            "placement_endpoint_override": self.placement,
            "region_name": "RegionOne",
        }

    def write_clouds_yaml(self, path: Path, name: str = CLOUD_NAME) -> Path:
        path.write_text(yaml.safe_dump({"clouds": {name: self.cloud_config()}}))
        return path

    def _control(self, method: str, route: str, body: dict[str, Any] | None = None) -> Any:
        response = self._http.request(method, f"{self.control}/{route}", json=body, timeout=30)
        if response.status_code >= 300:
            raise HarnessError(f"{method} {route}: {response.status_code} {response.text}")
        return response.json() if "json" in response.headers.get("Content-Type", "") else None

    def status(self) -> dict[str, Any]:
        return self._control("GET", "")

    def fail_next_live_migrations(self, count: int = 1, *, at_precheck: bool = False) -> None:
        """The next ``count`` live migrations fail in the hypervisor (VM rolls back to its
        source), or are refused by the destination's pre-check when ``at_precheck``."""
        key = "fail_precheck" if at_precheck else "fail"
        self._control("POST", "faults", {"live_migration": {key: count}})

    def slow_live_migrations(self, seconds: float) -> None:
        """Every live migration takes ``seconds`` in the hypervisor until faults are cleared."""
        self._control("POST", "faults", {"live_migration": {"delay": seconds}})

    def clear_faults(self) -> None:
        self._control("DELETE", "faults")

    def set_diagnostics(self, server_id: str, **counters: float) -> None:
        """Counters the fake hypervisor reports for a server: ``cpu_time_ns``,
        ``memory_used_mib``, ``read_bytes``, ``write_bytes``, ``rx_bytes``, ``tx_bytes``."""
        self._control("PUT", f"diagnostics/{server_id}", counters)

    def add_compute(self, host: str) -> None:
        self._control("POST", "computes", {"host": host})
        if host not in self.hosts:
            self.hosts.append(host)

    def log(self) -> str:
        """What the Nova services logged (INFO and up), for failure messages."""
        response = self._http.get(f"{self.control}/log", timeout=30)
        return response.text

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        finally:
            if self.process.stdin:
                self.process.stdin.close()


def start(hosts: int = 3, *, log_path: Path, timeout: float = 180.0, token: str = "admin") -> NovaHarness:
    """Start the harness on a free loopback port and wait until it serves."""
    python = venv_python()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.pop("OS_TEST_TIMEOUT", None)
    env.setdefault("PYTHONUNBUFFERED", "1")
    began = time.monotonic()
    with open(log_path, "wb") as log:
        # stdin stays open for the harness's lifetime: when this process dies, it stops too.
        process = subprocess.Popen(
            [
                str(python),
                str(SERVER),
                "--port",
                "0",
                "--hosts",
                str(hosts),
                "--token",
                token,
                "--watch-stdin",
            ],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(HERE),
            start_new_session=True,
        )
    ready = _wait_ready(process, log_path, timeout)
    harness = NovaHarness(
        endpoint=ready["endpoint"],
        compute=ready["compute"],
        placement=ready["placement"],
        control=ready["control"],
        token=ready["token"],
        project_id=ready["project_id"],
        hosts=list(ready["hosts"]),
        image_id=ready["image_id"],
        process=process,
        log_path=log_path,
        startup_seconds=time.monotonic() - began,
    )
    return harness


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith(READY_MARK):
                return json.loads(line[len(READY_MARK) :])
        if process.poll() is not None:
            raise HarnessError(f"Nova harness exited with {process.returncode}:\n{_tail(log_path)}")
        time.sleep(0.2)
    process.kill()
    raise HarnessError(f"Nova harness not ready after {timeout:.0f} s:\n{_tail(log_path)}")


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def running(hosts: int, workdir: Path) -> Iterator[NovaHarness]:
    """A harness for the duration of a ``with`` block (the body of a session fixture)."""
    harness = start(hosts=hosts, log_path=workdir / "harness.log")
    try:
        yield harness
    finally:
        harness.stop()


def admin_connection(clouds_yaml: Path):
    """An openstacksdk connection tests use to arrange and check, independent of the driver."""
    import openstack.config
    import openstack.connection

    config = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)])
    return openstack.connection.Connection(config=config.get_one(cloud=CLOUD_NAME))


@contextlib.contextmanager
def pinned_servers(admin: Any, image_id: str) -> Iterator[Any]:
    """A function that boots servers pinned to a host (admin's ``nova:<host>`` zone) and waits
    for them; on leaving the block, the servers it booted are deleted and waited out, so the next
    test starts on empty hosts."""
    created: list[str] = []

    def boot(name: str, host: str, flavor: str = "m1.tiny", **kwargs: Any) -> Any:
        flavor_id = admin.compute.find_flavor(flavor, ignore_missing=False).id
        server = admin.compute.create_server(
            name=name,
            flavor_id=flavor_id,
            image_id=image_id,
            networks="none",
            availability_zone=f"nova:{host}",
            **kwargs,
        )
        created.append(server.id)
        return admin.compute.wait_for_server(server, wait=60, interval=0.1)

    try:
        yield boot
    finally:
        for server_id in created:
            admin.compute.delete_server(server_id, ignore_missing=True)
        deadline = time.monotonic() + 30
        while created and time.monotonic() < deadline:
            if all(admin.compute.find_server(s, ignore_missing=True) is None for s in created):
                break
            time.sleep(0.1)
