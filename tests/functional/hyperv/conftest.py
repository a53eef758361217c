"""A WS-Management server on a free loopback port for the whole session, and a Hyper-V site
reset before every test, reached by the real hyperv driver through real pywinrm over HTTPS."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from oslo_config import cfg

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from cotenancy.drivers.hyperv.driver import OPTS  # noqa: E402
from cotenancy.loading import DRIVERS, load_plugin  # noqa: E402
from tests.harness.wsman import certs  # noqa: E402
from tests.harness.wsman.hyperv import HyperVResponder  # noqa: E402
from tests.harness.wsman.server import WSManServer  # noqa: E402

USER = "administrator"
PASSWORD = "Wz$9'q\"pass;word"


@pytest.fixture
def password() -> str:
    """The account's password: quotes and a semicolon, so leaks and quoting bugs show."""
    return PASSWORD


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> certs.CertificateFiles:
    return certs.generate(tmp_path_factory.mktemp("wsman-tls"))


@pytest.fixture(scope="session")
def wsman_server(certificates: certs.CertificateFiles) -> Iterator[WSManServer]:
    with WSManServer(users={USER: PASSWORD}, certificates=certificates) as server:
        yield server


@pytest.fixture
def site(wsman_server: WSManServer) -> HyperVResponder:
    """Two standalone hosts and three VMs; a fresh site for every test."""
    responder = HyperVResponder()
    responder.add_host("HV01", logical_processors=8, clock_mhz=2500, memory_bytes=32 * 1024**3)
    responder.add_host("HV02", logical_processors=8, clock_mhz=2500, memory_bytes=32 * 1024**3)
    responder.add_vm("web01", "HV01", processor_count=2, startup_bytes=4096 * 1024**2, cpu_demand_mhz=1500)
    responder.add_vm(
        "db01",
        "HV01",
        processor_count=4,
        startup_bytes=8192 * 1024**2,
        dynamic_memory=True,
        minimum_bytes=2048 * 1024**2,
        maximum_bytes=8192 * 1024**2,
        memory_demand_mb=3000,
        cpu_demand_mhz=6000,
    )
    responder.add_vm("batch01", "HV02", processor_count=2, startup_bytes=2048 * 1024**2, cpu_demand_mhz=800)
    wsman_server.responder = responder
    return responder


DriverFactory = Callable[..., object]


@pytest.fixture
def make_driver(
    wsman_server: WSManServer, certificates: certs.CertificateFiles, site: HyperVResponder
) -> Iterator[DriverFactory]:
    """Build the hyperv driver through its entry point, configured for the loopback server."""
    made = []

    def factory(**overrides: object) -> object:
        conf = cfg.ConfigOpts()
        values: dict[str, object] = {
            "endpoint": wsman_server.endpoint,
            "username": USER,
            "password": PASSWORD,
            "transport": "ntlm",
            "ca_file": str(certificates.ca_file),
            "hosts": ["HV01", "HV02"],
            "operation_timeout": 2,
        }
        values.update(overrides)
        conf.register_opts(OPTS, group="hyperv")
        for name, value in values.items():
            conf.set_override(name, value, group="hyperv")
        driver = load_plugin(DRIVERS, "hyperv", conf)
        made.append(driver)
        return driver

    yield factory
    for driver in made:
        driver.close()
