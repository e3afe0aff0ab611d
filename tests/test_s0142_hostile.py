"""Hostile S0142 files are refused cheaply (seconds, a small memory ceiling), naming file and line,
beside good files that still load; a full disk is one line and leaves nothing partial."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from ingest.p114.load import load_file
from ingest.p114.s0142 import MAX_LINE_BYTES, MAX_TEXT_BYTES, S0142Error, read_s0142
from ingest.p114.tables import BP7, MANIFEST
from tests.conftest import NORMAL_DAY, s0142_lines, write_lines
from tests.test_s0142_errors import first, fix_zzz, replace_field

ROOT = Path(__file__).resolve().parent.parent
PEAK_RSS = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
print(proc.returncode)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024)
sys.stderr.write(proc.stdout + proc.stderr)
"""


def run_cli(*args: str) -> tuple[int, int, str]:
    """Run ``python run.py ARGS`` in a fresh process: exit code, its peak RSS in MiB, its output."""
    proc = subprocess.run([sys.executable, "-c", PEAK_RSS, sys.executable, "run.py", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    code, peak = proc.stdout.split()
    return int(code), int(peak), proc.stderr


def hostile_field_file(tmp_path: Path, units) -> Path:
    """About 200 kB on disk: a good file whose one BP7 trading unit is a 40 MB field."""
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, "BP7|")
    lines[i] = replace_field(lines[i], 13, "A" * 40_000_000)
    return write_lines(tmp_path, lines, NORMAL_DAY, "SF")


def test_a_40_mb_field_is_refused_in_seconds_under_a_small_memory_ceiling_and_good_files_still_load(
        tmp_path, units):
    hostile = hostile_field_file(tmp_path / "bad", units)
    assert hostile.stat().st_size < 400_000
    lines, _ = s0142_lines(NORMAL_DAY, "R1", units)
    good = write_lines(tmp_path / "good", lines, NORMAL_DAY, "R1")
    db = tmp_path / "wh.duckdb"

    code, peak_mib, output = run_cli("--warehouse", f"duckdb:///{db}", "load", "p114", str(hostile), str(good))

    assert code == 1
    assert f"FAILED {hostile.name}: a line is longer than {MAX_LINE_BYTES:,} bytes" in output
    assert f"{good.name}: loaded" in output and "1 of 2 files failed to load" in output
    assert "Traceback" not in output
    assert peak_mib < 400, f"peak RSS {peak_mib} MiB"


def test_a_long_line_inside_one_piece_names_its_line(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, "BPI|")
    lines[i] = replace_field(lines[i], 2, "B" * (MAX_LINE_BYTES + 10))
    with pytest.raises(S0142Error, match=f"line is {len(lines[i]):,} bytes long; the limit is {MAX_LINE_BYTES:,}") as info:
        read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert info.value.line == i + 1


def test_a_file_that_inflates_implausibly_is_refused_before_it_is_inflated(tmp_path):
    record = b"BP7|" + b"0|" * 25 + b"\n"
    text = record * (150_000_000 // len(record))
    bomb = tmp_path / "S0142_20241011_SF_20241103120209.gz"
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb.write_bytes(compressor.compress(text) + compressor.flush())
    assert bomb.stat().st_size < 1_000_000
    with pytest.raises(S0142Error, match="inflates to more than 64 times its compressed size"):
        read_s0142(bomb)


@pytest.mark.parametrize(("rec", "position", "value", "field", "what"), [
    ("BP7|", 1, "2__FBP\x00M002", "bm_unit_id (BP7 1)", "is not an id"),
    ("BPI|", 1, "2__FBPGM00\x07", "bm_unit_id (BPI 1)", "is not an id"),
    ("BPH|", 8, "GO\x1bLD", "lead_party_id (BPH 8)", "is not an id"),
    ("BP7|", 13, "T" * (MAX_TEXT_BYTES + 1), "trading_unit (BP7 13)", f"is longer than {MAX_TEXT_BYTES} bytes"),
])
def test_control_characters_and_over_long_text_in_ids_are_refused_naming_line_and_field(
        tmp_path, wh, units, rec, position, value, field, what):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, rec)
    lines[i] = replace_field(lines[i], position, value)
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    with pytest.raises(S0142Error) as info:
        read_s0142(path)
    assert (info.value.line, info.value.field) == (i + 1, field)
    assert what in info.value.reason
    assert load_file(wh, path).status == "failed"
    assert wh.scalar(f"SELECT COUNT(*) FROM {BP7.name}") == 0


def test_nul_bytes_between_records_are_refused_not_loaded(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, "SP7|")
    lines = fix_zzz(lines[:i] + ["\x00\x00\x00|"] + lines[i:])
    with pytest.raises(S0142Error, match="not an S0142 record") as info:
        read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert info.value.line == i + 1



def test_a_bad_record_after_blank_lines_is_quoted_from_its_own_line(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, "SP7|")
    lines = fix_zzz(lines[:3] + ["", ""] + lines[3:i] + ["bp7|lower|case|"] + lines[i:])
    with pytest.raises(S0142Error) as info:
        read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert (info.value.line, info.value.field) == (i + 3, "record id")
    assert "'bp7|lower|case|'" in info.value.reason

@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("mount"), reason="mounting a small tmpfs needs root")
def test_a_full_disk_is_one_line_and_leaves_nothing_partial(tmp_path, units):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        db = disk / "wh.duckdb"
        small = write_lines(tmp_path / "small", s0142_lines(NORMAL_DAY, "SF", units)[0], NORMAL_DAY, "SF")
        from ingest.p114.generate import sample_units
        big_lines, _ = s0142_lines(NORMAL_DAY, "R1", sample_units(3000, 100, seed=3))
        big = write_lines(tmp_path / "big", big_lines, NORMAL_DAY, "R1")

        code, _, output = run_cli("--warehouse", f"duckdb:///{db}", "load", "p114", str(small), str(big))

        assert code == 1
        lines = [line for line in output.splitlines() if line.strip()]
        assert lines[0].startswith(f"{small.name}: loaded")
        assert len(lines) == 2 and lines[1].startswith("error: ") and "No space left on device" in lines[1]
        assert "Traceback" not in output
        from warehouse.duckdb import DuckDBWarehouse
        wh = DuckDBWarehouse(db)
        try:  # the small file whole, nothing of the big one, and no load error blamed on its data
            assert [r["file_name"] for r in wh.query_rows(f"SELECT file_name FROM {MANIFEST.name}")] == [small.name]
            assert wh.scalar(f"SELECT COUNT(*) FROM {BP7.name} WHERE source_file = '{big.name}'") == 0
            assert wh.scalar("SELECT COUNT(*) FROM p114_load_errors") == 0
        finally:
            wh.close()
    finally:
        subprocess.run(["umount", "-l", str(disk)])
