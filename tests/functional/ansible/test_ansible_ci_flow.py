"""The CI flow: ``ansible-playbook playbooks/ci/plan_approve_apply.yml`` with the cotenancy.cloud
collection plans against the simulated cloud, stops for approval, and applies only on "yes".
"""

from __future__ import annotations

import json
import subprocess
import threading
import urllib.request

import pexpect
import pytest
from ansible_helpers import REPO, TEST_DRIVER, SimCloud

from cotenancy.api import make_server
from cotenancy.conf import api as api_conf
from cotenancy.model import StepStatus

PLAYBOOK = REPO / "playbooks" / "ci" / "plan_approve_apply.yml"
PROMPT = r"Type yes to apply\s*:"


@pytest.fixture
def ci_env(ansible_env: dict[str, str]) -> dict[str, str]:
    """The CI flow runs from the repository root and finds the collection through its
    ansible.cfg, as a pipeline would."""
    assert (REPO / "ansible.cfg").is_file()
    return {k: v for k, v in ansible_env.items() if k != "ANSIBLE_COLLECTIONS_PATH"}


def playbook_args(cloud: SimCloud, *extra: str) -> list[str]:
    return [
        str(PLAYBOOK),
        "-e",
        f"driver={TEST_DRIVER}",
        "-e",
        f'{{"cotenancy_config_files": ["{cloud.config_file}"]}}',
        *extra,
    ]


def run_unattended(cloud: SimCloud, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    """Runs the playbook without a terminal, as a pipeline job does."""
    return subprocess.run(
        ["ansible-playbook", *playbook_args(cloud, *extra)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )


def run_with_answer(cloud: SimCloud, env: dict[str, str], answer: str) -> tuple[int, str]:
    """Runs the playbook on a terminal (as a person or an approval bot sees it) and answers the pause."""
    child = pexpect.spawn(
        "ansible-playbook", playbook_args(cloud), cwd=str(REPO), env=env, encoding="utf-8", timeout=240
    )
    child.expect(PROMPT)
    before = child.before
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, before + child.before


def test_approved_plan_is_applied_to_the_cloud(sim_cloud: SimCloud, ci_env: dict[str, str]) -> None:
    busy = sim_cloud.busy_host()
    sim_cloud.driver().set_host_maintenance(busy, True)
    evacuees = {vm.id for vm in sim_cloud.driver().get_inventory().vms.values() if vm.host_id == busy}

    status, output = run_with_answer(sim_cloud, ci_env, "yes")

    assert status == 0, output
    plans = sim_cloud.store().list_plans()
    assert len(plans) == 1
    plan = plans[0]
    moves = [a for a in plan.actions if a.kind.value == "live_migrate"]
    assert moves and {a.vm_id for a in moves} <= evacuees
    assert all(a.status is StepStatus.SUCCEEDED for a in plan.actions), [a.message for a in plan.actions]
    driver = sim_cloud.driver()
    driver.wait(900)  # the simulated migrations complete in cloud time
    placed = driver.get_inventory().vms
    for move in moves:
        assert placed[move.vm_id].host_id == move.target_host_id


def test_refused_plan_changes_nothing(sim_cloud: SimCloud, ci_env: dict[str, str]) -> None:
    sim_cloud.driver().set_host_maintenance(sim_cloud.busy_host(), True)
    before = sim_cloud.state_file.read_bytes()

    status, output = run_with_answer(sim_cloud, ci_env, "no")

    assert status != 0
    assert "was not approved; nothing was applied" in output
    assert sim_cloud.state_file.read_bytes() == before
    (plan,) = sim_cloud.store().list_plans()
    assert plan.actions and all(a.status is StepStatus.PENDING for a in plan.actions)


def test_check_mode_plans_but_changes_nothing(sim_cloud: SimCloud, ci_env: dict[str, str]) -> None:
    sim_cloud.driver().set_host_maintenance(sim_cloud.busy_host(), True)
    before = sim_cloud.state_file.read_bytes()

    result = run_unattended(sim_cloud, ci_env, "--check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "live_migrate" in result.stdout  # the plan is shown ...
    assert sim_cloud.state_file.read_bytes() == before  # ... and nothing changed
    assert sim_cloud.store().list_plans() == []


def test_check_mode_plans_with_what_other_programs_requested_through_the_api(
    sim_cloud: SimCloud, ci_env: dict[str, str]
) -> None:
    """The plan --check shows is the plan apply would carry out: a drain requested over HTTP moves
    the host's VMs off in both, and check mode still writes nothing to the store."""
    busy = sim_cloud.busy_host()
    conf = sim_cloud.conf()
    conf.register_opts(api_conf.OPTS, group=api_conf.GROUP)
    with sim_cloud.store() as store:
        server = make_server(conf, store, listen="127.0.0.1:0")
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        try:
            request = urllib.request.Request(
                f"{server.url}/v1/drains",
                data=json.dumps({"host_id": busy, "reason": "BIOS update"}).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                assert answer.status == 201
        finally:
            server.shutdown()
            server.server_close()
    before = sim_cloud.state_file.read_bytes()

    result = run_unattended(sim_cloud, ci_env, "--check")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"host {busy} is in maintenance" in result.stdout
    assert sim_cloud.state_file.read_bytes() == before
    with sim_cloud.store() as store:
        assert store.list_plans() == []
        assert store.vms() == {}


def test_a_pipeline_without_a_terminal_applies_only_with_approval_yes(
    sim_cloud: SimCloud, ci_env: dict[str, str]
) -> None:
    sim_cloud.driver().set_host_maintenance(sim_cloud.busy_host(), True)
    before = sim_cloud.state_file.read_bytes()

    unattended = run_unattended(sim_cloud, ci_env)
    assert unattended.returncode != 0
    assert "was not approved; nothing was applied" in unattended.stdout + unattended.stderr
    assert sim_cloud.state_file.read_bytes() == before

    approved = run_unattended(sim_cloud, ci_env, "-e", "approval=yes")
    assert approved.returncode == 0, approved.stdout + approved.stderr
    latest = max(sim_cloud.store().list_plans(), key=lambda p: p.created_at)
    assert latest.actions and all(a.status is StepStatus.SUCCEEDED for a in latest.actions)
    assert sim_cloud.state_file.read_bytes() != before
