"""The ``cotenancy`` command against the vCenter simulator as an operator runs it.

Stopped with SIGTERM (``systemctl stop``), ``cotenancy run`` ends as on Ctrl-C, closing its vCenter
session and its history store, so that a step it was running is recorded (see the executor's
interrupt test) and vCenter does not keep the session until it expires. A CA bundle that cannot be
used is a configuration error naming the option, not a connection failure retried every round."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from vcsim_admin import vsphere_overrides, wait_for

from cotenancy.cli.main import main
from cotenancy.store import HistoryStore

REPO = Path(__file__).resolve().parents[3]


def session_keys(admin) -> set[str]:
    return {s.key for s in admin.sessionManager.sessionList or []}


def test_run_stopped_with_sigterm_between_rounds_stops_at_once_logs_out_and_reports(vcsim, admin, tmp_path):
    store_url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    settings = [f"vsphere.{name}={value}" for name, value in vsphere_overrides(vcsim).items()]
    settings += ["DEFAULT.interval=3600", f"DEFAULT.state_path={tmp_path}"]
    command = [sys.executable, "-m", "cotenancy.cli.main", "--config-file", os.devnull]
    for setting in settings:
        command += ["--set", setting]
    command += ["run", "--driver", "vsphere", "--strategy", "noop", "--rounds", "2", "--store", store_url]
    before = session_keys(admin)
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        store = HistoryStore(store_url)
        # the first round is stored; the loop now waits an hour for the second
        wait_for(lambda: bool(store.list_plans(limit=1)), "the first round was stored", timeout=60.0)
        store.close()
        ours = session_keys(admin) - before
        assert ours, "the command's vCenter session is listed while it runs"

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == 0, err.decode()
    assert "1 rounds, 0 steps planned, 0 failed" in out.decode()
    assert "Traceback" not in err.decode()
    assert not ours & session_keys(admin), "the session was logged out"


@pytest.mark.parametrize("content", [None, "not a certificate\n"], ids=["missing", "not-pem"])
def test_a_ca_file_that_cannot_be_used_is_a_configuration_error_naming_it(vcsim, tmp_path, capsys, content):
    ca_file = tmp_path / "vcenter-ca.pem"
    if content is not None:
        ca_file.write_text(content)
    overrides = vsphere_overrides(vcsim) | {"ca_file": str(ca_file)}
    settings = [f"DEFAULT.state_path={tmp_path}", "DEFAULT.interval=1"]
    settings += [f"vsphere.{name}={value}" for name, value in overrides.items()]
    argv = ["--config-file", os.devnull]
    for setting in settings:
        argv += ["--set", setting]

    status = main([*argv, "run", "--driver", "vsphere", "--dry-run", "--rounds", "3"])

    err = capsys.readouterr().err
    assert status == 2, err
    assert "[vsphere] ca_file" in err and str(ca_file) in err
    assert "unreachable" not in err
