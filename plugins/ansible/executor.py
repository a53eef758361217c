"""Carry out plan steps by running reviewed Ansible playbooks through ansible-runner.

Each step runs ``playbooks/<cloud>/<step kind>.yml`` (``cloud`` is the driver's name) with the step
as extra variables. Those are written to a file only the service user can read, never put on the
command line (which every local user can read), and every string that comes from the cloud or the
plan is marked unsafe, so a VM named ``{{ lookup('pipe', ...) }}`` reaches the playbook as text and
is never templated. Runner events are streamed into the history store as the step's status and
message, so an operator sees which task is running and, on failure, Ansible's own message.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from oslo_config import cfg

from cotenancy.engine.executor import StepwiseExecutor, check_action
from cotenancy.exceptions import ActionFailed, ConfigurationError, TimedOut, Unsupported
from cotenancy.model import VM, Action, ActionPlan, StepStatus

#: vSphere's "normal" share counts, which the project's weight 1000 stands for
CPU_SHARES_PER_VCPU = 1000
MEMORY_SHARES_PER_MB = 10

if TYPE_CHECKING:
    from cotenancy.drivers.base import Driver

PACKAGE_DIR = Path(__file__).resolve().parent
#: the step playbooks and the collection, as package data of an installed cotenancy (setup.cfg)
SHIPPED_PLAYBOOKS = PACKAGE_DIR / "playbooks"
COLLECTIONS = PACKAGE_DIR / "collection"
#: where the playbooks live in a source checkout (an editable install maps no package onto them)
CHECKOUT_PLAYBOOKS = PACKAGE_DIR.parents[1] / "playbooks"


def default_playbook_dir() -> Path:
    """The installed package's playbooks; in a source checkout, the repository's ``playbooks/``."""
    return SHIPPED_PLAYBOOKS if SHIPPED_PLAYBOOKS.is_dir() else CHECKOUT_PLAYBOOKS


class AnsibleExecutor(StepwiseExecutor):
    """Runs one playbook per step; the failure policy is the same as the driver executor's."""

    name = "ansible"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            cfg.StrOpt(
                "playbook_dir",
                default=str(default_playbook_dir()),
                sample_default="<cotenancy source>/playbooks",
                help="Folder with one sub-folder of step playbooks per cloud driver.",
            ),
            cfg.StrOpt(
                "extravars_file",
                help="YAML file of extra variables for every run (connection details such as "
                "vcenter_hostname). Keep it readable by the service user only.",
            ),
            cfg.ListOpt(
                "secret_vars",
                default=["vcenter_password", "password", "hyperv_password"],
                help="Extra variables that are secrets: passed to Ansible but never stored or logged.",
            ),
            cfg.StrOpt(
                "ca_file",
                help="CA bundle that Ansible modules verify TLS against (exported as SSL_CERT_FILE and "
                "REQUESTS_CA_BUNDLE), for a vCenter or cloud with a private CA. Unset: the system's.",
            ),
            cfg.IntOpt("verbosity", default=0, min=0, max=4, help="ansible-playbook verbosity."),
        ]

    def playbook_for(self, driver: Driver, action: Action) -> Path:
        folder = Path(os.path.expanduser(self.conf.ansible.playbook_dir)) / driver.name
        playbook = folder / f"{action.kind.value}.yml"
        if not playbook.is_file():
            raise Unsupported(f"no playbook for {action.kind.value} on {driver.name} ({playbook})")
        return playbook

    def execute(self, plan: ActionPlan, driver: Driver) -> ActionPlan:
        """Refuses a configuration no step could run with before any step is marked running."""
        if driver.name == "simulated" and not getattr(driver, "persistent", False):
            raise ConfigurationError(
                "the ansible executor runs each step in other processes: the simulated driver needs "
                "[simulated] state_file (cotenancy.drivers.simulated.persistent) to share its cloud"
            )
        self.file_vars()
        return super().execute(plan, driver)

    def file_vars(self) -> dict[str, Any]:
        """The variables of ``[ansible] extravars_file`` (a mapping), read afresh for every step."""
        if not self.conf.ansible.extravars_file:
            return {}
        path = Path(os.path.expanduser(self.conf.ansible.extravars_file))
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigurationError(f"[ansible] extravars_file {path}: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigurationError(f"[ansible] extravars_file {path}: expected a mapping of variables")
        return loaded

    def step_vars(self, driver: Driver, action: Action) -> dict[str, Any]:
        """What the playbook needs to know of the step, from the plan and the cloud's inventory."""
        inventory = driver.get_inventory()
        vm = inventory.vms.get(action.vm_id or "")
        target = inventory.hosts.get(action.target_host_id or action.host_id or "")
        return dict(
            step_kind=action.kind.value,
            vm_id=action.vm_id,
            vm_name=vm.name if vm else None,
            vm_instance_uuid=(vm.attributes.get("instance_uuid") or None) if vm else None,
            target_host_id=action.target_host_id or action.host_id,
            target_host_name=target.name if target else None,
            size=action.size.as_dict() if action.size else None,
            vcpus=_vcpus(action.size.cpu, vm) if action.size and vm else None,
            allocation=_allocation_vars(action, vm),
            maintenance=action.maintenance,
        )

    def run_step(self, plan: ActionPlan, action: Action, driver: Driver, timeout: float) -> None:
        import ansible_runner

        check_action(action)
        playbook = self.playbook_for(driver, action)
        trusted = self.file_vars()
        step = self.step_vars(driver, action)
        variables = trusted | step
        secrets = [str(variables[n]) for n in self.conf.ansible.secret_vars if variables.get(n)]
        failures: list[str] = []

        def on_event(event: dict[str, Any]) -> bool:
            data = event.get("event_data", {})
            kind = event.get("event", "")
            if kind == "playbook_on_task_start":
                self.record(plan, action, StepStatus.RUNNING, f"task: {data.get('task', '')}")
            elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get("ignore_errors"):
                result = data.get("res", {})
                message = result.get("msg") or result.get("stderr") or json.dumps(result)[:500]
                prefix = "unreachable" if kind == "runner_on_unreachable" else "failed"
                failures.append(f"{prefix}: {data.get('task', '')}: {_redact(str(message), secrets)}")
                self.record(plan, action, StepStatus.RUNNING, failures[-1])
            return False  # do not keep event files on disk: they may contain variables

        private = Path(tempfile.mkdtemp(prefix="cotenancy-ansible-"))
        try:
            os.chmod(private, 0o700)
            _write_extravars(private, playbook_vars(trusted, step))
            result = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(playbook.parent),
                playbook=playbook.name,
                envvars=_ansible_env(private, self.conf.ansible.ca_file),
                event_handler=on_event,
                quiet=True,
                timeout=int(timeout),
                verbosity=self.conf.ansible.verbosity,
                suppress_env_files=True,
                # without a callback ansible-runner replaces the process's SIGINT and SIGTERM
                # handlers for good, and Ctrl-C or systemctl stop would no longer stop cotenancy
                cancel_callback=_never_cancelled,
            )
            tail = "" if failures else _output_tail(result)
        finally:
            shutil.rmtree(private, ignore_errors=True)
        if result.status == "timeout":
            raise TimedOut(f"playbook {playbook.name} did not finish in {int(timeout)} s")
        if result.status != "successful" or result.rc != 0:
            detail = "; ".join(failures) or (
                f"ansible-playbook exited {result.rc} ({result.status}): {_redact(tail, secrets)}"
            )
            raise ActionFailed(detail)


