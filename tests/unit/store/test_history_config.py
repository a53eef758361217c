"""Where the history store lives: configuration and URL handling."""

from __future__ import annotations

from pathlib import Path

import pytest

from cotenancy.exceptions import ConfigurationError, NotFound
from cotenancy.model import MetricSample, StepStatus
from cotenancy.store import HistoryStore
from cotenancy.store.history import normalise_url, rejection_reason


def test_default_store_is_sqlite_under_state_path(conf, tmp_path: Path) -> None:
    conf.set_override("state_path", str(tmp_path / "state"))
    with HistoryStore.from_conf(conf) as store:
        assert store.url.get_backend_name() == "sqlite"
        assert Path(store.url.database) == tmp_path / "state" / "history.sqlite"
    assert (tmp_path / "state" / "history.sqlite").is_file()


def test_configured_connection_wins(conf, tmp_path: Path) -> None:
    conf.set_override("connection", f"sqlite:///{tmp_path / 'elsewhere.sqlite'}", group="store")
    with HistoryStore.from_conf(conf) as store:
        assert Path(store.url.database) == tmp_path / "elsewhere.sqlite"


def test_home_is_expanded_in_sqlite_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    url = normalise_url("sqlite:///~/deep/dir/h.sqlite")
    assert url.database == str(tmp_path / "deep" / "dir" / "h.sqlite")
    assert (tmp_path / "deep" / "dir").is_dir()


def test_plain_postgresql_urls_use_psycopg_and_hide_the_password() -> None:
    url = normalise_url("postgresql://u:s3cret@127.0.0.1/db")
    assert url.drivername == "postgresql+psycopg"
    assert "s3cret" not in repr(url)


def test_a_malformed_url_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="not a database URL"):
        HistoryStore("definitely not a url")


def test_in_memory_store_works_across_calls() -> None:
    with HistoryStore("sqlite://") as store:
        store.add_samples([MetricSample("a", 1.0, "cpu", 2.0)])
        assert store.samples(0.0, 2.0) == [MetricSample("a", 1.0, "cpu", 2.0)]
        with pytest.raises(NotFound, match="no plan"):
            store.update_step("nope", 0, StepStatus.RUNNING)


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        (MetricSample("a", 0.0, "cpu", 1.0), None),
        (MetricSample("a", 0.0, "cpu_ready", 1.0), None),
        (MetricSample("a", 0.0, "cpu_ready", 1.01), "ready_above_one"),
        (MetricSample("a", 0.0, "cpu", -0.5), "negative"),
        (MetricSample("a", 0.0, "cpu", float("nan")), "nan"),
        (MetricSample("a", 0.0, "cpu", float("-inf")), "infinite"),
        (MetricSample("a", float("nan"), "cpu", 1.0), "bad_timestamp"),
        (MetricSample("a", 0.0, "cpu", "lots"), "not_a_number"),  # type: ignore[arg-type]
        (MetricSample("a", 0.0, "iops", 1.0), "unknown_metric"),
        (MetricSample("", 0.0, "cpu", 1.0), "missing_vm_id"),
    ],
)
def test_rejection_reasons(sample: MetricSample, reason: str | None) -> None:
    assert rejection_reason(sample) == reason


def test_a_backend_other_than_sqlite_or_postgresql_is_a_clear_configuration_error() -> None:
    """The store's keys rely on ON CONFLICT as SQLite and PostgreSQL spell it."""
    with pytest.raises(ConfigurationError, match="'mysql' databases are not supported"):
        HistoryStore("mysql://u:p@127.0.0.1/db")
