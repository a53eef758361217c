"""Readers for the public traces the simulator replays (formats: see docs/simulator.md).

- PlanetLab (CoMon, as shipped with CloudSim): a folder per day, one file per VM, 288 integer lines
  of CPU % of the VM's allocation, every 300 s.
- Bitbrains GWA-T-12 "Rnd": one gzip CSV per VM, ``;``+tab separated, 300 s step.

Every malformed file raises :class:`MalformedInputError` naming the file and line: unreadable or
corrupt files, non-finite or out-of-range numbers and implausible time spans are refused here rather
than passed on to the simulation, where they would fail far from the file or skew its results.
A leading UTF-8 byte order mark is accepted (editors on Windows add one).
"""

from __future__ import annotations

import calendar
import codecs
import csv
import datetime
import gzip
import io
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from cotenancy.exceptions import MalformedInputError
from cotenancy.model import Resource, Resources
from cotenancy.sim.workload import Workload

PLANETLAB_STEP = 300.0
PLANETLAB_STEPS = 288
BITBRAINS_STEP = 300.0
#: longest trace the Bitbrains loader lays on its grid; one month is the published length, and a
#: longer span is almost always a wrong timestamp (e.g. milliseconds) that would ask for a huge array
BITBRAINS_MAX_SPAN_DAYS = 366

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
#: columns of measured usage, where NaN is a missing sample; every other number (timestamp, cores,
#: provisioned capacities) must be finite, and every number must be >= 0. A provisioned
#: capacity of 0 marks a sample where the VM was not provisioned (the published trace has stretches
#: of them) and its usage counts as missing.
_BITBRAINS_USAGES = (3, 4, 6, 7, 8, 9, 10)


def _day_start(folder: Path) -> float:
    """POSIX time of midnight UTC of a ``YYYYMMDD`` folder name (0 if the name is not a date)."""
    name = folder.name
    if not (len(name) == 8 and name.isascii() and name.isdigit()):
        return 0.0
    try:
        day = datetime.date(int(name[:4]), int(name[4:6]), int(name[6:]))
    except ValueError:
        return 0.0
    return float(calendar.timegm(day.timetuple()))


def trace_files(folder: Path) -> list[Path]:
    """The files of a trace folder, unsorted; hidden ones (``.DS_Store``, macOS ``._*`` copies of
    resource forks, editors' swap files) are not part of any trace, so neither format detection
    nor a loader may read them."""
    return [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]


def read_planetlab_file(path: Path) -> np.ndarray:
    """The 288 CPU percentages of one PlanetLab VM file, as fractions (0..1)."""
    values: list[float] = []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise MalformedInputError(str(path), None, f"cannot read: {exc}") from exc
    try:
        lines = raw.removeprefix(codecs.BOM_UTF8).decode("ascii").splitlines()
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
    files = sorted(trace_files(root))
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
    """Text of a plain or gzip file; ``utf-8-sig`` drops a byte order mark before the header."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return path.open("r", encoding="utf-8-sig", newline="")


class _BitbrainsFile(NamedTuple):
    path: Path
    stamps: np.ndarray
    data: np.ndarray
    lines: np.ndarray


def _check_bitbrains_values(path: Path, table: np.ndarray, lines: np.ndarray) -> None:
    """Refuse numbers the simulation cannot use; NaN usage stays, as a missing sample."""
    ok = np.isfinite(table) & ~(table < 0)
    usages = list(_BITBRAINS_USAGES)
    ok[:, usages] |= np.isnan(table[:, usages])
    if ok.all():
        return
    row = int(np.argmin(ok.all(axis=1)))
    column = int(np.argmin(ok[row]))
    reason = f"{BITBRAINS_COLUMNS[column]} is {table[row, column]}"
    raise MalformedInputError(str(path), int(lines[row]), reason)


def _read_bitbrains(path: Path) -> _BitbrainsFile:
    """One file, checked, with each sample's line so that checks across files can name it."""
    rows: list[list[float]] = []
    stamps: list[float] = []
    lines: list[int] = []
    reader = None
    try:
        with _open_text(path) as handle:
            reader = csv.reader(handle, delimiter=";")
            header = next(reader, None)
            if header is None:
                raise MalformedInputError(str(path), 1, "empty file")
            names = tuple(h.strip() for h in header)
            if names != BITBRAINS_COLUMNS:
                raise MalformedInputError(str(path), 1, f"unexpected header {names[:3]}...")
            for record in reader:
                number = reader.line_num
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
                lines.append(number)
    except csv.Error as exc:
        line = reader.line_num if reader is not None else None
        raise MalformedInputError(str(path), line, f"not a CSV record: {exc}") from exc
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
        line = reader.line_num + 1 if reader is not None else None
        raise MalformedInputError(str(path), line, f"cannot read: {exc}") from exc
    if not rows:
        raise MalformedInputError(str(path), None, "no samples")
    data = np.asarray(rows)
    _check_bitbrains_values(path, np.column_stack([stamps, data]), np.asarray(lines))
    for index in (1, 4):
        if not (data[:, index] > 0).any():
            raise MalformedInputError(
                str(path), None, f"no sample has a positive {BITBRAINS_COLUMNS[index + 1]}"
            )
    return _BitbrainsFile(path, np.asarray(stamps), data, np.asarray(lines))


