"""The Prometheus datasource against a loopback server that speaks the Prometheus HTTP API."""

from __future__ import annotations

import math

import pytest
from oslo_config import cfg

from cotenancy.drivers.nova.prometheus import (
    DEFAULT_QUERIES,
    PROMETHEUS_OPTS,
    PrometheusDatasource,
)
from cotenancy.exceptions import AuthenticationFailed, ConfigurationError, DriverError
from cotenancy.loading import DATASOURCES, load_plugin
from cotenancy.model import Metric

VM_A = "8a2f6c1e-0000-4000-8000-00000000000a"
VM_B = "8a2f6c1e-0000-4000-8000-00000000000b"
T0 = 1_700_000_000.0


def make_conf(url: str, **overrides: object) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    conf([], project="cotenancy", default_config_files=[])
    conf.register_opts(PROMETHEUS_OPTS, group="prometheus")
    conf.set_override("url", url, group="prometheus")
    for key, value in overrides.items():
        conf.set_override(key, value, group="prometheus")
    return conf


def query(metric: str, window: str = "5m") -> str:
    return DEFAULT_QUERIES[metric].replace("{window}", window)


def test_samples_carry_the_vm_uuid_project_units_and_only_the_asked_window(prometheus):
    prometheus.series[query(Metric.CPU)] = [
        ({"instance_id": VM_A}, lambda t: 0.5),
        ({"instance_id": VM_B}, lambda t: 2.0),
    ]
    prometheus.series[query(Metric.MEMORY)] = [({"instance_id": VM_A}, lambda t: 300.0)]
    source = PrometheusDatasource(make_conf(prometheus.url, step=60.0, mhz_per_vcpu=2500.0))

    samples = source.get_metrics(T0, T0 + 300)

    cpu_a = sorted((s.timestamp, s.value) for s in samples if s.vm_id == VM_A and s.metric == "cpu")
    assert cpu_a == [(T0 + 60 * i, 0.5 * 2500.0) for i in range(5)]  # end is exclusive
    assert {s.value for s in samples if s.vm_id == VM_B} == {2.0 * 2500.0}
    assert {s.value for s in samples if s.metric == Metric.MEMORY} == {300.0}
    asked = {r["query"] for r in prometheus.requests}
    assert asked == {query(m) for m in DEFAULT_QUERIES}
    assert all("{window}" not in q and "[5m]" in q for q in asked if "rate(" in q)


def test_only_the_requested_vms_are_returned(prometheus):
    prometheus.series[query(Metric.CPU)] = [
        ({"instance_id": VM_A}, lambda t: 1.0),
        ({"instance_id": VM_B}, lambda t: 1.0),
        ({"domain": "instance-0001"}, lambda t: 1.0),  # not joined to a server: ignored
    ]
    source = PrometheusDatasource(make_conf(prometheus.url))
    assert {s.vm_id for s in source.get_metrics(T0, T0 + 120, [VM_B])} == {VM_B}


def test_gaps_are_dropped_not_invented(prometheus):
    prometheus.series[query(Metric.NETWORK)] = [
        ({"instance_id": VM_A}, lambda t: math.nan if t == T0 + 60 else 7.0)
    ]
    source = PrometheusDatasource(make_conf(prometheus.url))
    stamps = [s.timestamp for s in source.get_metrics(T0, T0 + 180)]
    assert stamps == [T0, T0 + 120]


def test_long_ranges_are_split_below_the_point_limit_without_losing_points(prometheus):
    prometheus.series[query(Metric.CPU, "1m")] = [({"instance_id": VM_A}, lambda t: t - T0)]
    conf = make_conf(
        prometheus.url,
        step=15.0,
        rate_window="1m",
        memory_query="",
        disk_io_query="",
        network_query="",
        cpu_ready_query="",
        mhz_per_vcpu=1.0,
    )
    source = PrometheusDatasource(conf)
    span = 15.0 * 25_000  # 25,000 steps: more than twice Prometheus' limit

    samples = source.get_metrics(T0, T0 + span)

    assert len(prometheus.requests) == 3
    assert sorted(s.value for s in samples) == [15.0 * i for i in range(25_000)]


def test_an_empty_query_disables_that_metric(prometheus):
    conf = make_conf(prometheus.url, cpu_ready_query="")
    PrometheusDatasource(conf).get_metrics(T0, T0 + 60)
    assert query(Metric.CPU_READY) not in {r["query"] for r in prometheus.requests}
    assert len(prometheus.requests) == len(DEFAULT_QUERIES) - 1


def test_a_prometheus_error_is_a_driver_error_with_its_reason(prometheus):
    prometheus.fail_with = (
        422,
        {"status": "error", "errorType": "execution", "error": "many-to-many matching not allowed"},
    )
    source = PrometheusDatasource(make_conf(prometheus.url))
    with pytest.raises(DriverError, match="many-to-many matching not allowed"):
        source.get_metrics(T0, T0 + 60)


def test_credentials_prometheus_rejects_are_an_authentication_failure_naming_the_options(prometheus, caplog):
    """Another round would be refused alike, so ``cotenancy run`` stops on it at once."""
    prometheus.fail_with = (401, {"status": "error", "error": "Unauthorized"})
    source = PrometheusDatasource(make_conf(prometheus.url, username="ops", password="s3cret;'"))
    with pytest.raises(AuthenticationFailed) as refused:
        source.get_metrics(T0, T0 + 60)
    message = str(refused.value)
    assert prometheus.url in message and "[prometheus] username and password" in message
    assert "s3cret" not in message and "s3cret" not in caplog.text


def test_an_unreachable_prometheus_is_a_driver_error():
    source = PrometheusDatasource(make_conf("http://127.0.0.1:9", timeout=2.0))
    with pytest.raises(DriverError, match="127.0.0.1:9"):
        source.get_metrics(T0, T0 + 60)


def test_the_bearer_token_is_sent_from_its_file(prometheus, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("s3cret-token\n")
    source = PrometheusDatasource(make_conf(prometheus.url, bearer_token_file=str(token_file)))
    source.get_metrics(T0, T0 + 60)
    assert {h.get("Authorization") for h in prometheus.headers} == {"Bearer s3cret-token"}


def test_a_missing_token_file_is_a_configuration_error_naming_it(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(ConfigurationError, match=str(missing)):
        PrometheusDatasource(make_conf("http://127.0.0.1:9", bearer_token_file=str(missing)))


@pytest.mark.parametrize(
    "content", ["s3cret-token\n# rotated by ops\n", "s3cret token", "s3cret-t\u00f6ken", "\n"]
)
def test_a_token_file_that_is_not_one_token_is_refused_without_quoting_it(tmp_path, content):
    token_file = tmp_path / "token"
    token_file.write_text(content)
    with pytest.raises(ConfigurationError, match="one token on one line") as refused:
        PrometheusDatasource(make_conf("http://127.0.0.1:9", bearer_token_file=str(token_file)))
    assert "s3cret" not in str(refused.value)


def test_tls_verification_is_on_unless_disabled():
    assert PrometheusDatasource(make_conf("https://prometheus.example:9090"))._http.verify is True
    insecure = PrometheusDatasource(make_conf("https://prometheus.example:9090", insecure=True))
    assert insecure._http.verify is False


def test_the_password_option_is_secret():
    password = next(o for o in PROMETHEUS_OPTS if o.name == "password")
    assert password.secret is True


def test_the_entry_point_loads_the_datasource(prometheus):
    source = load_plugin(DATASOURCES, "prometheus", make_conf(prometheus.url), None)
    assert isinstance(source, PrometheusDatasource)
