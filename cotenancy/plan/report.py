"""Plans for people and for files: a text table with the reasons, and plain JSON."""

from __future__ import annotations

import math
from typing import Any

from cotenancy.model import Action, ActionKind, ActionPlan
from cotenancy.text import escape_controls


def _plain(value: Any) -> Any:
    """JSON-safe scalars (numpy numbers become floats, NaN becomes null)."""
    if isinstance(value, str | bool) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) else number


def action_to_dict(action: Action) -> dict[str, Any]:
    out: dict[str, Any] = {
        "index": action.index,
        "kind": action.kind.value,
        "vm_id": action.vm_id,
        "depends_on": list(action.depends_on),
        "reason": action.reason,
        "expected_benefit": _plain(action.expected_benefit),
        "status": action.status.value,
    }
    if action.kind is ActionKind.LIVE_MIGRATE:
        out["source_host_id"] = action.source_host_id
        out["target_host_id"] = action.target_host_id
    if action.size is not None:
        out["size"] = action.size.as_dict()
    if action.allocation is not None:
        out["allocation"] = {
            "reservation": action.allocation.reservation.as_dict(),
            "limit": action.allocation.limit.as_dict() if action.allocation.limit is not None else None,
            "shares": action.allocation.shares,
        }
    if action.host_id is not None:
        out["host_id"] = action.host_id
        out["maintenance"] = action.maintenance
    if action.message:
        out["message"] = action.message
    return out


def plan_to_dict(plan: ActionPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "strategy": plan.strategy,
        "created_at": plan.created_at,
        "stats": {k: _plain(v) for k, v in plan.stats.items()},
        "actions": [action_to_dict(a) for a in plan.actions],
    }


def _change(action: Action) -> str:
    if action.kind is ActionKind.LIVE_MIGRATE:
        return f"{action.source_host_id} -> {action.target_host_id}"
    if action.kind is ActionKind.RESIZE and action.size is not None:
        return "size " + _nonzero(action.size.as_dict())
    if action.kind is ActionKind.SET_ALLOCATION and action.allocation is not None:
        return "reserve " + _nonzero(action.allocation.reservation.as_dict())
    if action.kind is ActionKind.SET_MAINTENANCE:
        return f"{action.host_id} maintenance={'on' if action.maintenance else 'off'}"
    return ""


def _nonzero(values: dict[str, float]) -> str:
    shown = [f"{k}={v:.0f}" for k, v in values.items() if v]
    return ",".join(shown) or "0"


def format_plan(plan: ActionPlan) -> str:
    """A table of the steps (order, kind, VM, change, dependencies, benefit, reason) and the
    solver facts, so an operator can judge every step before it runs.

    VM and host ids and the reasons naming them come from the cloud: their control characters are
    shown as escapes, so a name cannot forge a row or drive the operator's terminal."""
    rows = [("#", "step", "vm", "change", "after", "benefit", "reason")]
    for a in plan.actions:
        cells = (
            str(a.index),
            a.kind.value,
            a.vm_id or "",
            _change(a),
            ",".join(map(str, a.depends_on)) or "-",
            f"{a.expected_benefit:.1f}",
            a.reason,
        )
        rows.append(tuple(escape_controls(cell) for cell in cells))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    ]
    lines.insert(1, "-" * min(160, len(lines[0])))
    facts = ", ".join(f"{k}={_fmt(v)}" for k, v in plan.stats.items() if k != "unsatisfied")
    summary = (
        f"plan {plan.id} by {plan.strategy}: {len(plan.actions)} steps, {len(plan.migrations)} migrations"
    )
    # what operators asked for and the plan cannot give gets its own line, not a solver fact
    left = [f"not satisfied: {plan.stats['unsatisfied']}"] if plan.stats.get("unsatisfied") else []
    solver = escape_controls(f"solver: {facts}" if facts else "solver: -")
    return "\n".join([escape_controls(summary), *lines, *map(escape_controls, left), solver])


def _fmt(value: Any) -> str:
    plain = _plain(value)
    if isinstance(plain, float):
        return f"{plain:.4g}"
    return str(plain)
