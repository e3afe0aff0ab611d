"""Every kind of bad S0142 input: a clear error naming file, line and field; nothing loaded."""

from __future__ import annotations

import gzip
import re

import pytest

from ingest.p114.generate import write_s0142_lines
from ingest.p114.load import load_file
from ingest.p114.s0142 import S0142Error, read_s0142
from ingest.p114.tables import DATA_TABLES, LOAD_ERRORS, MANIFEST
from tests.conftest import NORMAL_DAY, SHORT_DAY, s0142_lines, write_lines

FILE = "S0142_20241011_SF_20241103120209.gz"


def fix_zzz(lines: list[str]) -> list[str]:
    return lines[:-1] + [f"ZZZ|{len(lines)}|0|"]


def first(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def replace_field(line: str, position: int, value: str) -> str:
    fields = line.split("|")
    fields[position] = value
    return "|".join(fields)


def wrong_field_count(lines):
    i = first(lines, "BP7|")
    lines[i] = lines[i][: lines[i].rstrip("|").rfind("|") + 1]  # drop the last field
    return lines, i + 1, "field count", "BP7 record has 25 fields, expected 26"


def non_numeric(lines):
    i = first(lines, "BP7|")
    lines[i] = replace_field(lines[i], 8, "12x")
    return lines, i + 1, "metered_volume_mwh (BP7 8)", "'12x' is not a number"


def not_finite(lines):
    i = first(lines, "BPI|")
    lines[i] = replace_field(lines[i], 5, "nan")
    return lines, i + 1, "transmission_loss_multiplier (BPI 5)", "not a finite number"


def bad_period_number(lines):
    i = first(lines, "SPI|")
    lines[i] = replace_field(lines[i], 1, "one")
    return lines, i + 1, "settlement_period (SPI 1)", "'one' is not an integer"


def zzz_count_disagrees(lines):
    lines[-1] = f"ZZZ|{len(lines) + 5}|0|"
    return lines, len(lines), "ZZZ 1", f"ZZZ says {len(lines) + 5} records but the file has {len(lines)}"


def srh_run_differs(lines):
    lines[1] = replace_field(lines[1], 2, "II")
    return lines, 2, "SRH 2", "SRH settlement run II differs from the file name run SF"


def aaa_stamp_differs(lines):
    lines[0] = replace_field(lines[0], 3, "20241103120210")
    return lines, 1, "AAA 3", "differs from the file name stamp"


def bph_for_another_run(lines):
    i = first(lines, "BPH|")
    lines[i] = replace_field(lines[i], 2, "R1")
    return lines, i + 1, "BPH 1-2", "BPH is for 20241011 run R1"


def bp7_without_sp7(lines):
    i = first(lines, "SP7|")
    del lines[i]
    orphan = next(k for k in range(i, len(lines)) if lines[k].startswith("BP7|"))
    return fix_zzz(lines), orphan + 1, None, "BP7 record without an open SP7 period"


def bo4_without_bp7(lines):
    i = first(lines, "BO4|")
    bo4 = lines.pop(i)
    j = first(lines, "SP7|")
    lines.insert(j + 1, bo4)
    return fix_zzz(lines), j + 2, None, "BO4 record not under a BP7"


def bo3_time_not_a_timestamp(lines):
    i = first(lines, "BO3|")
    lines[i] = replace_field(lines[i], 2, "2024-10-11 10:00")
    return lines, i + 1, "acceptance_time (BO3 2)", "BO3 acceptance time is not YYYYMMDDHHMMSS"


def bo3_without_bp7(lines):
    i = first(lines, "BO3|")
    bo3 = lines.pop(i)
    j = first(lines, "SP7|")
    lines.insert(j + 1, bo3)
    return fix_zzz(lines), j + 2, None, "BO3 record not under a BP7"


def bpi_before_any_spi(lines):
    i = first(lines, "BPI|")
    bpi = lines.pop(i)
    lines.insert(2, bpi)
    return fix_zzz(lines), 3, None, "BPI record before any SPI record"


def duplicate_bp7(lines):
    i = first(lines, "BP7|")
    lines.insert(i + 1, lines[i])
    return fix_zzz(lines), i + 2, None, "duplicate BP7 record for bm_unit_id="


def spi_periods_out_of_order(lines):
    i = first(lines, "SPI|")
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("SPI|"))
    lines[i], lines[j] = replace_field(lines[i], 1, "2"), replace_field(lines[j], 1, "1")
    return lines, i + 1, "settlement_period (SPI 1)", "found period 2 where 1 was expected"


def not_a_record(lines):
    lines.insert(5, "hello world")
    return fix_zzz(lines), 6, "record id", "not an S0142 record"


def missing_trailer(lines):
    return lines[:-1], len(lines) - 1, None, "last record is 'BP7', expected ZZZ (file truncated?)"


CASES = [
    wrong_field_count, non_numeric, not_finite, bad_period_number, zzz_count_disagrees, srh_run_differs,
    aaa_stamp_differs, bph_for_another_run, bp7_without_sp7, bo4_without_bp7, bo3_time_not_a_timestamp,
    bo3_without_bp7, bpi_before_any_spi, duplicate_bp7,
    spi_periods_out_of_order, not_a_record,
]


