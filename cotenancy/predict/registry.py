"""Model files: one self-describing JSON file per model, written atomically, reloaded on change.

A file holds the metadata (feature schema version, training window, validation metrics, library
versions), the XGBoost boosters (UBJSON, base64) and small numpy arrays. Writing goes to a temporary
file then ``os.replace``, so a server polling the file never reads half a model; serving compares the
file's ``(mtime, size)`` on each use and reloads when a trainer has replaced it.
"""

from __future__ import annotations

import base64
import json
import os
import platform
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import xgboost as xgb
from oslo_config import cfg

from cotenancy import __version__
from cotenancy.exceptions import SchemaMismatch

FORMAT = "cotenancy-model/1"


def model_dir(conf: cfg.ConfigOpts | None) -> Path:
    """``[predict] model_dir`` or ``<state_path>/models``."""
    if conf is not None:
        configured = conf.predict.model_dir
        if configured:
            return Path(configured).expanduser()
        return Path(conf.state_path).expanduser() / "models"
    return Path("~/.local/share/cotenancy/models").expanduser()


def library_versions() -> dict[str, str]:
    import scipy

    return {
        "python": platform.python_version(),
        "cotenancy": __version__,
        "xgboost": xgb.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }


@dataclass(slots=True)
class ModelBundle:
    """What a model file holds, in memory."""

    kind: str
    schema_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    boosters: dict[str, xgb.Booster] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


def save_bundle(bundle: ModelBundle, path: Path) -> Path:
    """Write ``bundle`` to ``path`` atomically (readers see the old or the new file, never a mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "format": FORMAT,
        "kind": bundle.kind,
        "schema_version": bundle.schema_version,
        "saved_at": time.time(),
        "libraries": library_versions(),
        "metadata": bundle.metadata,
        "boosters": {
            name: base64.b64encode(bytes(b.save_raw(raw_format="ubj"))).decode("ascii")
            for name, b in bundle.boosters.items()
        },
        "arrays": {
            name: {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}
            for name, a in bundle.arrays.items()
        },
    }
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_bundle(path: Path, kind: str, schema_version: str, nthread: int = 2) -> ModelBundle:
    """Read a model file; :class:`SchemaMismatch` when it was built for other features."""
    with path.open(encoding="utf-8") as handle:
        try:
            document = json.load(handle)
        except json.JSONDecodeError as exc:
            raise SchemaMismatch(f"{path}: not a cotenancy model file ({exc})") from exc
    if document.get("format") != FORMAT:
        raise SchemaMismatch(f"{path}: unknown model file format {document.get('format')!r}")
    if document.get("kind") != kind:
        raise SchemaMismatch(f"{path}: holds a {document.get('kind')!r} model, expected {kind!r}")
    if document.get("schema_version") != schema_version:
        raise SchemaMismatch(
            f"{path}: model was trained for feature schema {document.get('schema_version')!r}, "
            f"this code serves schema {schema_version!r}; retrain with 'cotenancy train'"
        )
    boosters = {}
    for name, encoded in document["boosters"].items():
        booster = xgb.Booster(params={"nthread": nthread})
        booster.load_model(bytearray(base64.b64decode(encoded)))
        boosters[name] = booster
    arrays = {
        name: np.asarray(spec["data"], dtype=spec["dtype"]).reshape(spec["shape"])
        for name, spec in document["arrays"].items()
    }
    metadata = dict(document["metadata"])
    metadata.setdefault("libraries", document.get("libraries", {}))
    metadata.setdefault("saved_at", document.get("saved_at"))
    return ModelBundle(document["kind"], document["schema_version"], metadata, boosters, arrays)


T = TypeVar("T")


class ReloadingModel(Generic[T]):
    """A model object built from a file, rebuilt whenever the file changes (no restart needed).

    ``get()`` returns ``None`` while there is no file (the caller then uses its cold-start fallback).
    A schema mismatch is raised, not hidden: serving an incompatible model would be silently wrong.
    """

    def __init__(self, path: Path, build: Callable[[Path], T], min_check_seconds: float = 1.0) -> None:
        self.path = path
        self._build = build
        self._min_check = min_check_seconds
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None
        self._checked_at = float("-inf")

    def get(self) -> T | None:
        now = time.monotonic()
        if now - self._checked_at < self._min_check:
            return self._value
        with self._lock:
            self._checked_at = now
            try:
                stat = self.path.stat()
            except FileNotFoundError:
                self._stamp, self._value = None, None
                return None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                self._value = self._build(self.path)
                self._stamp = stamp
            return self._value

    def invalidate(self) -> None:
        """Check the file again on the next ``get()``."""
        self._checked_at = float("-inf")
