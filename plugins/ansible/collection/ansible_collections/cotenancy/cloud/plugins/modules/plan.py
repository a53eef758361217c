#!/usr/bin/python
"""Ansible module: one cotenancy planning round."""

from __future__ import annotations

DOCUMENTATION = r"""
module: plan
short_description: Plan predictive resizes and live migrations with cotenancy
description:
  - Reads inventory and metrics through a cotenancy driver, predicts conflicts and demand, and
    computes an action plan with the configured strategy (default C(predictive)).
  - The plan is stored in the history store so that M(cotenancy.cloud.apply) can carry it out after
    approval. In check mode the plan is computed the same way (from the stored history and the
    requests other programs made through the open API, such as host drains) and returned, and
    nothing is written to the history store.
version_added: "0.1.0"
author: cotenancy developers
options:
  strategy:
    description: Strategy name (entry point in C(cotenancy.strategies)).
    type: str
    default: predictive
  rounds_of_history:
    description: Control-loop rounds to collect before planning (a fresh cloud needs some metrics).
    type: int
    default: 1
extends_documentation_fragment:
  - cotenancy.cloud.common
notes:
  - Runs on the controller; use C(hosts=localhost) in the play.
  - Supports check mode.
"""

EXAMPLES = r"""
- name: Plan against vCenter
  cotenancy.cloud.plan:
    driver: vsphere
    config_files: [/etc/cotenancy/cotenancy.conf]
  register: plan

- name: Show the steps and their reasons
  ansible.builtin.debug:
    msg: "{{ plan.steps | map(attribute='reason') | list }}"
"""

RETURN = r"""
plan_id:
  description: Identifier of the stored plan (empty in check mode).
  returned: always
  type: str
steps:
  description: The plan's steps in order, each with its reason and expected benefit.
  returned: always
  type: list
  elements: dict
stats:
  description: Solver facts (status, objective, optimality gap, maximum pair risk).
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.cotenancy.cloud.plugins.module_utils.cotenancy_common import (  # noqa: E402
    COMMON_ARGS,
    build,
    step_to_dict,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **COMMON_ARGS,
            "strategy": {"type": "str", "default": "predictive"},
            "rounds_of_history": {"type": "int", "default": 1},
        },
        supports_check_mode=True,
    )
    try:
        from cotenancy.cli.common import load_strategy
        from cotenancy.engine.loop import ControlLoop
        from cotenancy.exceptions import CotenancyError

        conf, driver, store = build(module.params, strategy=module.params["strategy"])
    except Exception as exc:  # noqa: BLE001 - report any setup failure to Ansible
        module.fail_json(msg=f"cotenancy setup failed: {exc}")
    try:
        loop = ControlLoop(
            conf,
            driver=driver,
            strategy=load_strategy(conf, module.params["strategy"]),
            store=store,
            read_only=module.check_mode,
            dry_run=True,
        )
        result = None
        for round_number in range(max(1, module.params["rounds_of_history"])):
            if round_number:
                driver.wait(loop.interval)
            result = loop.run_once()
        plan = result.plan
    except CotenancyError as exc:
        module.fail_json(msg=str(exc))
    finally:
        driver.close()
        store.close()
    module.exit_json(
        changed=bool(plan.actions) and not module.check_mode,
        plan_id="" if module.check_mode else plan.id,
        steps=[step_to_dict(a) for a in plan.actions],
        stats={k: v for k, v in plan.stats.items()},
    )


if __name__ == "__main__":
    main()