def assert_nothing_loaded(wh, file_name: str) -> None:
    for table in DATA_TABLES.values():
        assert wh.scalar(f"SELECT COUNT(*) FROM {table.name}") == 0, table.name
    assert wh.scalar(f"SELECT COUNT(*) FROM {MANIFEST.name}") == 0
    errors = wh.query_rows(f"SELECT * FROM {LOAD_ERRORS.name}")
    assert [e["file_name"] for e in errors] == [file_name]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.__name__)
def test_bad_record_names_file_line_and_field_and_loads_nothing(tmp_path, wh, units, case):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    lines, line, field, message = case(list(lines))
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")

    with pytest.raises(S0142Error) as info:
        read_s0142(path)
    err = info.value
    assert (err.file, err.line, err.field) == (FILE, line, field)
    assert message in str(err)
    assert str(err).startswith(f"{FILE} line {line}")

    result = load_file(wh, path)
    assert result.status == "failed" and result.error == str(err)
    assert_nothing_loaded(wh, FILE)
    recorded = wh.query_rows(f"SELECT line, field, error FROM {LOAD_ERRORS.name}")[0]
    assert (recorded["line"], recorded["field"], recorded["error"]) == (line, field, str(err))


def test_missing_trailer_is_reported_as_truncation(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, lines[:-1], NORMAL_DAY, "SF")
    with pytest.raises(S0142Error, match=r"line \d+: last record is '\w+', expected ZZZ \(file truncated\?\)"):
        read_s0142(path)


def test_truncated_gzip_is_an_error_and_loads_nothing(tmp_path, wh, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(S0142Error, match=f"^{FILE}: truncated gzip data"):
        read_s0142(path)
    assert load_file(wh, path).status == "failed"
    assert_nothing_loaded(wh, FILE)



def test_an_empty_file_is_called_empty_and_loads_nothing(tmp_path, wh, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    path.write_bytes(b"")  # an interrupted copy
    with pytest.raises(S0142Error, match=f"^{FILE}: empty file \\(0 bytes\\): an interrupted download or copy\\?$"):
        read_s0142(path)
    assert load_file(wh, path).status == "failed"
    assert_nothing_loaded(wh, FILE)

def test_corrupt_gzip_is_an_error(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    data = bytearray(path.read_bytes())
    data[200:260] = b"\x00" * 60
    path.write_bytes(bytes(data))
    with pytest.raises(S0142Error, match=f"^{FILE}: (corrupt|truncated) gzip data"):
        read_s0142(path)


def test_file_name_that_does_not_parse_is_an_error_naming_the_file(tmp_path, wh, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_s0142_lines(tmp_path / "S0142_2024-10-11_SF.gz", lines)
    with pytest.raises(S0142Error, match=r"^S0142_2024-10-11_SF.gz: file name does not parse"):
        read_s0142(path)
    result = load_file(wh, path)
    assert result.status == "failed" and "S0142_2024-10-11_SF.gz" in result.error
    assert_nothing_loaded(wh, "S0142_2024-10-11_SF.gz")


def test_an_archive_or_a_browser_copy_is_named_as_such_and_an_error_page_as_not_a_report(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    for name, rest in (("S0142_20241011_SF_20241103120209 (1).gz", "' (1).gz'"),
                       ("S0142_20241011_SF_20241103120209.zip", "'.zip'")):
        path = write_s0142_lines(tmp_path / name, lines)
        with pytest.raises(S0142Error, match=rf"file name has {re.escape(rest)} after the creation stamp"):
            read_s0142(path)
    page = tmp_path / "S0142_20241011_SF_20241103120209.gz"
    page.write_bytes(b"<html><body>Scripting Error 001</body></html>\n")
    with pytest.raises(S0142Error) as err:
        read_s0142(page)
    assert err.value.line == 1 and "not an S0142 settlement report: it starts '<html><body>Scripting Error 001" in str(err.value)


def test_unknown_run_in_file_name_is_rejected(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_s0142_lines(tmp_path / "S0142_20241011_XX_20241103120209.gz", lines)
    with pytest.raises(S0142Error, match="unknown settlement run 'XX'"):
        read_s0142(path)


def test_a_day_with_the_wrong_number_of_periods_is_rejected(tmp_path, units):
    from ingest.p114.generate import default_created_at, generate_s0142_lines

    created = default_created_at(SHORT_DAY, "SF")
    lines = generate_s0142_lines(SHORT_DAY, "SF", created, units, periods=48)  # 31 Mar 2024 has 46
    path = write_lines(tmp_path, lines, SHORT_DAY, "SF")
    with pytest.raises(S0142Error, match=r"2024-03-31 has 46 settlement periods \(Europe/London\) but the file has 48 SPI"):
        read_s0142(path)


def test_non_ascii_byte_is_an_error(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    text = gzip.decompress(path.read_bytes()).replace(b"BPI|", b"BPI\xff|", 1)
    path.write_bytes(gzip.compress(text))
    with pytest.raises(S0142Error, match="byte 0xff is not ASCII/UTF-8 text"):
        read_s0142(path)


def test_a_failure_found_after_earlier_tables_were_written_rolls_the_whole_file_back(tmp_path, wh, units):
    # SPI and BP7 are written before BPI is built; a duplicate BPI is only found then.
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    i = first(lines, "BPI|")
    lines.insert(i + 1, lines[i])
    path = write_lines(tmp_path, fix_zzz(lines), NORMAL_DAY, "SF")
    result = load_file(wh, path)
    assert result.status == "failed" and "duplicate BPI record" in result.error
    assert_nothing_loaded(wh, FILE)
