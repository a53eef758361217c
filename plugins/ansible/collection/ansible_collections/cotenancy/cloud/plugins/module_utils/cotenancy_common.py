"""Shared by the cotenancy.cloud modules: configuration and driver from module arguments."""

from __future__ import annotations

COMMON_ARGS = {
    "driver": {"type": "str", "required": True},
    "config_files": {"type": "list", "elements": "path", "default": []},
    "options": {"type": "dict", "default": {}},
    "store": {"type": "str", "required": False},
}


def build(params, *, strategy=None, with_store=True):
    """(conf, driver, store) from module parameters (store is None without ``with_store``).

    Only the core options and those of the named driver (and strategy) are registered up front;
    plugins loaded later register their own. That spares each task's process the import of every
    installed plugin (OpenStack SDK, OR-Tools, pandas...), seconds per task. An override naming
    another plugin's option falls back to registering them all, as the ``cotenancy`` command does.
    """
    from oslo_config import cfg

    from cotenancy import loading
    from cotenancy.cli.common import load_driver, open_store
    from cotenancy.conf import make_conf

    files = list(params["config_files"])
    plugins = [(loading.DRIVERS, params["driver"])]
    if strategy:
        plugins.append((loading.STRATEGIES, strategy))
    overrides = params.get("options") or {}
    conf = _plugin_conf(plugins, files)
    try:
        _override(conf, overrides)
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        conf = make_conf([], config_files=files)
        _override(conf, overrides)
    driver = load_driver(conf, params["driver"])
    require_shared_cloud(driver)
    store = open_store(conf, params.get("store")) if with_store else None
    return conf, driver, store


def _override(conf, overrides):
    for key, value in overrides.items():
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=None if group in ("", "DEFAULT") else group)


def require_shared_cloud(driver):
    """Every Ansible task runs in a process of its own: a simulated cloud that lives only in this
    process's memory would make plan, apply and step act on different clouds, and report success."""
    from cotenancy.exceptions import ConfigurationError

    if driver.name == "simulated" and not getattr(driver, "persistent", False):
        driver.close()
        raise ConfigurationError(
            "the simulated cloud lives in one process's memory; set [simulated] state_file "
            "(driver cotenancy.drivers.simulated.persistent) so that every task sees the same cloud"
        )


def _plugin_conf(plugins, config_files):
    from oslo_config import cfg

    from cotenancy import loading
    from cotenancy.conf.opts import core_opts

    conf = cfg.ConfigOpts()
    for group, opts in core_opts():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    for namespace, name in plugins:
        plugin = loading.plugin_class(namespace, name)
        conf.register_opts(plugin.list_opts(), group=plugin.option_group())
    conf([], project="cotenancy", default_config_files=config_files, validate_default_values=True)
    return conf


def step_to_dict(action):
    return {
        "index": action.index,
        "kind": action.kind.value,
        "vm_id": action.vm_id,
        "source_host_id": action.source_host_id,
        "target_host_id": action.target_host_id or action.host_id,
        "size": action.size.as_dict() if action.size else None,
        "depends_on": list(action.depends_on),
        "reason": action.reason,
        "expected_benefit": action.expected_benefit,
        "status": action.status.value,
        "message": action.message,
    }
