"""VMs named by a tenant to attack whoever reads cotenancy's output: the simulated cloud names its
VMs after the trace files, so these names come from the cloud as a real one's would.

A newline followed by text made to look like a log line or a plan row, a terminal escape that
clears the screen, a line separator, shell and PowerShell syntax and HTML reach the plan table
``cotenancy plan`` prints, the log, the error line and the HTML report of ``cotenancy simulate``
as text: each control character shown as its escape (``\\n``, ``\\x1b``, ``\\u2028``) on the line it
belongs to, HTML escaped, and nothing run.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cotenancy.cli.main import main
from cotenancy.text import CONTROL_CHARACTERS

FORGED_LOG = "2026-12-07 23:59:59,000 WARNING cotenancy: FORGED"
#: hostile names a file system holds (no ``/``, no NUL); the first three carry control characters
HOSTILE = [
    f"web\n{FORGED_LOG}",
    "db\x1b[2Jcleared",
    "sep\u2028FORGED row",
    "app$(touch pwned)`id`",
    "q'\"; Remove-Item -Recurse C:\\ #",
    "<script>alert(1)<\\script><img src=x onerror=alert(2)>",
]
ESCAPED = ["web\\n" + FORGED_LOG, "db\\x1b[2Jcleared", "sep\\u2028FORGED row"]


@pytest.fixture
def hostile_trace(tmp_path: Path) -> Path:
    """A PlanetLab-format day: the hostile VMs idle, then run hot together (a planned-for
    reservation each, an anomaly naming them); a dozen plain VMs idle."""
    trace = tmp_path / "trace"
    trace.mkdir()
    for index in range(18):
        name = HOSTILE[index] if index < len(HOSTILE) else f"vm-{index:02d}"
        values = [10] * 20 + [95] * 268 if index < len(HOSTILE) else [10] * 288
        (trace / name).write_text("\n".join(map(str, values)) + "\n")
    return trace


def _lines_without_controls(text: str) -> list[str]:
    lines = text.split("\n")
    assert not [line for line in lines if CONTROL_CHARACTERS.search(line.replace("\r", ""))], text
    return lines


def test_the_plan_table_shows_hostile_vm_names_escaped_one_row_per_step(
    hostile_trace: Path, tmp_path, capsys
):
    store = f"sqlite:///{tmp_path / 'history.sqlite'}"
    code = main(
        [
            "--set", f"simulated.trace={hostile_trace}",
            "--set", "strategy_predictive.risk_model=",
            "plan", "--driver", "simulated", "--dry-run", "--warmup", "6", "--store", store,
        ]
    )  # fmt: skip

    assert code == 0
    lines = _lines_without_controls(capsys.readouterr().out.rstrip("\n"))
    steps = int(lines[0].split(": ")[1].split()[0])
    rows = lines[3 : 3 + steps]
    assert steps and [row.split()[0] for row in rows] == [str(i) for i in range(steps)]
    assert len(lines) == 3 + steps + 1 and lines[-1].startswith("solver: ")
    shown = "\n".join(rows)
    assert any(name in shown for name in ESCAPED), shown
    assert not [line for line in lines if line.startswith(("FORGED", FORGED_LOG))]


def test_a_hostile_vm_name_forges_no_log_line(hostile_trace: Path, tmp_path: Path):
    """An anomaly's WARNING names the VMs; a name's newline must not start a line of its own."""
    result = subprocess.run(
        [
            sys.executable, "-m", "cotenancy.cli.main",
            "--set", f"simulated.trace={hostile_trace}",
            "--set", "strategy_predictive.risk_model=",
            "run", "--driver", "simulated", "--rounds", "30", "--store", f"sqlite:///{tmp_path / 'h.sqlite'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    lines = _lines_without_controls(result.stderr)
    anomalies = [line for line in lines if " WARNING cotenancy.engine.loop: anomaly on " in line]
    assert anomalies and all(name in anomalies[0] for name in ESCAPED[:2]), result.stderr
    assert not [line for line in lines if line.split("\r")[-1].startswith(FORGED_LOG)]


def test_a_malformed_trace_file_with_a_hostile_name_is_one_error_line(hostile_trace: Path, capsys):
    (hostile_trace / HOSTILE[0]).write_text("not a number\n")

    code = main(["--set", f"simulated.trace={hostile_trace}", "plan", "--driver", "simulated", "--dry-run"])

    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("cotenancy: error: ") and ESCAPED[0] in err
    _lines_without_controls(err)


def test_the_html_report_shows_hostile_vm_names_as_text(hostile_trace: Path, tmp_path: Path):
    report = tmp_path / "report.html"

    code = main(
        ["simulate", "--trace", str(hostile_trace), "--days", "1", "--report", str(report), "--no-progress"]
    )

    assert code == 0
    page = report.read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;\\script&gt;&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<script" not in page and "<img src=x" not in page
