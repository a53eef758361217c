"""``ControlLoop.run`` is the ``cotenancy run`` service: a failed round is logged and the next one
starts an interval later, until ``[DEFAULT] max_failed_rounds`` rounds fail in a row. Errors that
waiting cannot fix, and an operator's Ctrl-C, still stop it at once; a SIGTERM stops it once the
round in progress has ended."""

from __future__ import annotations

import logging
import signal

import pytest
from oslo_config import cfg

from cotenancy.cli.main import main
from cotenancy.engine.loop import ControlLoop
from cotenancy.exceptions import ConfigurationError, DriverError, SchemaMismatch
from cotenancy.model import Inventory
from cotenancy.strategies.noop import NoopStrategy
from drivers.simulated.driver import SimulatedDriver


class FlakyCloud(SimulatedDriver):
    """The simulated cloud, whose inventory call raises ``failures[n]`` on its ``n``-th call (from 1)."""

    def __init__(self, conf: cfg.ConfigOpts, failures: dict[int, BaseException]) -> None:
        super().__init__(conf)
        self.failures = failures
        self.inventory_calls = 0

    def get_inventory(self) -> Inventory:
        self.inventory_calls += 1
        if self.inventory_calls in self.failures:
            raise self.failures[self.inventory_calls]
        return super().get_inventory()


@pytest.fixture
def small_conf(conf: cfg.ConfigOpts) -> cfg.ConfigOpts:
    conf.set_override("synthetic_vms", 6, group="simulator")
    return conf


def loop_over(conf: cfg.ConfigOpts, driver: FlakyCloud) -> ControlLoop:
    return ControlLoop(conf, driver=driver, strategy=NoopStrategy(conf))


def timeout() -> DriverError:
    return DriverError("inventory API timed out (transient)")


def test_a_transient_driver_error_costs_one_round_not_the_service(small_conf):
    driver = FlakyCloud(small_conf, {2: timeout()})
    start = driver.now()

    results = loop_over(small_conf, driver).run(rounds=5)

    assert driver.inventory_calls == 5
    assert len(results) == 4
    assert driver.now() == start + 4 * small_conf.interval


def test_a_failed_round_counts_as_one_of_a_finite_number_of_rounds(small_conf):
    driver = FlakyCloud(small_conf, {3: timeout()})
    loop = loop_over(small_conf, driver)

    results = loop.run(rounds=3)

    assert driver.inventory_calls == 3
    assert len(results) == 2
    assert loop.failed_rounds == 1


def test_a_failed_round_is_logged_at_error_with_its_cause(small_conf, caplog):
    driver = FlakyCloud(small_conf, {1: timeout()})

    with caplog.at_level(logging.ERROR, logger="cotenancy.engine.loop"):
        loop_over(small_conf, driver).run(rounds=2)

    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "DriverError: inventory API timed out (transient)" in record.getMessage()
    assert "next round in 300 s" in record.getMessage()
    assert not record.exc_info, "the project's own errors say enough without a traceback"


def test_the_loop_stops_with_the_error_after_max_failed_rounds_in_a_row(small_conf, caplog):
    small_conf.set_override("max_failed_rounds", 3)
    driver = FlakyCloud(small_conf, {n: timeout() for n in range(1, 100)})

    with pytest.raises(DriverError, match="timed out"):
        loop_over(small_conf, driver).run()

    assert driver.inventory_calls == 3
    assert "stopping the control loop" in caplog.records[-1].getMessage()


def test_a_good_round_resets_the_count_of_failures_in_a_row(small_conf):
    small_conf.set_override("max_failed_rounds", 3)
    driver = FlakyCloud(small_conf, {1: timeout(), 2: timeout(), 4: timeout(), 5: timeout()})
    loop = loop_over(small_conf, driver)

    results = loop.run(rounds=6)

    assert len(results) == 2
    assert loop.failed_rounds == 4


