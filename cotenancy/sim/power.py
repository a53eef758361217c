"""Host power models: SPECpower tables at 0, 10, ..., 100 % CPU, linearly interpolated.

The two HP ProLiant tables are the ones CloudSim's power examples use (``PowerModelSpecPowerHp*``).
"""

from __future__ import annotations

import numpy as np

#: watts at 0, 10, ..., 100 % CPU load
POWER_TABLES: dict[str, tuple[float, ...]] = {
    "hp-proliant-ml110-g4": (86, 89.4, 92.6, 96, 99.5, 102, 106, 108, 112, 114, 117),
    "hp-proliant-ml110-g5": (93.7, 97, 101, 105, 110, 116, 121, 125, 129, 133, 135),
}

#: a generic modern server (watts at 0..100 % in 10 % steps) for the default setup
POWER_TABLES["generic-2u"] = (110, 132, 148, 162, 176, 190, 204, 220, 238, 258, 280)


def power_table(model: str) -> np.ndarray:
    try:
        return np.asarray(POWER_TABLES[model], dtype=float)
    except KeyError:
        raise ValueError(f"unknown power model {model!r}; known: {', '.join(sorted(POWER_TABLES))}") from None


def power_at(tables: np.ndarray, utilisation: np.ndarray) -> np.ndarray:
    """Watts of each host (row of ``tables``, shape ``(n, 11)``) at ``utilisation`` (0..1).

    Same arithmetic as CloudSim's ``PowerModelSpecPower.getPower``: the table value at a multiple
    of 10 %, linear interpolation between the two neighbours otherwise.
    """
    u = np.minimum(np.maximum(np.asarray(utilisation, dtype=float), 0.0), 1.0)
    low = np.minimum((u * 10.0).astype(np.int64), 9)
    if tables.ndim == 2:
        flat = tables.ravel()
        base = np.arange(tables.shape[0]) * tables.shape[1] + low
        p1, p2 = flat[base], flat[base + 1]
    else:
        p1, p2 = tables[low], tables[low + 1]
    return p1 + (p2 - p1) / 10.0 * (u - low / 10.0) * 100.0
