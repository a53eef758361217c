"""Build, start and stop the vCenter simulator (``tests/harness/vcsim/main.go``) from Python.

The simulator picks a free loopback port itself (``-listen 127.0.0.1:0``) and prints its URL when it
accepts connections; it writes its self-signed certificate so that clients verify TLS against it.
"""

from __future__ import annotations

import os
import selectors
import signal
import ssl
import subprocess
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
BINARY = REPO / ".cache" / "vcsim" / "vcsim"
SETUP_SCRIPT = REPO / "scripts" / "setup.d" / "30-vcsim.sh"
USERNAME = "cotenancy"
PASSWORD = "vcsim-secret"


class HarnessMissing(RuntimeError):
    """The simulator binary is not built; tests must fail, not skip."""


def binary() -> Path:
    if not os.access(BINARY, os.X_OK):
        raise HarnessMissing(f"{BINARY} is missing; run `bash {SETUP_SCRIPT}` (needs apt and Go)")
    return BINARY


def build() -> Path:
    """Run the setup step (idempotent) and return the binary."""
    subprocess.run(["bash", str(SETUP_SCRIPT)], check=True)
    return binary()


@dataclass
class VCSim:
    """A running simulator process."""

    url: str
    ca_file: Path
    process: subprocess.Popen
    workdir: tempfile.TemporaryDirectory
    username: str = USERNAME
    password: str = PASSWORD
    log_file: Path = field(default=Path())

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urllib.parse.urlsplit(self.url).port or 443

    @classmethod
    def start(
        cls,
        *,
        clusters: int = 1,
        hosts_per_cluster: int = 3,
        vms_per_pool: int = 2,
        standalone_hosts: int = 0,
        datacenters: int = 1,
        delays: dict[str, int] | None = None,
        startup_timeout: float = 120.0,
    ) -> VCSim:
        workdir = tempfile.TemporaryDirectory(prefix="vcsim-")
        ca_file = Path(workdir.name) / "ca.pem"
        log_file = Path(workdir.name) / "vcsim.log"
        args = [
            str(binary()),
            "-listen",
            "127.0.0.1:0",
            "-dc",
            str(datacenters),
            "-cluster",
            str(clusters),
            "-host",
            str(hosts_per_cluster),
            "-vm",
            str(vms_per_pool),
            "-standalone-host",
            str(standalone_hosts),
            "-username",
            USERNAME,
            "-password",
            PASSWORD,
            "-cert-out",
            str(ca_file),
        ]
        for method, ms in (delays or {}).items():
            args += ["-delay", f"{method}={ms}"]
        with log_file.open("wb") as log:
            process = subprocess.Popen(
                args, stdout=subprocess.PIPE, stderr=log, cwd=workdir.name, start_new_session=True
            )
        try:
            url = _read_url(process, startup_timeout, log_file)
        except BaseException:
            workdir.cleanup()
            raise
        return cls(url=url, ca_file=ca_file, process=process, workdir=workdir, log_file=log_file)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()
        self.workdir.cleanup()

    def __enter__(self) -> VCSim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- fault injection ----------------------------------------------------------------------

    def arm_fault(
        self,
        method: str,
        fault: str | None = None,
        *,
        delay_ms: int = 0,
        count: int = 1,
        this: str | None = None,
    ) -> None:
        """Make the next ``count`` calls of ``method`` (a ``*_Task``) return a task that, after
        ``delay_ms``, fails with ``fault`` (a vim fault type name) or, without fault, does the call;
        those of another method (``RemoveScheduledTask``) are refused with ``fault``."""
        query = {"method": method, "delay_ms": delay_ms, "count": count}
        if fault:
            query["fault"] = fault
        if this:
            query["this"] = this
        self._control("POST", "/vcsim/fault", query)

    def clear_faults(self) -> None:
        self._control("DELETE", "/vcsim/fault", {})

    def set_delay(self, method: str, ms: int) -> None:
        """Delay every call of ``method`` by ``ms`` (the simulator's ``DelayConfig.MethodDelay``)."""
        self._control("POST", "/vcsim/delay", {"method": method, "ms": ms})

    def set_clock_offset(self, seconds: float) -> None:
        """Make the simulated vCenter's clock run ``seconds`` ahead of this host's (negative:
        behind): ``CurrentTime`` and the scheduled-task timers follow it."""
        self._control("POST", "/vcsim/clock", {"offset_s": seconds})

    def _control(self, verb: str, path: str, query: dict[str, object]) -> None:
        parts = urllib.parse.urlsplit(self.url)
        url = f"{parts.scheme}://{parts.netloc}{path}?{urllib.parse.urlencode(query)}"
        context = ssl.create_default_context(cafile=str(self.ca_file))
        request = urllib.request.Request(url, method=verb)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            response.read()


def _read_url(process: subprocess.Popen, timeout: float, log_file: Path) -> str:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    ready = selector.select(timeout)
    selector.close()
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("https://"):
        process.kill()
        process.wait()
        raise HarnessMissing(
            f"vcsim did not start (got {line!r}); log: {log_file.read_text(errors='replace')[-2000:]}"
        )
    return line
