"""How the nova driver reports what goes wrong at the SDK's edge: a Nova that does not answer in
time, and a server whose diagnostics are malformed. A real Nova (tests/functional/nova) gives
neither on demand, so the SDK's compute proxy is replaced by a double here."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest
from keystoneauth1 import exceptions as ksa_exc
from oslo_config import cfg

from cotenancy.drivers.nova import convert, options
from cotenancy.drivers.nova.driver import NovaDriver
from cotenancy.exceptions import TimedOut
from cotenancy.model import Metric


def diagnostics(cpu_time: object, used: object = 512) -> dict:
    return {
        "uptime": 100,
        "cpu_details": [{"time": cpu_time}],
        "memory_details": {"used": used},
        "disk_details": [],
        "nic_details": [],
    }


class Compute:
    """Answers diagnostics from a table."""

    def __init__(self, table: dict[str, dict]) -> None:
        self.table = table

    def get_server_diagnostics(self, vm_id: str) -> dict:
        return self.table[vm_id]


class Unanswering:
    """Every call times out, as keystoneauth reports a Nova that does not answer."""

    def __getattr__(self, name: str):
        def call(*args, **kwargs):
            raise ksa_exc.ConnectTimeout(f"Request to http://nova.example/v2.1 ({name}) timed out")

        return call


def make_driver(compute: object) -> NovaDriver:
    conf = cfg.ConfigOpts()
    conf([], project="cotenancy", default_config_files=[])
    conf.register_opts(options.NOVA_OPTS, group="nova")
    return NovaDriver(conf, connection=SimpleNamespace(compute=compute))


def test_a_nova_that_does_not_answer_in_time_is_timed_out_not_a_plain_failure():
    driver = make_driver(Unanswering())
    with pytest.raises(TimedOut, match="ConnectTimeout"):
        driver.live_migrate("0b4a0f5e-0000-4000-8000-000000000001", "compute-2", timeout=5)


def test_malformed_diagnostics_are_refused_naming_the_field():
    with pytest.raises(ValueError, match="time is not a number: 'n/a'"):
        convert.diagnostics_reading(diagnostics("n/a"), timestamp=0.0)
    with pytest.raises(ValueError, match="memory_details.used is not finite"):
        convert.diagnostics_reading(diagnostics(1e9, used=float("nan")), timestamp=0.0)


def test_one_server_with_malformed_diagnostics_costs_only_its_own_samples(caplog):
    table = {"good-1": diagnostics(1e9), "bad": diagnostics("n/a"), "good-2": diagnostics(1e9, used=1024)}
    driver = make_driver(Compute(table))
    now = time.time()
    samples = driver.get_metrics(now - 300, now + 1, ["good-1", "bad", "good-2"])
    assert sorted((s.vm_id, s.metric, s.value) for s in samples) == [
        ("good-1", Metric.MEMORY, 512.0),
        ("good-2", Metric.MEMORY, 1024.0),
    ]
    assert "server bad: diagnostics skipped" in caplog.text
