"""The simulated cloud, kept in a state file so that separate processes see one cloud.

Ansible runs every module (``cotenancy.cloud.plan``, ``apply``, ``step``) in its own process, so a
plan made by one task and applied by the next needs the cloud's state to outlive the process.
With ``[simulated] state_file`` set, the cloud is loaded from that file (or built from
configuration and written there the first time), and written back after every verb that changes
it and after every ``wait()``.

Each change is a read-modify-write under an exclusive ``fcntl`` lock on ``<state_file>.lock``: when
another process changed the file since this one read it, the newer cloud is loaded before the
change is made, so no process overwrites another's change. The file is replaced atomically
(temporary file in the same folder + ``os.replace``), so a reader never sees half a cloud.

The file is a pickle: only load state files this user wrote (it is created with mode 0600). It
is tied to the simulator's code; a file written by another version is refused with a clear error.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import pickle
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import numpy as np
from oslo_config import cfg

import cotenancy.sim
from cotenancy.drivers.simulated.driver import SimulatedDriver
from cotenancy.exceptions import ConfigurationError
from cotenancy.model import Allocation, Event, Inventory, MetricSample, Resources
from cotenancy.sim.cloud import SimulatedCloud

T = TypeVar("T")


class PersistentSimulatedDriver(SimulatedDriver):
    """:class:`SimulatedDriver` whose cloud lives in ``[simulated] state_file`` (in memory when unset)."""

    name = "simulated"

    @classmethod
    def list_opts(cls) -> list[cfg.Opt]:
        return [
            *super().list_opts(),
            cfg.StrOpt(
                "state_file",
                help="File that keeps the simulated cloud between processes (Ansible runs each task "
                "in its own). Built from configuration when missing; unset: the cloud lives in memory.",
            ),
        ]

    def __init__(self, conf: cfg.ConfigOpts, cloud: SimulatedCloud | None = None) -> None:
        """A given ``cloud`` replaces what the state file holds; otherwise the file is loaded,
        or created from configuration when it does not exist yet."""
        self._state_path: Path | None = None
        self._loaded_stamp: tuple[int, int, int] | None = None
        super().__init__(conf, cloud)
        path = self._path()
        if cloud is not None and path is not None:
            with self._lock(exclusive=True):
                self._write(path, cloud)

    def _cloud_from_conf(self, conf: cfg.ConfigOpts) -> SimulatedCloud:
        path = self._path()
        if path is None:
            return super()._cloud_from_conf(conf)
        with self._lock(exclusive=False):
            if path.exists():
                return self._read(path)
        cloud = super()._cloud_from_conf(conf)
        with self._lock(exclusive=True):
            if path.exists():  # another process created it meanwhile: share its cloud
                return self._read(path)
            self._write(path, cloud)
        return cloud

    @property
    def persistent(self) -> bool:
        """Whether other processes see this cloud (``state_file`` is set)."""
        return self._path() is not None

    # ------------------------------------------------------------------ state file
    def _path(self) -> Path | None:
        if self._state_path is None:
            raw = getattr(self.options, "state_file", None)
            if raw:
                path = Path(os.path.expanduser(raw))
                if not path.parent.is_dir():
                    raise ConfigurationError(f"[simulated] state_file: folder {path.parent} does not exist")
                self._state_path = path
        return self._state_path

    @contextlib.contextmanager
    def _lock(self, exclusive: bool) -> Iterator[None]:
        path = self._path()
        assert path is not None
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _read(self, path: Path) -> SimulatedCloud:
        try:
            with path.open("rb") as handle:
                stamp = _stamp(os.fstat(handle.fileno()))
                state = pickle.load(handle)
        except Exception as exc:  # damaged or foreign pickles fail in many ways; all mean "unreadable"
            raise ConfigurationError(f"[simulated] state_file {path} cannot be read: {exc}") from exc
        if not isinstance(state, dict) or not isinstance(state.get("cloud"), SimulatedCloud):
            raise ConfigurationError(f"[simulated] state_file {path} does not hold a simulated cloud")
        if state.get("simulator") != simulator_fingerprint():
            raise ConfigurationError(
                f"[simulated] state_file {path} was written by another version of the simulator "
                "(cotenancy.sim); remove it to build a new cloud"
            )
        self._loaded_stamp = stamp
        return state["cloud"]

    def _write(self, path: Path, cloud: SimulatedCloud) -> None:
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                state = {"simulator": simulator_fingerprint(), "cloud": cloud}
                pickle.dump(state, handle, protocol=pickle.HIGHEST_PROTOCOL)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        self._loaded_stamp = _stamp(os.stat(path))

    def _adopt(self, cloud: SimulatedCloud) -> None:
        """Make a cloud read from the file this driver's cloud (re-deriving the parent's views)."""
        SimulatedDriver.__init__(self, self.conf, cloud)

    def _refresh(self) -> None:
        """Load the file again when another process replaced it since this one read it."""
        path = self._path()
        if path is None or not path.exists() or _stamp(os.stat(path)) == self._loaded_stamp:
            return
        self._adopt(self._read(path))

    def _mutate(self, change: Callable[[], T]) -> T:
        path = self._path()
        if path is None:
            return change()
        with self._lock(exclusive=True):
            self._refresh()
            result = change()
            self._write(path, self.cloud)
        return result

    def _observe(self, read: Callable[[], T]) -> T:
        if self._path() is None:
            return read()
        with self._lock(exclusive=False):
            self._refresh()
            return read()

    # ------------------------------------------------------------------ reads see the newest cloud
    def now(self) -> float:
        return self._observe(partial(SimulatedDriver.now, self))

    def get_inventory(self) -> Inventory:
        return self._observe(partial(SimulatedDriver.get_inventory, self))

    def get_metrics(
        self, start: float, end: float, vm_ids: Sequence[str] | None = None
    ) -> list[MetricSample]:
        return self._observe(partial(SimulatedDriver.get_metrics, self, start, end, vm_ids))

    def get_events(self, start: float, end: float) -> list[Event]:
        return self._observe(partial(SimulatedDriver.get_events, self, start, end))

    def metric_frames(self, start: float, end: float) -> list[tuple[float, list[str], dict[str, np.ndarray]]]:
        return self._observe(partial(SimulatedDriver.metric_frames, self, start, end))

    # ------------------------------------------------------------------ changes are saved
    def wait(self, seconds: float) -> None:
        self._mutate(partial(SimulatedDriver.wait, self, seconds))

    def live_migrate(self, vm_id: str, target_host_id: str, timeout: float | None = None) -> None:
        self._mutate(partial(SimulatedDriver.live_migrate, self, vm_id, target_host_id, timeout))

    def resize(self, vm_id: str, size: Resources, timeout: float | None = None) -> None:
        self._mutate(partial(SimulatedDriver.resize, self, vm_id, size, timeout))

    def set_allocation(self, vm_id: str, allocation: Allocation, timeout: float | None = None) -> None:
        self._mutate(partial(SimulatedDriver.set_allocation, self, vm_id, allocation, timeout))

    def set_host_maintenance(self, host_id: str, enabled: bool, timeout: float | None = None) -> None:
        self._mutate(partial(SimulatedDriver.set_host_maintenance, self, host_id, enabled, timeout))


@functools.cache
def simulator_fingerprint() -> str:
    """Hash of the simulator's code: a pickled cloud is only valid for the code that wrote it
    (attributes come and go between versions), so a file from other code is refused, not misread."""
    digest = hashlib.sha256()
    for source in sorted(Path(cotenancy.sim.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


def _stamp(status: os.stat_result) -> tuple[int, int, int]:
    """Identifies one version of the file: ``os.replace`` gives every save a new inode."""
    return (status.st_ino, status.st_mtime_ns, status.st_size)
