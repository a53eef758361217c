"""``cotenancy api`` serves until told to stop, reading [api] from the configuration file."""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
from pathlib import Path

from api_helpers import seed

from cotenancy.store import HistoryStore

TOKEN = "cli-token-0123456789"


def cotenancy(*args: str) -> list[str]:
    return [sys.executable, "-m", "cotenancy.cli.main", *args]


def test_the_command_serves_the_store_until_sigterm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'history.sqlite'}"
    with HistoryStore(url) as store:
        seed(store)
    config = tmp_path / "cotenancy.conf"
    config.write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n\n[api]\nauth_token = {TOKEN}\n")
    process = subprocess.Popen(
        cotenancy("--config-file", str(config), "api", "--listen", "127.0.0.1:0", "--store", url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+)/v1", line)
        assert match, (line, process.stderr.read() if process.poll() is not None else "")
        connection = http.client.HTTPConnection("127.0.0.1", int(match.group(1)), timeout=30)
        connection.request("GET", "/v1/hosts")
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 401
        connection.request("GET", "/v1/hosts", headers={"Authorization": f"Bearer {TOKEN}"})
        answer = connection.getresponse()
        assert answer.status == 200
        assert [h["id"] for h in json.loads(answer.read())["hosts"]] == ["h1", "h2"]
        connection.close()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
        assert TOKEN not in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_non_loopback_address_without_token_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "none.conf").write_text(f"[DEFAULT]\nstate_path = {tmp_path / 'state'}\n")
    done = subprocess.run(
        cotenancy(
            "--config-file",
            str(tmp_path / "none.conf"),
            "api",
            "--listen",
            "0.0.0.0:8780",
            "--store",
            f"sqlite:///{tmp_path / 'h.sqlite'}",
        ),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "auth_token" in done.stderr and "Traceback" not in done.stderr
