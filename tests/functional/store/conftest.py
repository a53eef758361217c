"""History-store fixtures, shared with other areas through the ``tests/fixtures_store.py`` plugin."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_PLUGIN = Path(__file__).resolve().parents[2] / "fixtures_store.py"
if "fixtures_store" in sys.modules:
    _fixtures = sys.modules["fixtures_store"]
else:
    _spec = importlib.util.spec_from_file_location("fixtures_store", _PLUGIN)
    assert _spec is not None and _spec.loader is not None
    _fixtures = importlib.util.module_from_spec(_spec)
    sys.modules["fixtures_store"] = _fixtures
    _spec.loader.exec_module(_fixtures)

history_store_url = _fixtures.history_store_url
history_store = _fixtures.history_store
