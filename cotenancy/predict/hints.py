"""A calendar of scheduled events ("hints") that change demand: a known batch job, a sale.

Hints come from configuration (``[predict] hint`` lines and/or a YAML ``hints_file``); the API will
feed the same structure later. A hint multiplies the forecast of matching VMs and resource while it
lasts, because the history cannot know about a one-off event that has not happened yet.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from cotenancy.exceptions import ConfigurationError
from cotenancy.model import Resource


@dataclass(frozen=True, slots=True)
class Hint:
    """Between ``start`` and ``end`` (POSIX s), VMs whose id or name matches ``vms`` (a glob) use
    ``factor`` times their forecast ``resource`` (``"*"`` = every resource)."""

    start: float
    end: float
    vms: str = "*"
    resource: str = "*"
    factor: float = 1.0
    name: str = ""


def _parse_time(value: object, where: str, key: str) -> float:
    """POSIX seconds of ``value``; a time that cannot be compared (NaN, infinite) or is not a time
    (``true``, a list) is refused, since the hint would otherwise silently never or always apply."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{where}: {key} must be a time, not the boolean {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, dt.datetime):
        stamp = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        seconds = stamp.timestamp()
    elif isinstance(value, str | dt.date):
        try:
            stamp = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise ConfigurationError(f"{where}: cannot read {key} {value!r} (use ISO 8601)") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        seconds = stamp.timestamp()
    else:
        raise ConfigurationError(f"{where}: cannot read {key} {value!r} (use ISO 8601)")
    if not math.isfinite(seconds):
        raise ConfigurationError(f"{where}: {key} must be a finite time, not {value!r}")
    return seconds


def _parse_factor(value: object, where: str) -> float:
    """A finite number >= 0; ``true`` is refused rather than read as 1."""
    if isinstance(value, bool):
        raise ConfigurationError(f"{where}: factor must be a number, not the boolean {value!r}")
    try:
        factor = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(f"{where}: factor must be a number, not {value!r}") from None
    if not math.isfinite(factor) or factor < 0:
        raise ConfigurationError(f"{where}: factor must be a finite number >= 0, not {value!r}")
    return factor


def _hint_from_mapping(item: object, where: str) -> Hint:
    if not isinstance(item, dict):
        raise ConfigurationError(f"{where}: a hint must be a mapping of start, end, ..., not {item!r}")
    unknown = set(item) - {"start", "end", "vms", "resource", "factor", "name"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown hint keys {sorted(map(str, unknown))}")
    if "start" not in item or "end" not in item:
        raise ConfigurationError(f"{where}: a hint needs start and end")
    resource = str(item.get("resource", "*"))
    if resource != "*" and resource not in {r.value for r in Resource}:
        raise ConfigurationError(f"{where}: unknown resource {resource!r}")
    factor = _parse_factor(item.get("factor", 1.0), where)
    start, end = _parse_time(item["start"], where, "start"), _parse_time(item["end"], where, "end")
    if end <= start:
        raise ConfigurationError(f"{where}: end must be after start")
    return Hint(start, end, str(item.get("vms", "*")), resource, factor, str(item.get("name", "")))


def parse_hint_line(line: str) -> Hint:
    """``start=...,end=...,vms=GLOB,resource=cpu,factor=1.5``; a key given twice is refused (which
    one was meant is unknown)."""
    item: dict[str, str] = {}
    for part in line.split(","):
        key, sep, value = part.partition("=")
        if not sep:
            raise ConfigurationError(f"hint {line!r}: expected key=value pairs separated by commas")
        if key.strip() in item:
            raise ConfigurationError(f"hint {line!r}: {key.strip()} is given twice")
        item[key.strip()] = value.strip()
    return _hint_from_mapping(item, f"hint {line!r}")


def load_hints_file(path: str | Path) -> list[Hint]:
    source = Path(path).expanduser()
    try:
        document = yaml.safe_load(source.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigurationError(f"{source}: cannot read hints ({exc})") from exc
    if document is None:
        return []
    if isinstance(document, dict):
        document = document.get("hints", [])
    if not isinstance(document, list):
        raise ConfigurationError(f"{source}: expected a list of hints")
    return [_hint_from_mapping(item, f"{source} item {i}") for i, item in enumerate(document)]


def hints_from_conf(conf: object | None) -> list[Hint]:
    if conf is None:
        return []
    group = conf.predict  # type: ignore[attr-defined]
    hints = [parse_hint_line(line) for line in group.hint]
    if group.hints_file:
        hints.extend(load_hints_file(group.hints_file))
    return hints


def apply_hints(
    values: dict[str, np.ndarray],
    hints: Iterable[Hint],
    vm_keys: Sequence[Sequence[str]],
    target_times: np.ndarray,
) -> list[str]:
    """Scale ``values[resource][vm, horizon, :]`` in place; returns the names of hints applied,
    each once (an API hint on two resources is two hints of one name).

    ``vm_keys[i]`` are the strings a glob may match for VM ``i`` (id and name).
    """
    applied = []
    for hint in hints:
        active = (target_times >= hint.start) & (target_times < hint.end)
        if not active.any():
            continue
        rows = np.array(
            [any(fnmatch.fnmatchcase(key, hint.vms) for key in keys) for keys in vm_keys], dtype=bool
        )
        if not rows.any():
            continue
        for resource, array in values.items():
            if hint.resource in ("*", resource):
                array[np.ix_(rows, active)] *= hint.factor
        applied.append(hint.name or f"{hint.vms}:{hint.resource}x{hint.factor}")
    return list(dict.fromkeys(applied))