def read_bitbrains_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps (POSIX s) and the 10 numeric columns after the timestamp, as float arrays."""
    parsed = _read_bitbrains(path)
    return parsed.stamps, parsed.data


def _check_bitbrains_span(parsed: list[_BitbrainsFile]) -> None:
    """Refuse a span that would need a huge grid, blaming the sample farthest from the others."""
    start = min(float(f.stamps.min()) for f in parsed)
    end = max(float(f.stamps.max()) for f in parsed)
    limit = BITBRAINS_MAX_SPAN_DAYS * 86400.0
    if end - start <= limit:
        return
    centre = float(np.median([f.stamps.min() for f in parsed]))
    worst = max(parsed, key=lambda f: float(np.abs(f.stamps - centre).max()))
    at = int(np.abs(worst.stamps - centre).argmax())
    raise MalformedInputError(
        str(worst.path),
        int(worst.lines[at]),
        f"timestamp {float(worst.stamps[at])} makes the trace span {(end - start) / 86400.0:.4g} days, "
        f"more than {BITBRAINS_MAX_SPAN_DAYS} (timestamps must be Unix seconds)",
    )


def _robust_size(values: np.ndarray) -> float:
    """99th percentile of the samples present, at least 1 (also when every sample is missing)."""
    present = values[~np.isnan(values)]
    return max(float(np.percentile(present, 99)), 1.0) if present.size else 1.0


def _bitbrains_vm_name(path: Path) -> str:
    """``194`` for ``194.csv.gz`` (and for ``194.csv``)."""
    return path.name.split(".")[0]


def _bitbrains_files(folder: Path, limit: int | None) -> list[Path]:
    """The CSV files in VM order; two files of one VM name (``1.csv`` beside ``1.csv.gz`` after a
    half-finished gunzip) are refused, since they would become two VMs the cloud cannot tell apart."""
    files = [p for p in trace_files(folder) if p.name.endswith((".csv", ".csv.gz"))]
    files.sort(
        key=lambda p: (
            int(_bitbrains_vm_name(p)) if _bitbrains_vm_name(p).isdecimal() else 10**9,
            p.name,
        )
    )
    seen: dict[str, Path] = {}
    for path in files:
        name = _bitbrains_vm_name(path)
        if name in seen:
            raise MalformedInputError(
                str(path), None, f"VM {name!r} is also in {seen[name].name}; keep only one of the two files"
            )
        seen[name] = path
    return files[:limit] if limit is not None else files


def _cell_means(cols: np.ndarray, values: np.ndarray, n_steps: int) -> np.ndarray:
    """Mean of the finite ``values`` falling in each grid cell, NaN where none does: VMs sampled
    more often than the grid (some published files step every ~110 s) keep every sample, and a
    missing sample does not hide the valid ones of its cell."""
    ok = np.isfinite(values)
    counts = np.bincount(cols[ok], minlength=n_steps)
    sums = np.bincount(cols[ok], weights=values[ok], minlength=n_steps)
    return np.divide(sums, counts, out=np.full(n_steps, np.nan), where=counts > 0)


def load_bitbrains(
    folder: str | Path, limit: int | None = None, names: Iterable[str] | None = None
) -> Workload:
    """Bitbrains VMs resampled onto one common 300 s grid: each step is the mean of the VM's
    samples in it, NaN when it has none.

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
        files = [p for p in files if _bitbrains_vm_name(p) in wanted]
    if not files:
        raise MalformedInputError(str(root), None, "no .csv or .csv.gz files in this folder")
    parsed = [_read_bitbrains(p) for p in files]
    _check_bitbrains_span(parsed)
    start = min(float(f.stamps.min()) for f in parsed)
    end = max(float(f.stamps.max()) for f in parsed)
    start = np.floor(start / BITBRAINS_STEP) * BITBRAINS_STEP
    n_steps = int((end - start) // BITBRAINS_STEP) + 1
    shape = (len(files), n_steps)
    util = {
        r: np.full(shape, np.nan) for r in (Resource.CPU, Resource.MEMORY, Resource.DISK_IO, Resource.NETWORK)
    }
    sizes: list[Resources] = []
    for row, (_, stamps, data, _) in enumerate(parsed):
        cols = np.clip(((stamps - start) // BITBRAINS_STEP).astype(int), 0, n_steps - 1)
        cpu_cap = float(data[:, 1].max())
        mem_cap_mib = float(data[:, 4].max()) / 1024.0
        disk = data[:, 6] + data[:, 7]
        net = data[:, 8] + data[:, 9]
        disk_size = _robust_size(disk)
        net_size = _robust_size(net)
        with np.errstate(divide="ignore", invalid="ignore"):
            cpu = np.where(data[:, 1] > 0, data[:, 2] / data[:, 1], np.nan)
            memory = np.where(data[:, 4] > 0, data[:, 5] / data[:, 4], np.nan)
        util[Resource.CPU][row] = _cell_means(cols, cpu, n_steps)
        util[Resource.MEMORY][row] = _cell_means(cols, memory, n_steps)
        util[Resource.DISK_IO][row] = _cell_means(cols, disk / disk_size, n_steps)
        util[Resource.NETWORK][row] = _cell_means(cols, net / net_size, n_steps)
        sizes.append(Resources(cpu=cpu_cap, memory=mem_cap_mib, disk_io=disk_size, network=net_size))
    return Workload(
        vm_names=[_bitbrains_vm_name(p) for p in files],
        step_seconds=BITBRAINS_STEP,
        start=float(start),
        utilisation=util,
        sizes=sizes,
        source=f"bitbrains:{root}",
    )
