"""Readers for the public traces the simulator replays (formats: see docs/simulator.md).

- PlanetLab (CoMon, as shipped with CloudSim): a folder per day, one file per VM, 288 integer lines
  of CPU % of the VM's allocation, every 300 s.
- Bitbrains GWA-T-12 "Rnd": one gzip CSV per VM, ``;``+tab separated, 300 s step.

Every malformed file raises :class:`MalformedInputError` naming the file and line.
"""

from __future__ import annotations

import calendar
import csv
import gzip
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from cotenancy.exceptions import MalformedInputError
from cotenancy.model import Resource, Resources
from cotenancy.sim.workload import Workload

PLANETLAB_STEP = 300.0
PLANETLAB_STEPS = 288
BITBRAINS_STEP = 300.0

BITBRAINS_COLUMNS = (
    "Timestamp [ms]",
    "CPU cores",
    "CPU capacity provisioned [MHZ]",
    "CPU usage [MHZ]",
    "CPU usage [%]",
    "Memory capacity provisioned [KB]",
    "Memory usage [KB]",
    "Disk read throughput [KB/s]",
    "Disk write throughput [KB/s]",
    "Network received throughput [KB/s]",
    "Network transmitted throughput [KB/s]",
)


def _day_start(folder: Path) -> float:
    """POSIX time of midnight UTC of a ``YYYYMMDD`` folder name (0 if the name is not a date)."""
    name = folder.name
    if len(name) == 8 and name.isdigit():
        return float(calendar.timegm((int(name[:4]), int(name[4:6]), int(name[6:]), 0, 0, 0)))
    return 0.0


def read_planetlab_file(path: Path) -> np.ndarray:
    """The 288 CPU percentages of one PlanetLab VM file, as fractions (0..1)."""
    values: list[float] = []
    with path.open("r", encoding="ascii", errors="strict") as handle:
        try:
            lines = handle.read().splitlines()
        except UnicodeDecodeError as exc:
            raise MalformedInputError(str(path), None, f"not a text file ({exc.reason})") from exc
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            value = int(text)
        except ValueError:
            raise MalformedInputError(
                str(path), number, f"expected an integer CPU percentage, got {text[:40]!r}"
            ) from None
        if not 0 <= value <= 100:
            raise MalformedInputError(str(path), number, f"CPU percentage {value} outside 0..100")
        values.append(value / 100.0)
    if len(values) < PLANETLAB_STEPS:
        raise MalformedInputError(
            str(path), len(lines), f"expected {PLANETLAB_STEPS} samples, found {len(values)}"
        )
    return np.asarray(values[:PLANETLAB_STEPS], dtype=float)


def load_planetlab(folder: str | Path, limit: int | None = None) -> Workload:
    """One PlanetLab day: every file in ``folder`` in sorted-name order (CloudSim's VM order)."""
    root = Path(folder)
    if not root.is_dir():
        raise MalformedInputError(str(root), None, "PlanetLab trace must be a folder of VM files")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if limit is not None:
        files = files[:limit]
    if not files:
        raise MalformedInputError(str(root), None, "no VM files in this folder")
    cpu = np.vstack([read_planetlab_file(p) for p in files])
    return Workload(
        vm_names=[p.name for p in files],
        step_seconds=PLANETLAB_STEP,
        start=_day_start(root),
        utilisation={Resource.CPU: cpu},
        sizes=None,
        source=f"planetlab:{root}",
    )


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return path.open("r", encoding="utf-8", newline="")


