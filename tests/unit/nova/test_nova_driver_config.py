"""How the nova driver builds its keystoneauth session from clouds.yaml and its options."""

from __future__ import annotations

import logging

import pytest
import yaml
from oslo_config import cfg

from cotenancy.drivers.nova import options
from cotenancy.drivers.nova.driver import NovaDriver
from cotenancy.exceptions import ConfigurationError, DriverError

SECRET = "correct-horse-battery-staple"


@pytest.fixture
def clouds_file(tmp_path):
    path = tmp_path / "clouds.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "prod": {
                        "auth": {
                            "auth_url": "https://keystone.example:5000/v3",
                            "username": "ops",
                            "password": SECRET,
                            "project_name": "admin",
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "region_name": "RegionOne",
                    },
                    "lab": {
                        "auth": {
                            "auth_url": "https://keystone.lab:5000/v3",
                            "username": "ops",
                            "password": SECRET,
                            "project_name": "admin",
                            "user_domain_name": "Default",
                            "project_domain_name": "Default",
                        },
                        "verify": False,
                    },
                }
            }
        )
    )
    return path


def make_driver(clouds_file, **overrides: object) -> NovaDriver:
    conf = cfg.ConfigOpts()
    conf([], project="cotenancy", default_config_files=[])
    conf.register_opts(options.NOVA_OPTS, group="nova")
    conf.set_override("clouds_file", str(clouds_file), group="nova")
    for key, value in overrides.items():
        conf.set_override(key, value, group="nova")
    return NovaDriver(conf)


def test_tls_verification_is_on_by_default(clouds_file):
    driver = make_driver(clouds_file, cloud="prod")
    assert driver.connection.session.verify is True
    assert driver.connection.config.get_region_name() == "RegionOne"


def test_insecure_and_cacert_override_clouds_yaml(clouds_file, tmp_path):
    assert make_driver(clouds_file, cloud="prod", insecure=True).connection.session.verify is False
    bundle = tmp_path / "ca.pem"
    bundle.write_text("")
    driver = make_driver(clouds_file, cloud="prod", cacert=str(bundle))
    assert driver.connection.session.verify == str(bundle)


def test_clouds_yaml_can_itself_turn_verification_off(clouds_file):
    assert make_driver(clouds_file, cloud="lab").connection.session.verify is False


def test_an_unknown_cloud_is_a_configuration_error_without_secrets(clouds_file, caplog):
    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConfigurationError) as failure:
        make_driver(clouds_file, cloud="staging").connection  # noqa: B018 (connects lazily)
    assert "staging" in str(failure.value)
    assert SECRET not in str(failure.value)
    assert SECRET not in caplog.text


def test_the_session_is_built_lazily_and_closed(clouds_file):
    driver = make_driver(clouds_file, cloud="prod")
    assert driver._connection is None
    assert driver.connection is driver.connection
    driver.close()
    assert driver._connection is None


def test_options_are_listed_for_the_config_generator():
    [(group, opts)] = options.list_opts()
    names = {o.name for o in opts}
    assert group == "nova" == NovaDriver.name
    assert {"cloud", "clouds_file", "insecure", "mhz_per_vcpu", "action_timeout"} <= names
    assert not any("password" in n or "token" in n for n in names)


def test_an_unreachable_cloud_is_a_driver_error_not_an_sdk_exception(tmp_path):
    clouds = tmp_path / "clouds.yaml"
    endpoint = "http://127.0.0.1:9"
    clouds.write_text(
        yaml.safe_dump(
            {
                "clouds": {
                    "down": {
                        "auth_type": "admin_token",
                        "auth": {"endpoint": endpoint, "token": SECRET},
                        "compute_endpoint_override": f"{endpoint}/v2.1",
                        "placement_endpoint_override": f"{endpoint}/placement",
                    }
                }
            }
        )
    )
    driver = make_driver(clouds, cloud="down")
    with pytest.raises(DriverError) as failure:
        driver.get_inventory()
    assert type(failure.value) is DriverError
    assert SECRET not in str(failure.value)
