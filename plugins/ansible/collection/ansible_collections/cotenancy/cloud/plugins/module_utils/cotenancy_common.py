"""Shared by the cotenancy.cloud modules: configuration and driver from module arguments."""

from __future__ import annotations

COMMON_ARGS = {
    "driver": {"type": "str", "required": True},
    "config_files": {"type": "list", "elements": "path", "default": []},
    "options": {"type": "dict", "default": {}},
    "store": {"type": "str", "required": False},
}


def build(params, *, all_plugins=True, with_store=True):
    """(conf, driver, store) from module parameters (store is None without ``with_store``).

    ``all_plugins`` registers every installed plugin's options, as the ``cotenancy`` command does
    (the plan module loads strategies and predictors). The step and apply modules need only the
    core options and their driver's: registering just those spares each task's process the import
    of every plugin (OpenStack SDK, OR-Tools, pandas...), seconds per step.
    """
    from cotenancy.cli.common import load_driver, open_store
    from cotenancy.conf import make_conf

    files = list(params["config_files"])
    conf = make_conf([], config_files=files) if all_plugins else _driver_conf(params["driver"], files)
    for key, value in (params.get("options") or {}).items():
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=None if group in ("", "DEFAULT") else group)
    store = open_store(conf, params.get("store")) if with_store else None
    driver = load_driver(conf, params["driver"])
    return conf, driver, store


def _driver_conf(driver_name, config_files):
    from oslo_config import cfg

    from cotenancy import loading
    from cotenancy.conf.opts import _core_opts, plugin_group

    conf = cfg.ConfigOpts()
    for group, opts in _core_opts():
        conf.register_opts(opts, group=None if group == "DEFAULT" else group)
    driver_class = loading.plugin_class(loading.DRIVERS, driver_name)
    conf.register_opts(driver_class.list_opts(), group=plugin_group(driver_class))
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
