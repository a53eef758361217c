"""Model files: one self-describing JSON file per model, written atomically, reloaded on change.

A file holds the metadata (feature schema version, training window, validation metrics, library
versions), the XGBoost boosters (UBJSON, base64) and small numpy arrays. Writing goes to a temporary
file then ``os.replace``, so a server polling the file never reads half a model; serving compares the
file's ``(mtime, size)`` on each use and reloads when a trainer has replaced it.

Reading checks the whole document before using any of it: a file that cannot be served (damaged,
truncated, hand-edited, another format) raises :class:`ModelFileError` naming the file and what is
wrong, never an error of the JSON, base64 or XGBoost libraries. A replaced file that cannot be
served leaves the last good model serving (:class:`ReloadingModel`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import os
import platform
import secrets
import stat
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
from cotenancy.exceptions import CotenancyError, ModelFileError, SchemaMismatch

LOG = logging.getLogger(__name__)

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


#: numpy dtype kinds a model file's arrays may hold (bool, signed, unsigned, float)
ARRAY_KINDS = "biuf"

#: mode of a new model file before the umask: readable by a server running as another user
#: (a model file holds no secrets)
NEW_FILE_MODE = 0o644

_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


def trained_when(metadata: dict[str, Any]) -> str:
    """A model's ``trained_at`` (POSIX seconds) as a UTC time a log reader can read."""
    value = metadata.get("trained_at")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "at an unknown time"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(value))


def _json_type(value: object) -> str:
    return "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(slots=True)
class ModelBundle:
    """What a model file holds, in memory; ``source`` names the file in error messages."""

    kind: str
    schema_version: str
    metadata: dict[str, Any] = field(default_factory=dict)
    boosters: dict[str, xgb.Booster] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = "model file"

    def problem(self, what: str) -> ModelFileError:
        """The error a predictor raises when this bundle's content cannot be served."""
        return ModelFileError(f"{self.source}: {what}")

    def require(
        self, metadata: tuple[str, ...] = (), boosters: tuple[str, ...] = (), arrays: tuple[str, ...] = ()
    ) -> None:
        """Name every required entry the file lacks at once, before any of it is used."""
        missing = (
            [f"metadata {k!r}" for k in metadata if k not in self.metadata]
            + [f"booster {k!r}" for k in boosters if k not in self.boosters]
            + [f"array {k!r}" for k in arrays if k not in self.arrays]
        )
        if missing:
            raise self.problem(f"incomplete model file, missing {', '.join(missing)}")

    def count(self, key: str) -> int:
        """Metadata ``key`` as a positive integer (a number of steps, say)."""
        value = self.metadata.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.problem(f"metadata {key!r} must be a positive integer, not {_short(value)}")
        return value

    def numbers(self, key: str) -> tuple[float, ...]:
        """Metadata ``key`` as a non-empty list of finite numbers."""
        value = self.metadata.get(key)
        if (
            not isinstance(value, list)
            or not value
            or any(
                isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) for v in value
            )
        ):
            raise self.problem(
                f"metadata {key!r} must be a non-empty list of finite numbers, not {_short(value)}"
            )
        return tuple(float(v) for v in value)

    def mapping(self, key: str) -> dict[str, Any]:
        """Metadata ``key`` as a mapping; absent means empty."""
        value = self.metadata.get(key, {})
        if not isinstance(value, dict):
            raise self.problem(f"metadata {key!r} must be a mapping, not a JSON {_json_type(value)}")
        return value

    def array(self, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """Array ``name`` with ``shape`` (``None`` = any length on that axis) and finite values."""
        if name not in self.arrays:
            raise self.problem(f"incomplete model file, missing array {name!r}")
        value = self.arrays[name]
        if value.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(value.shape, shape, strict=True)
        ):
            wanted = "(" + ", ".join("any" if w is None else str(w) for w in shape) + ")"
            raise self.problem(f"array {name!r} has shape {value.shape}, expected {wanted}")
        if not np.isfinite(value).all():
            raise self.problem(f"array {name!r} holds NaN or infinite values")
        return value


def _current_mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return None


def _create_temporary(path: Path, mode: int | None) -> tuple[int, Path]:
    """A new file beside ``path``: with ``mode`` when given, else ``NEW_FILE_MODE`` less the umask
    (``os.open`` applies the umask, so it need not be read, which is not thread-safe)."""
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}"
        try:
            handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        except FileExistsError:
            continue
        if mode is not None:
            os.fchmod(handle, mode)
        return handle, tmp
    raise FileExistsError(f"{path.parent}: cannot create a temporary file for {path.name}")