def test_an_unexpected_error_is_survived_and_logged_with_its_traceback(small_conf, caplog):
    driver = FlakyCloud(small_conf, {1: KeyError("vm-07")})

    with caplog.at_level(logging.ERROR, logger="cotenancy.engine.loop"):
        results = loop_over(small_conf, driver).run(rounds=2)

    assert len(results) == 1
    [record] = caplog.records
    assert "KeyError" in record.getMessage()
    assert record.exc_info


@pytest.mark.parametrize(
    "error",
    [ConfigurationError("[nova] auth_url is not set"), SchemaMismatch("retrain the forecaster")],
    ids=["configuration", "model schema"],
)
def test_errors_that_waiting_cannot_fix_stop_the_loop_at_once(small_conf, error):
    driver = FlakyCloud(small_conf, {1: error})

    with pytest.raises(type(error)):
        loop_over(small_conf, driver).run(rounds=3)

    assert driver.inventory_calls == 1


def test_an_interrupt_stops_the_loop_at_once(small_conf):
    driver = FlakyCloud(small_conf, {2: KeyboardInterrupt()})

    with pytest.raises(KeyboardInterrupt):
        loop_over(small_conf, driver).run()

    assert driver.inventory_calls == 2


def test_cotenancy_run_reports_failed_rounds_and_exits_non_zero(small_conf, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("cotenancy.cli.run.load_driver", lambda conf, name: FlakyCloud(conf, {2: timeout()}))

    code = main(
        ["--set", "simulator.synthetic_vms=6", "run", "--rounds", "3", "--dry-run"]
        + ["--strategy", "noop", "--store", f"sqlite:///{tmp_path / 'history.sqlite'}"]
    )

    assert code == 1
    assert "3 rounds (1 failed, see the log)" in capsys.readouterr().out


class TerminatedCloud(SimulatedDriver):
    """The simulated cloud, sent a SIGTERM during its ``during_round``-th inventory call or its
    ``during_wait``-th wait between rounds (as ``systemctl stop`` may come at any time)."""

    def __init__(self, conf: cfg.ConfigOpts, during_round: int = 0, during_wait: int = 0) -> None:
        super().__init__(conf)
        self.during_round, self.during_wait = during_round, during_wait
        self.inventory_calls = self.waits = self.waited = 0

    def get_inventory(self) -> Inventory:
        self.inventory_calls += 1
        if self.inventory_calls == self.during_round:
            signal.raise_signal(signal.SIGTERM)
        return super().get_inventory()

    def wait(self, seconds: float) -> None:
        self.waits += 1
        if self.waits == self.during_wait:
            signal.raise_signal(signal.SIGTERM)
        super().wait(seconds)
        self.waited += 1


def run_until_terminated(monkeypatch, tmp_path, driver: TerminatedCloud) -> int:
    monkeypatch.setattr("cotenancy.cli.run.load_driver", lambda conf, name: driver)
    return main(
        ["--set", "simulator.synthetic_vms=6", "run", "--dry-run", "--strategy", "noop"]
        + ["--store", f"sqlite:///{tmp_path / 'history.sqlite'}"]
    )


@pytest.mark.parametrize(
    ("when", "rounds", "waits"),
    [({"during_round": 2}, 2, 1), ({"during_wait": 3}, 3, 2)],
    ids=["during a round: it ends, then the service stops", "between rounds: no other round starts"],
)
def test_a_sigterm_stops_the_service_without_cutting_a_round_short(
    small_conf, tmp_path, monkeypatch, capsys, when, rounds, waits
):
    driver = TerminatedCloud(small_conf, **when)
    handler = signal.getsignal(signal.SIGTERM)

    code = run_until_terminated(monkeypatch, tmp_path, driver)

    assert code == 0
    assert driver.inventory_calls == rounds and driver.waited == waits
    assert f"{rounds} rounds, 0 steps planned, 0 failed" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) is handler