def read_bitbrains_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (POSIX s) and the 10 numeric columns after the timestamp, as float arrays."""
    rows: list[list[float]] = []
    stamps: list[float] = []
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=";")
            header = next(reader, None)
            if header is None:
                raise MalformedInputError(str(path), 1, "empty file")
            names = tuple(h.strip() for h in header)
            if names != BITBRAINS_COLUMNS:
                raise MalformedInputError(str(path), 1, f"unexpected header {names[:3]}...")
            for number, record in enumerate(reader, start=2):
                if not record:
                    continue
                if len(record) != len(BITBRAINS_COLUMNS):
                    raise MalformedInputError(
                        str(path),
                        number,
                        f"expected {len(BITBRAINS_COLUMNS)} fields, got {len(record)}",
                    )
                try:
                    numbers = [float(field_.strip()) for field_ in record]
                except ValueError:
                    raise MalformedInputError(str(path), number, "non-numeric field") from None
                stamps.append(numbers[0])
                rows.append(numbers[1:])
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise MalformedInputError(str(path), None, f"cannot read: {exc}") from exc
    if not rows:
        raise MalformedInputError(str(path), None, "no samples")
    return np.asarray(stamps), np.asarray(rows)


def _bitbrains_files(folder: Path, limit: int | None) -> list[Path]:
    files = [p for p in folder.iterdir() if p.name.endswith((".csv", ".csv.gz"))]
    files.sort(
        key=lambda p: (
            int(p.name.split(".")[0]) if p.name.split(".")[0].isdigit() else 10**9,
            p.name,
        )
    )
    return files[:limit] if limit is not None else files


def load_bitbrains(
    folder: str | Path, limit: int | None = None, names: Iterable[str] | None = None
) -> Workload:
    """Bitbrains VMs resampled onto one common 300 s grid (missing steps are NaN).

    Utilisation is relative to the VM's provisioned size: CPU MHz over provisioned MHz, memory over
    provisioned memory; disk and network have no provisioned size in the trace, so their size is
    the VM's own 99th percentile (at least 1 KiB/s) and their utilisation is relative to that.
    """
    root = Path(folder)
    if not root.is_dir():
        raise MalformedInputError(str(root), None, "Bitbrains trace must be a folder of CSV files")
    files = _bitbrains_files(root, limit)
    if names is not None:
        wanted = set(names)
        files = [p for p in files if p.name.split(".")[0] in wanted]
    if not files:
        raise MalformedInputError(str(root), None, "no .csv or .csv.gz files in this folder")
    parsed = [read_bitbrains_file(p) for p in files]
    start = min(float(s[0]) for s, _ in parsed)
    end = max(float(s[-1]) for s, _ in parsed)
    start = np.floor(start / BITBRAINS_STEP) * BITBRAINS_STEP
    n_steps = int((end - start) // BITBRAINS_STEP) + 1
    shape = (len(files), n_steps)
    util = {
        r: np.full(shape, np.nan) for r in (Resource.CPU, Resource.MEMORY, Resource.DISK_IO, Resource.NETWORK)
    }
    sizes: list[Resources] = []
    for row, (stamps, data) in enumerate(parsed):
        cols = np.clip(((stamps - start) // BITBRAINS_STEP).astype(int), 0, n_steps - 1)
        cpu_cap = np.nanmax(data[:, 1]) if data.size else 0.0
        mem_cap_mib = np.nanmax(data[:, 4]) / 1024.0
        disk = data[:, 6] + data[:, 7]
        net = data[:, 8] + data[:, 9]
        disk_size = max(float(np.nanpercentile(disk, 99)), 1.0)
        net_size = max(float(np.nanpercentile(net, 99)), 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            util[Resource.CPU][row, cols] = np.where(data[:, 1] > 0, data[:, 2] / data[:, 1], np.nan)
            util[Resource.MEMORY][row, cols] = np.where(data[:, 4] > 0, data[:, 5] / data[:, 4], np.nan)
        util[Resource.DISK_IO][row, cols] = disk / disk_size
        util[Resource.NETWORK][row, cols] = net / net_size
        sizes.append(
            Resources(cpu=float(cpu_cap), memory=float(mem_cap_mib), disk_io=disk_size, network=net_size)
        )
    return Workload(
        vm_names=[p.name.split(".")[0] for p in files],
        step_seconds=BITBRAINS_STEP,
        start=float(start),
        utilisation=util,
        sizes=sizes,
        source=f"bitbrains:{root}",
    )
