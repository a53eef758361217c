"""How the cotenancy.cloud modules build their configuration: core options plus the named
driver's (and strategy's) up front, every plugin's when an override names another plugin's
option, and a clear error for an option nobody has."""

from __future__ import annotations

import importlib.util

import pytest
from ansible_helpers import REPO, TEST_DRIVER, SimCloud
from oslo_config import cfg

COLLECTION = REPO / "plugins" / "ansible" / "collection" / "ansible_collections" / "cotenancy" / "cloud"
COMMON = COLLECTION / "plugins" / "module_utils" / "cotenancy_common.py"


@pytest.fixture(scope="module")
def common():
    spec = importlib.util.spec_from_file_location("cotenancy_common_under_test", COMMON)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def params(cloud: SimCloud, **options: object) -> dict:
    return {
        "driver": TEST_DRIVER,
        "config_files": [str(cloud.config_file)],
        "options": options,
        "store": None,
    }


def test_the_driver_reads_its_options_from_the_configuration_files(
    common, sim_cloud: SimCloud, in_process_entry_points
) -> None:
    conf, driver, store = common.build(
        params(sim_cloud, **{"DEFAULT.step_timeout": 42.0}), strategy="predictive"
    )
    try:
        assert driver.options.state_file == str(sim_cloud.state_file)
        assert conf.step_timeout == 42.0
        assert store is not None
    finally:
        driver.close()
        store.close()


def test_an_override_of_another_plugins_option_registers_every_plugin(
    common, sim_cloud: SimCloud, in_process_entry_points
) -> None:
    conf, driver, _ = common.build(params(sim_cloud, **{"vsphere.task_timeout": 5.0}), with_store=False)
    driver.close()
    assert conf.vsphere.task_timeout == 5.0


def test_an_override_nobody_knows_is_an_error_naming_it(
    common, sim_cloud: SimCloud, in_process_entry_points
) -> None:
    with pytest.raises((cfg.NoSuchOptError, cfg.NoSuchGroupError), match="no_such_option"):
        common.build(params(sim_cloud, **{"simulated.no_such_option": 1}), with_store=False)
