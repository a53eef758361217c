"""Shared by the cotenancy.cloud modules: configuration and driver from module arguments."""

from __future__ import annotations

COMMON_ARGS = {
    "driver": {"type": "str", "required": True},
    "config_files": {"type": "list", "elements": "path", "default": []},
    "options": {"type": "dict", "default": {}},
    "store": {"type": "str", "required": False},
}


def build(params):
    """(conf, driver, store) from module parameters."""
    from cotenancy.cli.common import load_driver, open_store
    from cotenancy.conf import make_conf

    conf = make_conf([], config_files=params["config_files"])
    for key, value in (params.get("options") or {}).items():
        group, _, option = key.rpartition(".")
        conf.set_override(option, value, group=None if group in ("", "DEFAULT") else group)
    store = open_store(conf, params.get("store"))
    driver = load_driver(conf, params["driver"])
    return conf, driver, store


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
