"""A credential the cloud rejects, or a certificate that fails verification, is an
:class:`AuthenticationFailed` naming the cloud, the endpoint and what to fix (never the secret),
so ``cotenancy run`` stops at once; a cloud that is down or answers 5xx stays a plain
:class:`DriverError` that the next round may not meet. The same holds for the Prometheus datasource.

The Nova harness plays keystonemiddleware with one token (``admin_token`` auth): a wrong token is
refused with 401 by the real Nova API. It has no Keystone, so it cannot tell a right password from a
wrong one; it refuses every password request with 401, which is what Keystone answers a wrong
password with, and keystoneauth's real password flow meets that answer over a real socket.
"""

from __future__ import annotations

import pytest
import yaml
from nova_harness import NovaHarness
from oslo_config import cfg

from cotenancy.drivers.nova.driver import NovaDriver
from cotenancy.drivers.nova.options import GROUP
from cotenancy.drivers.nova.prometheus import PROMETHEUS_OPTS, PrometheusDatasource
from cotenancy.exceptions import AuthenticationFailed, ConfigurationError, DriverError

SECRET = "n0t-the-t0ken;'\""


def inventory_error(
    nova_conf: cfg.ConfigOpts, tmp_path, cloud: dict, expected: type[Exception] = AuthenticationFailed
) -> Exception:
    """What the driver's first inventory raises, with ``cloud`` as cloud ``prod`` of its clouds.yaml."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(yaml.safe_dump({"clouds": {"prod": cloud}}))
    nova_conf.set_override("cloud", "prod", group=GROUP)
    nova_conf.set_override("clouds_file", str(clouds), group=GROUP)
    driver = NovaDriver(nova_conf)
    try:
        with pytest.raises(expected) as failure:
            driver.get_inventory()
    finally:
        driver.close()
    return failure.value


def password_cloud(auth_url: str, endpoint: str, auth_type: str = "password") -> dict:
    """A cloud that logs in with a password at ``auth_url``, as production clouds.yaml files do."""
    return {
        "auth_type": auth_type,
        "auth": {
            "auth_url": auth_url,
            "username": "ops",
            "password": SECRET,
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "compute_endpoint_override": f"{endpoint}/v2.1",
        "placement_endpoint_override": f"{endpoint}/placement",
    }


def test_a_token_nova_rejects_is_an_authentication_failure_naming_cloud_and_endpoint(
    nova: NovaHarness, nova_conf, tmp_path, caplog
):
    cloud = nova.cloud_config() | {"auth": {"endpoint": nova.endpoint, "token": SECRET}}
    error = inventory_error(nova_conf, tmp_path, cloud)
    message = str(error)
    assert isinstance(error, ConfigurationError)
    assert "'prod'" in message and nova.endpoint in message and "HTTP 401" in message
    assert str(tmp_path / "clouds.yaml") in message
    assert SECRET not in message and SECRET not in caplog.text


def test_a_password_the_identity_endpoint_rejects_is_an_authentication_failure(
    nova: NovaHarness, nova_conf, tmp_path, caplog
):
    # v3password asks for a token without discovering the identity API first: the harness has no
    # public identity version document, and keystoneauth deadlocks when discovery is refused 401
    auth_url = f"{nova.endpoint}/identity/v3"
    message = str(inventory_error(nova_conf, tmp_path, password_cloud(auth_url, nova.endpoint, "v3password")))
    assert "'prod'" in message and auth_url in message and "rejected its credentials" in message
    assert SECRET not in message and SECRET not in caplog.text


@pytest.mark.parametrize("path", ["/v3", ""], ids=["versioned-auth-url", "bare-auth-url"])
def test_a_certificate_no_trusted_ca_signed_is_an_authentication_failure_naming_cacert(
    unavailable_https, nova_conf, tmp_path, path
):
    endpoint, _ = unavailable_https
    message = str(inventory_error(nova_conf, tmp_path, password_cloud(f"{endpoint}{path}", endpoint)))
    assert "'prod'" in message and endpoint in message and "[nova] cacert" in message
    assert "failed verification" in message
    assert SECRET not in message


def test_with_the_signing_ca_as_cacert_a_cloud_answering_503_stays_a_transient_driver_error(
    unavailable_https, nova_conf, tmp_path
):
    endpoint, ca_file = unavailable_https
    nova_conf.set_override("cacert", str(ca_file), group=GROUP)
    cloud = password_cloud(f"{endpoint}/v3", endpoint)
    error = inventory_error(nova_conf, tmp_path, cloud, expected=DriverError)
    assert not isinstance(error, ConfigurationError)
    assert "HTTP 503" in str(error)


def prometheus_at(url: str, **options: object) -> PrometheusDatasource:
    conf = cfg.ConfigOpts()
    conf([], project="cotenancy", default_config_files=[])
    conf.register_opts(PROMETHEUS_OPTS, group="prometheus")
    for name, value in {"url": url, "timeout": 5.0, **options}.items():
        conf.set_override(name, value, group="prometheus")
    return PrometheusDatasource(conf)


def test_a_prometheus_certificate_no_trusted_ca_signed_is_an_authentication_failure(unavailable_https):
    endpoint, ca_file = unavailable_https
    with pytest.raises(AuthenticationFailed, match=r"failed verification.*\[prometheus\] cacert") as refused:
        prometheus_at(endpoint).get_metrics(0.0, 60.0)
    assert endpoint in str(refused.value)
    with pytest.raises(DriverError, match="HTTP 503") as unavailable:
        prometheus_at(endpoint, cacert=str(ca_file)).get_metrics(0.0, 60.0)
    assert not isinstance(unavailable.value, ConfigurationError)
