"""A self-contained HTML report of a simulation: plots as embedded PNGs, no network needed."""

from __future__ import annotations

import base64
import html
import io
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cotenancy.text import first_named

if TYPE_CHECKING:
    from cotenancy.sim.runner import SimulationResult

#: anomalies listed in the report (the JSON summary keeps them all)
ANOMALIES_SHOWN = 50
#: VMs named in a row of that list (a workload's surge names them all in the JSON summary)
VMS_SHOWN = 5

PLOTS = (
    ("active_hosts", "Active hosts", "hosts"),
    ("mean_host_utilisation", "Mean CPU utilisation of active hosts", "fraction"),
    ("migrations", "Migrations started per step", "migrations"),
    ("degraded_vms", "VMs degraded (< 90 % of their request delivered)", "VMs"),
    ("overloaded_hosts", "Hosts with allocated < requested CPU", "hosts"),
    ("power_watts", "Power of active hosts", "W"),
)


def _png(series: dict[str, list[float]], key: str, title: str, unit: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = np.asarray(series["time"], dtype=float)
    hours = (times - times[0]) / 3600.0 if times.size else times
    fig, ax = plt.subplots(figsize=(8, 2.6), dpi=90)
    ax.plot(hours, series[key], linewidth=1.0)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("hours since start")
    ax.set_ylabel(unit)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def render_html(result: SimulationResult) -> str:
    from cotenancy.sim.runner import UNITS, summary_rows

    rows = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
        for name, value in summary_rows(result)
    )
    units = "".join(f"<li><code>{html.escape(k)}</code>: {html.escape(v)}</li>" for k, v in UNITS.items())
    images = "".join(
        f'<figure><img alt="{html.escape(title)}" '
        f'src="data:image/png;base64,{_png(result.series, key, title, unit)}">'
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for key, title, unit in PLOTS
        if key in result.series
    )
    anomalies = _anomaly_section(result)
    title = f"cotenancy simulation: {result.strategy} on {result.setup}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}table{{border-collapse:collapse}}
th,td{{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:left}}figure{{margin:1em 0}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>Workload <code>{html.escape(result.workload)}</code>: {result.n_vms} VMs on {result.n_hosts} hosts,
{result.steps} control rounds.</p>
<table>{rows}</table>
<h2>Over time</h2>
{images}
{anomalies}
<h2>Units</h2><ul>{units}</ul>
</body></html>
"""


def _anomaly_section(result: SimulationResult, shown: int = ANOMALIES_SHOWN) -> str:
    """Counts of flagged usage per resource and the first ``shown`` of them, in trace time."""
    flagged = result.extra.get("anomalies", [])
    if not flagged:
        return "<h2>Anomalies</h2><p>No usage far above its forecast was flagged.</p>"
    start = float(result.series["time"][0]) if result.series.get("time") else 0.0
    counts = Counter(str(a["resource"]) for a in flagged)
    summary = ", ".join(f"{html.escape(r)}: {n:,}" for r, n in sorted(counts.items()))
    rows = "".join(
        f"<tr><td>{(float(a['time']) - start) / 3600.0:.2f}</td>"
        f"<td>{html.escape(first_named(a['vms'], VMS_SHOWN))}</td>"
        f"<td>{html.escape(str(a['host']))}</td><td>{html.escape(str(a['message']))}</td></tr>"
        for a in flagged[:shown]
    )
    hidden = len(flagged) - shown
    more = f"<p>... and {hidden:,} more (in the JSON summary).</p>" if hidden > 0 else ""
    return (
        f"<h2>Anomalies</h2><p>{len(flagged):,} anomalies ({summary}): usage far above its forecast on "
        f"{sum(len(a['vms']) for a in flagged):,} VMs' samples; the VMs of a workload that rose "
        "together are one.</p>"
        f"<table><tr><th>hours since start</th><th>VM</th><th>host</th><th>what</th></tr>{rows}</table>{more}"
    )


def write_report(result: SimulationResult, path: str | Path) -> Path:
    target = Path(path)
    target.write_text(render_html(result), encoding="utf-8")
    return target