def _never_cancelled() -> bool:
    """A playbook is not cancelled from inside: the step timeout bounds it, and a stop request
    waits for the round (``cotenancy run``'s SIGTERM) or interrupts it (Ctrl-C)."""
    return False


def playbook_vars(trusted: dict[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    """What ansible-playbook receives: the operator's ``extravars_file`` as written, and the
    step's variables (these win), never templated."""
    return trusted | _untrusted(step)


def _untrusted(value: Any) -> Any:
    """Every string wrapped so that Ansible treats it as unsafe: never templated (ansible-core
    reads ``{"__ansible_unsafe": ...}`` in JSON extra variables as it reads ``!unsafe`` in YAML)."""
    if isinstance(value, str):
        return {"__ansible_unsafe": value}
    if isinstance(value, dict):
        return {key: _untrusted(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_untrusted(item) for item in value]
    return value


def _write_extravars(private: Path, variables: dict[str, Any]) -> None:
    """ansible-runner passes ``env/extravars`` to ansible-playbook as ``-e @file``: the values,
    secrets among them, stay off the command line. The file is the service user's alone."""
    env = private / "env"
    env.mkdir(mode=0o700)
    fd = os.open(env / "extravars", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as stream:
        json.dump(variables, stream)


def _output_tail(result: Any, lines: int = 5) -> str:
    """The last lines of ansible-playbook's output, for failures that raise no task event (a
    playbook that does not parse, an undefined variable in a play)."""
    try:
        with result.stdout as stream:  # ansible-runner opens the artifact file anew on each access
            text = stream.read()
    except (OSError, AttributeError):
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " ".join(kept[-lines:])[-1000:]


def _ansible_env(private: Path, ca_file: str | None = None) -> dict[str, str]:
    """Keep Ansible's state out of the home directory and let it find our collection."""
    bin_dir = str(Path(sys.executable).parent)
    tls = {}
    if ca_file:
        path = str(Path(os.path.expanduser(ca_file)).resolve())
        tls = {"SSL_CERT_FILE": path, "REQUESTS_CA_BUNDLE": path}
    return tls | {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_HOME": str(private / "home"),
        "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
        "ANSIBLE_REMOTE_TEMP": str(private / "tmp"),
        "ANSIBLE_COLLECTIONS_PATH": f"{COLLECTIONS}{os.pathsep}{_bundled_collections()}",
        "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
    }


def _bundled_collections() -> str:
    """Where the ``ansible`` package keeps community.vmware and friends."""
    try:
        import ansible_collections

        return os.pathsep.join(str(Path(p).parent) for p in ansible_collections.__path__)
    except ImportError:
        return ""


def _allocation_vars(action: Action, vm: VM | None) -> dict[str, Any] | None:
    """The allocation in project units plus the integers vSphere-style modules take.

    ``shares`` is the project's weight (1000 = normal); ``cpu_shares``/``mem_shares`` are vSphere's
    custom share counts for that weight (normal is 1000 per vCPU and 10 per MiB), and limits are
    -1 for "unlimited", as vCenter spells it.
    """
    if action.allocation is None:
        return None
    alloc = action.allocation
    vcpus = max(vm.vcpus, 1) if vm else 1
    memory_mb = vm.size.memory if vm else 0.0
    limit = alloc.limit
    return {
        "shares": alloc.shares,
        "reservation": alloc.reservation.as_dict(),
        "limit": limit.as_dict() if limit else None,
        "cpu_shares": max(1, round(CPU_SHARES_PER_VCPU * vcpus * alloc.shares / 1000)),
        "mem_shares": max(1, round(MEMORY_SHARES_PER_MB * memory_mb * alloc.shares / 1000)),
        "cpu_reservation": int(alloc.reservation.cpu),
        "mem_reservation": int(alloc.reservation.memory),
        "cpu_limit": _vcenter_limit(limit.cpu if limit else None),
        "mem_limit": _vcenter_limit(limit.memory if limit else None),
    }


def _vcenter_limit(value: float | None) -> int:
    return int(value) if value is not None and math.isfinite(value) and value > 0 else -1


def _vcpus(cpu_mhz: float, vm: VM) -> int:
    """vCPUs for a size in MHz at the VM's current MHz per vCPU (rounded up, as the vsphere driver
    does, so that the VM gets at least the planned capacity)."""
    per_vcpu = vm.size.cpu / max(vm.vcpus, 1) if vm.size.cpu else 0.0
    if per_vcpu <= 0:
        return max(1, vm.vcpus)
    return max(1, math.ceil(cpu_mhz / per_vcpu - 1e-6))


def _redact(message: str, secrets: list[str]) -> str:
    """Ansible echoes module arguments in some failures: never let a secret value through."""
    for value in secrets:
        message = message.replace(value, "********")
    return message
