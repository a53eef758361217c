"""Trace loaders turn bad input into MalformedInputError naming the file and line, before simulating."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np
import pytest

from cotenancy.exceptions import MalformedInputError
from cotenancy.model import Resource
from cotenancy.sim.setups import detect_trace_format, load_trace
from cotenancy.sim.traces import (
    BITBRAINS_COLUMNS,
    PLANETLAB_STEPS,
    load_bitbrains,
    load_planetlab,
    read_planetlab_file,
)

T0 = 1376314800
HEADER = ";\t".join(BITBRAINS_COLUMNS)
#: one sample: 2 cores, 4000 MHz provisioned, 1000 MHz used, 4 GiB provisioned, 1 GiB used, some I/O
SAMPLE = {
    "cores": 2,
    "cpu_cap": 4000.0,
    "cpu": 1000.0,
    "cpu_pct": 25.0,
    "mem_cap": 4194304.0,
    "mem": 1048576.0,
    "disk_r": 1.0,
    "disk_w": 2.0,
    "net_rx": 3.0,
    "net_tx": 4.0,
}


def bitbrains_row(timestamp: object, **fields: object) -> str:
    values = {**SAMPLE, **fields}
    return ";\t".join(str(v) for v in [timestamp, *values.values()])


def bitbrains_text(rows: list[str], bom: str = "", newline: str = "\n") -> str:
    return bom + newline.join([HEADER, *rows]) + newline


def good_rows(n: int = 5) -> list[str]:
    return [bitbrains_row(T0 + 300 * i) for i in range(n)]


def write_vm(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode("utf-8")))
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


def assert_malformed_at(folder: Path, file_name: str, line: int | None, match: str) -> None:
    with pytest.raises(MalformedInputError, match=match) as caught:
        load_bitbrains(folder)
    assert caught.value.source == str(folder / file_name)
    assert caught.value.line == line


def flip_bytes(blob: bytes) -> bytes:
    damaged = bytearray(blob)
    damaged[20:60] = bytes(b ^ 0xFF for b in damaged[20:60])
    return bytes(damaged)


@pytest.mark.parametrize("damage", [flip_bytes, lambda blob: blob[:-10]], ids=["corrupt-stream", "truncated"])
def test_bitbrains_damaged_gzip_is_malformed_input_where_reading_stopped(tmp_path, damage):
    blob = gzip.compress(bitbrains_text(good_rows(200)).encode())
    (tmp_path / "1.csv.gz").write_bytes(damage(blob))
    with pytest.raises(MalformedInputError, match="cannot read") as caught:
        load_bitbrains(tmp_path)
    assert caught.value.source == str(tmp_path / "1.csv.gz")
    assert isinstance(caught.value.line, int)


@pytest.mark.parametrize("stamp", ["nan", "inf", "-inf", "-300"])
def test_bitbrains_timestamp_must_be_finite_and_not_negative(tmp_path, stamp):
    write_vm(tmp_path, "1.csv", bitbrains_text([*good_rows(), bitbrains_row(stamp)]))
    assert_malformed_at(tmp_path, "1.csv", 7, "Timestamp")


def test_bitbrains_span_of_more_than_a_year_is_refused_before_allocating_the_grid(tmp_path):
    write_vm(tmp_path, "1.csv", bitbrains_text([*good_rows(), bitbrains_row(1e30)]))
    assert_malformed_at(tmp_path, "1.csv", 7, "span .* more than 366")


def test_bitbrains_file_in_milliseconds_is_named_as_the_culprit(tmp_path):
    for name in ("1.csv", "2.csv"):
        write_vm(tmp_path, name, bitbrains_text(good_rows()))
    in_ms = [bitbrains_row((T0 + 300 * i) * 1000) for i in range(5)]
    write_vm(tmp_path, "3.csv", bitbrains_text(in_ms))
    assert_malformed_at(tmp_path, "3.csv", 6, "Unix seconds")


def test_bitbrains_span_of_exactly_a_year_still_loads(tmp_path):
    year = 366 * 86400
    write_vm(tmp_path, "1.csv", bitbrains_text([bitbrains_row(T0), bitbrains_row(T0 + year)]))
    assert load_bitbrains(tmp_path).n_steps == year // 300 + 1


def test_bitbrains_oversized_field_is_malformed_input_at_its_line(tmp_path):
    huge = "9" * 200_000 + ";\t" * 10 + "1"
    write_vm(tmp_path, "1.csv", bitbrains_text([*good_rows(), huge]))
    assert_malformed_at(tmp_path, "1.csv", 7, "not a CSV record")


@pytest.mark.parametrize("name", ["1.csv", "1.csv.gz"])
def test_bitbrains_utf8_byte_order_mark_is_read(tmp_path, name):
    write_vm(tmp_path, name, bitbrains_text(good_rows(), bom="\ufeff", newline="\r\n"))
    workload = load_bitbrains(tmp_path)
    assert workload.utilisation[Resource.CPU][0].tolist() == [0.25] * 5
    assert workload.sizes[0].memory == 4096.0


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [
        ("cpu_cap", "nan", "CPU capacity provisioned"),
        ("cpu_cap", "inf", "CPU capacity provisioned"),
        ("cpu_cap", -4000.0, "CPU capacity provisioned"),
        ("mem_cap", "nan", "Memory capacity provisioned"),
        ("mem_cap", -4194304.0, "Memory capacity provisioned"),
        ("cores", "nan", "CPU cores"),
    ],
)
def test_bitbrains_provisioned_capacity_must_be_finite_and_not_negative(tmp_path, field, value, column):
    write_vm(tmp_path, "1.csv", bitbrains_text(good_rows()))
    rows = good_rows()
    rows[2] = bitbrains_row(T0 + 600, **{field: value})
    write_vm(tmp_path, "2.csv", bitbrains_text(rows))
    assert_malformed_at(tmp_path, "2.csv", 4, column)


@pytest.mark.parametrize("field", ["cpu_cap", "mem_cap"])
def test_bitbrains_vm_never_provisioned_is_malformed_input(tmp_path, field):
    rows = [bitbrains_row(T0 + 300 * i, **{field: 0.0}) for i in range(5)]
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    assert_malformed_at(tmp_path, "1.csv", None, "no sample has a positive")


def test_bitbrains_zero_capacity_sample_is_missing_as_in_the_published_trace(tmp_path):
    rows = good_rows()
    rows[1] = bitbrains_row(T0 + 300, cores=0, cpu_cap=0.0, cpu=0.0, mem_cap=0.0, mem=0.0)
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    workload = load_bitbrains(tmp_path)
    cpu = workload.utilisation[Resource.CPU][0]
    assert np.isnan(cpu[1]) and cpu[[0, 2, 3, 4]].tolist() == [0.25] * 4
    assert np.isnan(workload.utilisation[Resource.MEMORY][0, 1])
    assert workload.sizes[0].cpu == 4000.0


@pytest.mark.parametrize(
    ("field", "value", "column"),
    [
        ("cpu", "inf", "CPU usage \\[MHZ\\]"),
        ("cpu", -1.0, "CPU usage \\[MHZ\\]"),
        ("mem", "-inf", "Memory usage"),
        ("disk_r", -5.0, "Disk read"),
        ("net_tx", "inf", "Network transmitted"),
    ],
)
def test_bitbrains_usage_must_be_finite_and_not_negative(tmp_path, field, value, column):
    rows = good_rows()
    rows[3] = bitbrains_row(T0 + 900, **{field: value})
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    assert_malformed_at(tmp_path, "1.csv", 5, column)


def test_bitbrains_nan_usage_is_a_missing_sample_and_sizes_stay_finite(tmp_path):
    rows = [bitbrains_row(T0 + 300 * i, cpu="nan", disk_r="nan", disk_w="nan") for i in range(5)]
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    workload = load_bitbrains(tmp_path)
    assert np.isnan(workload.utilisation[Resource.CPU]).all()
    assert np.isnan(workload.utilisation[Resource.DISK_IO]).all()
    size = workload.sizes[0]
    assert (size.cpu, size.memory, size.disk_io, size.network) == (4000.0, 4096.0, 1.0, 7.0)
    assert all(math.isfinite(v) for v in (size.cpu, size.memory, size.disk_io, size.network))


def test_bitbrains_two_files_of_one_vm_are_refused_naming_both(tmp_path):
    write_vm(tmp_path, "1.csv", bitbrains_text(good_rows()))
    write_vm(tmp_path, "1.csv.gz", bitbrains_text(good_rows()))
    write_vm(tmp_path, "2.csv.gz", bitbrains_text(good_rows()))
    with pytest.raises(MalformedInputError, match=r"VM '1' is also in 1\.csv;") as caught:
        load_trace(tmp_path)
    assert caught.value.source == str(tmp_path / "1.csv.gz")


def test_bitbrains_hidden_files_are_skipped_by_the_loader_as_by_format_detection(tmp_path):
    write_vm(tmp_path, "2.csv.gz", bitbrains_text(good_rows()))
    # macOS copies a resource fork beside each file it copies to a non-Apple disk
    (tmp_path / "._2.csv.gz").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        ")
    write_vm(tmp_path, ".1.csv", bitbrains_text(good_rows()))
    assert detect_trace_format(tmp_path) == "bitbrains"
    assert load_trace(tmp_path).vm_names == ["2"]
    assert load_bitbrains(tmp_path, names=["", "1", "2"]).vm_names == ["2"]


def test_bitbrains_samples_sharing_a_grid_step_are_averaged(tmp_path):
    # a VM sampled every 100 s: three samples per 300 s step
    rows = [bitbrains_row(T0 + 100 * i, cpu=cpu) for i, cpu in enumerate([1000.0, 2000.0, 3000.0, 400.0])]
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    workload = load_bitbrains(tmp_path)
    assert workload.n_steps == 2
    assert workload.utilisation[Resource.CPU][0].tolist() == [0.5, 0.1]
    assert workload.utilisation[Resource.MEMORY][0].tolist() == [0.25, 0.25]


def test_bitbrains_missing_sample_does_not_hide_the_valid_ones_of_its_step(tmp_path):
    rows = [
        bitbrains_row(T0, cpu=1000.0),
        bitbrains_row(T0 + 50, cpu=3000.0),
        bitbrains_row(T0 + 150, cpu="nan", cores=0, cpu_cap=0.0, mem_cap=0.0, mem=0.0),  # VM off
        bitbrains_row(T0 + 300, cpu="nan", disk_r="nan"),
        bitbrains_row(T0 + 600, cpu=2000.0),
    ]
    write_vm(tmp_path, "1.csv", bitbrains_text(rows))
    workload = load_bitbrains(tmp_path)
    cpu = workload.utilisation[Resource.CPU][0]
    assert cpu[0] == 0.5 and np.isnan(cpu[1]) and cpu[2] == 0.5
    assert workload.utilisation[Resource.MEMORY][0].tolist() == [0.25, 0.25, 0.25]
    disk = workload.utilisation[Resource.DISK_IO][0]
    assert disk[0] == disk[2] and np.isnan(disk[1])


def planetlab_day(folder: Path, text: str, name: str = "vm-a") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode("utf-8"))
    return folder


def test_planetlab_utf8_byte_order_mark_is_read(tmp_path):
    day = planetlab_day(tmp_path / "20110303", "\ufeff" + "50\n" * PLANETLAB_STEPS)
    assert load_planetlab(day).utilisation[Resource.CPU][0].tolist() == [0.5] * PLANETLAB_STEPS


def test_planetlab_folder_named_like_an_impossible_date_starts_at_zero(tmp_path):
    day = planetlab_day(tmp_path / "20111399", "50\n" * PLANETLAB_STEPS)
    assert load_planetlab(day).start == 0.0


def test_planetlab_unreadable_file_is_malformed_input(tmp_path):
    with pytest.raises(MalformedInputError, match="cannot read") as caught:
        read_planetlab_file(tmp_path)
    assert caught.value.source == str(tmp_path)