def save_bundle(bundle: ModelBundle, path: Path) -> Path:
    """Write ``bundle`` to ``path`` atomically (readers see the old or the new file, never a mix).

    The new file keeps the mode of the one it replaces (an operator may have opened it to a server
    running as another user); a first file gets 0644 less the umask.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raws = {name: bytes(b.save_raw(raw_format="ubj")) for name, b in bundle.boosters.items()}
    document = {
        "format": FORMAT,
        "kind": bundle.kind,
        "schema_version": bundle.schema_version,
        "saved_at": time.time(),
        "libraries": library_versions(),
        "metadata": bundle.metadata,
        "boosters": {name: base64.b64encode(raw).decode("ascii") for name, raw in raws.items()},
        "booster_sha256": {name: hashlib.sha256(raw).hexdigest() for name, raw in raws.items()},
        "arrays": {
            name: {"dtype": str(a.dtype), "shape": list(a.shape), "data": a.ravel().tolist()}
            for name, a in bundle.arrays.items()
        },
    }
    handle, tmp = _create_temporary(path, _current_mode(path))
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, allow_nan=True)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _read_document(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelFileError(f"{path}: cannot read the model file ({exc.strerror or exc})") from exc
    try:
        document = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ModelFileError(
            f"{path}: not a cotenancy model file (not UTF-8 text: byte {exc.start} is {raw[exc.start]:#04x})"
        ) from exc
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: not a cotenancy model file (not valid JSON: {exc})") from exc
    except RecursionError as exc:
        raise ModelFileError(f"{path}: not a cotenancy model file (JSON nested too deeply)") from exc
    if not isinstance(document, dict):
        raise ModelFileError(
            f"{path}: not a cotenancy model file (a JSON {_json_type(document)}, expected an object)"
        )
    return document


def _section(document: dict[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = document[key]
    if not isinstance(value, dict):
        raise ModelFileError(f"{path}: {key!r} must be a JSON object, not a JSON {_json_type(value)}")
    return value


def _booster(path: Path, name: str, encoded: object, digest: object, nthread: int) -> xgb.Booster:
    """A booster from its file text. XGBoost's parser can crash the process or loop forever on
    damaged bytes, so they never reach it: the bytes must match the digest saved with them
    (``digest`` is ``None`` only in files written before digests were)."""
    if not isinstance(encoded, str):
        raise ModelFileError(
            f"{path}: booster {name!r} must be base64 text, not a JSON {_json_type(encoded)}"
        )
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ModelFileError(f"{path}: booster {name!r} is not valid base64 ({exc})") from exc
    if not raw:
        raise ModelFileError(f"{path}: booster {name!r} is empty")
    if digest is not None and digest != hashlib.sha256(raw).hexdigest():
        raise ModelFileError(f"{path}: booster {name!r} is damaged (its bytes do not match their SHA-256)")
    booster = xgb.Booster(params={"nthread": nthread})
    try:
        booster.load_model(bytearray(raw))
    except (xgb.core.XGBoostError, UnicodeDecodeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFileError(f"{path}: booster {name!r} is damaged ({reason[:160]})") from exc
    return booster


def _array(path: Path, name: str, spec: object) -> np.ndarray:
    where = f"{path}: array {name!r}"
    if not isinstance(spec, dict) or not {"dtype", "shape", "data"} <= set(spec):
        raise ModelFileError(f"{where} must be an object with dtype, shape and data")
    try:
        dtype = np.dtype(spec["dtype"])
    except (TypeError, ValueError):
        raise ModelFileError(f"{where} has an unknown dtype {_short(spec['dtype'])}") from None
    if dtype.kind not in ARRAY_KINDS:
        raise ModelFileError(f"{where} has dtype {dtype}, expected numbers")
    shape = spec["shape"]
    if not isinstance(shape, list) or any(
        isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape
    ):
        raise ModelFileError(f"{where} has a malformed shape {_short(shape)}")
    if not isinstance(spec["data"], list):
        raise ModelFileError(f"{where}: data must be a JSON array, not a JSON {_json_type(spec['data'])}")
    try:
        return np.asarray(spec["data"], dtype=dtype).reshape(shape)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(f"{where} does not match its dtype {dtype} and shape {shape} ({exc})") from exc


def load_bundle(path: Path, kind: str, schema_version: str, nthread: int = 2) -> ModelBundle:
    """Read a model file; :class:`SchemaMismatch` when it was built for other features and
    :class:`ModelFileError` (a kind of it) when it cannot be read, naming the file and the fault."""
    document = _read_document(path)
    if document.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown model file format {_short(document.get('format'))}")
    if document.get("kind") != kind:
        raise ModelFileError(f"{path}: holds a {_short(document.get('kind'))} model, expected {kind!r}")
    if document.get("schema_version") != schema_version:
        raise SchemaMismatch(
            f"{path}: model was trained for feature schema {_short(document.get('schema_version'))}, "
            f"this code serves schema {schema_version!r}; retrain with 'cotenancy train'"
        )
    missing = [key for key in ("metadata", "boosters", "arrays") if key not in document]
    if missing:
        raise ModelFileError(f"{path}: incomplete model file, missing {', '.join(map(repr, missing))}")
    metadata = dict(_section(document, "metadata", path))
    encoded_boosters = _section(document, "boosters", path)
    digests = _section(document, "booster_sha256", path) if "booster_sha256" in document else None
    unlisted = sorted(set(encoded_boosters) - set(digests)) if digests is not None else []
    if unlisted:
        raise ModelFileError(f"{path}: booster {unlisted[0]!r} has no SHA-256 in 'booster_sha256'")
    boosters = {
        name: _booster(path, name, encoded, None if digests is None else digests[name], nthread)
        for name, encoded in encoded_boosters.items()
    }
    arrays = {name: _array(path, name, spec) for name, spec in _section(document, "arrays", path).items()}
    metadata.setdefault("libraries", document.get("libraries", {}))
    metadata.setdefault("saved_at", document.get("saved_at"))
    return ModelBundle(kind, schema_version, metadata, boosters, arrays, source=str(path))


T = TypeVar("T")

#: the stamp of a file whose ``stat`` failed for another reason than its absence
_UNREADABLE = (-1, -1)


class ReloadingModel(Generic[T]):
    """A model object built from a file, rebuilt whenever the file changes (no restart needed).

    ``get()`` returns ``None`` while there is no file (the caller then uses its cold-start fallback).
    A file that cannot be served (damaged, another schema) is never served:

    * after a good model was loaded, ``get()`` keeps serving that last good model: a service should
      not lose its model, nor flap between model and error, because a bad copy was put in place;
    * with no good model yet, every ``get()`` raises the same typed error
      (:class:`~cotenancy.exceptions.SchemaMismatch` or its :class:`ModelFileError`).

    Either way the fault is logged once, kept in :attr:`problem` for the API or loop to report, and
    the file is read again only when its ``(mtime, size)`` changes.
    """

    def __init__(self, path: Path, build: Callable[[Path], T], min_check_seconds: float = 1.0) -> None:
        self.path = path
        self._build = build
        self._min_check = min_check_seconds
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._value: T | None = None
        self._error: CotenancyError | None = None
        self._checked_at = float("-inf")

    @property
    def problem(self) -> str | None:
        """Why the file on disk is not the model being served; ``None`` when it is (or is absent)."""
        error = self._error
        return None if error is None else str(error)

    def get(self) -> T | None:
        """The model to serve (see the class docstring for a file that cannot be served)."""
        now = time.monotonic()
        if now - self._checked_at >= self._min_check:
            with self._lock:
                self._checked_at = now
                self._refresh()
        value, error = self._value, self._error
        if value is None and error is not None:
            raise error.with_traceback(None)
        return value

    def _refresh(self) -> None:
        try:
            stat_result = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._value, self._error = None, None, None
            return
        except OSError as exc:
            self._fail(
                _UNREADABLE,
                ModelFileError(f"{self.path}: cannot read the model file ({exc.strerror or exc})"),
            )
            return
        stamp = (stat_result.st_mtime_ns, stat_result.st_size)
        if stamp == self._stamp:
            return
        try:
            value = self._build(self.path)
        except CotenancyError as exc:
            self._fail(stamp, exc)
            return
        except Exception as exc:
            LOG.debug("building a model from %s failed", self.path, exc_info=True)
            error = ModelFileError(f"{self.path}: cannot load the model ({type(exc).__name__}: {exc})")
            error.__cause__ = exc
            self._fail(stamp, error)
            return
        self._stamp, self._value, self._error = stamp, value, None

    def _fail(self, stamp: tuple[int, int], error: CotenancyError) -> None:
        """Record a file that cannot be served, logging it once (not at every check)."""
        if stamp == self._stamp and self._error is not None:
            return
        self._stamp, self._error = stamp, error
        if self._value is not None:
            LOG.error("%s; still serving the model loaded before (fix or retrain to replace it)", error)
        else:
            LOG.error("%s; no model to serve until the file is fixed or retrained", error)

    def invalidate(self) -> None:
        """Check the file again on the next ``get()``."""
        self._checked_at = float("-inf")
