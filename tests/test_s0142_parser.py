"""read_s0142 against a naive line-by-line reference reader, on every layout variation we know."""

from __future__ import annotations

import collections
import datetime as dt
import gzip

import pytest

from core.settlement import periods_in_day
from ingest.p114.generate import write_s0142
from ingest.p114.layout import LOADED_FIELDS, Field
from ingest.p114.s0142 import read_s0142
from tests.conftest import LONG_DAY, NORMAL_DAY, SHORT_DAY, s0142_lines, write_lines


def _value(raw: str, kind: str):
    if raw == "":
        return None
    if kind == "datetime":
        return dt.datetime.strptime(raw, "%Y%m%d%H%M%S")
    return {"str": str, "float": float, "int": int}[kind](raw)


def naive_read(lines: list[str]) -> dict[str, list[dict]]:
    """The obvious per-record reader: split each line, keep the enclosing context in variables."""
    out: dict[str, list[dict]] = collections.defaultdict(list)
    spi_period = party = sp7_period = unit = None
    for number, line in enumerate(lines, start=1):
        fields = line.split("|")[:-1]
        rec = fields[0]

        def row(key: str, fields_spec: list[Field], **context) -> None:
            values = {f.name: _value(fields[f.position], f.kind) for f in fields_spec if f.position < len(fields)}
            values.update({f.name: None for f in fields_spec if f.position >= len(fields)})
            values.update(context, source_line=number)
            out[key].append(values)

        if rec == "SPI":
            spi_period = int(fields[1])
            row("spi", LOADED_FIELDS["SPI"])
        elif rec == "BPI":
            row("bpi", LOADED_FIELDS["BPI"], settlement_period=spi_period)
        elif rec == "BPH":
            party, sp7_period, unit = fields[8], None, None
        elif rec == "SP7":
            sp7_period, unit = int(fields[1]), None
        elif rec == "BP7":
            unit = fields[1]
            row("bp7", LOADED_FIELDS["BP7"], settlement_period=sp7_period, lead_party_id=party)
        elif rec in ("BO4", "BO3"):
            row(rec.lower(), LOADED_FIELDS[rec], settlement_period=sp7_period, lead_party_id=party, bm_unit_id=unit)
        elif rec == "APC":
            row("apc", LOADED_FIELDS["APC"], lead_party_id=party)
    return out


def assert_same_as_naive(parsed, lines):
    expected = naive_read(lines)
    for key in ("spi", "bpi", "bp7", "bo4", "bo3", "apc"):
        got = parsed.tables[key].to_pylist()
        assert len(got) == len(expected[key]), key
        for g, e in zip(got, expected[key]):
            assert {k: g[k] for k in e} == e, (key, e["source_line"])


@pytest.mark.parametrize("day", [NORMAL_DAY, SHORT_DAY, LONG_DAY], ids=["48-periods", "46-periods", "50-periods"])
def test_every_loaded_record_matches_a_naive_reader_on_normal_and_clock_change_days(tmp_path, units, day):
    lines, _ = s0142_lines(day, "SF", units)
    parsed = read_s0142(write_lines(tmp_path, lines, day, "SF"))

    assert parsed.periods == periods_in_day(day)
    assert parsed.tables["spi"].column("settlement_period").to_pylist() == list(range(1, parsed.periods + 1))
    assert parsed.tables["bp7"].num_rows == len(units) * parsed.periods
    assert parsed.tables["bpi"].num_rows == len(units) * parsed.periods
    assert parsed.record_counts == dict(sorted(collections.Counter(line[:3] for line in lines).items()))
    assert parsed.records == len(lines)
    assert parsed.tables["bo3"].num_rows == parsed.record_counts["BO3"] > 0
    assert_same_as_naive(parsed, lines)


def test_identity_columns_come_from_the_file_name(tmp_path, units):
    created = dt.datetime(2024, 11, 5, 9, 30, 1)
    lines, _ = s0142_lines(NORMAL_DAY, "R1", units, created_at=created)
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "R1", created_at=created))
    row = parsed.tables["bpi"].slice(0, 1).to_pylist()[0]
    assert row["settlement_date"] == NORMAL_DAY
    assert row["settlement_run"] == "R1"
    assert row["file_created_at"] == created
    assert row["source_file"] == "S0142_20241011_R1_20241105093001.gz"


def test_bom_crlf_plain_and_gzip_variants_parse_identically(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "II", units)
    variants = [
        dict(),
        dict(bom=True),
        dict(crlf=True),
        dict(bom=True, crlf=True),
        dict(gz=False),
        dict(gz=False, bom=True, crlf=True),
    ]
    tables = []
    for i, kwargs in enumerate(variants):
        folder = tmp_path / str(i)
        parsed = read_s0142(write_lines(folder, lines, NORMAL_DAY, "II", **kwargs))
        tables.append({k: t.drop_columns(["source_file"]).to_pylist() for k, t in parsed.tables.items()})
    assert all(t == tables[0] for t in tables[1:])


def test_bm_unit_ids_keep_their_prefixes_exactly(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    ids = set(parsed.tables["bp7"].column("bm_unit_id").to_pylist())
    assert ids == {u.bm_unit_id for u in units}
    assert any(i.startswith("2__") for i in ids) and any(i.startswith("V__") for i in ids)


def test_bo4_rows_belong_to_the_bp7_above_them_and_its_party(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    bo4 = parsed.tables["bo4"].to_pylist()
    assert bo4, "the generator should produce acceptances"
    lead = {u.bm_unit_id: u.lead_party_id for u in units}
    for row in bo4:
        assert lead[row["bm_unit_id"]] == row["lead_party_id"]
        # the line above the BO4 block is that unit's BP7 (or one of its children)
        above = [line for line in lines[: row["source_line"] - 1] if line.startswith(("BP7|", "SP7|"))][-1]
        assert above.startswith(f"BP7|{row['bm_unit_id']}|")


def test_flow_version_014_reads_the_p444_fields(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units, flow_version="S0142014")
    # put a value into P444 field 26 of every BP7 (a 014 BP7 line ends "…|<f25>|<f26>|<f27>|")
    lines = [line[:-3] + "|7.5||" if line.startswith("BP7|") else line for line in lines]
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert parsed.flow_version == "014"
    bp7 = parsed.tables["bp7"]
    assert set(bp7.column("field_26").to_pylist()) == {"7.5"}
    assert bp7.column("field_27").null_count == bp7.num_rows
    assert parsed.tables["apc"].column("field_13").null_count == parsed.tables["apc"].num_rows
    assert_same_as_naive(parsed, lines)


def test_version_013_files_have_null_p444_columns(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    bp7 = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF")).tables["bp7"]
    assert bp7.column("field_26").null_count == bp7.num_rows


def test_unknown_record_types_are_counted_and_reported_not_dropped(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    lines = lines[:3] + ["XYZ|1|2|"] + lines[3:]
    lines[-1] = f"ZZZ|{len(lines)}|0|"
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert parsed.record_counts["XYZ"] == 1
    assert any("XYZ x1" in w for w in parsed.warnings)


def test_blank_lines_are_ignored_and_line_numbers_stay_exact(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    with_blanks = lines[:5] + [""] + lines[5:]
    parsed = read_s0142(write_lines(tmp_path, with_blanks, NORMAL_DAY, "SF"))
    first_bpi = parsed.tables["bpi"].column("source_line")[0].as_py()
    assert with_blanks[first_bpi - 1].startswith("BPI|")


def test_multi_member_gzip_is_read_whole(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    text = ("\n".join(lines) + "\n").encode()
    half = len(text) // 2
    cut = text.rfind(b"\n", 0, half) + 1
    path = write_lines(tmp_path, lines, NORMAL_DAY, "SF")
    path.write_bytes(gzip.compress(text[:cut]) + gzip.compress(text[cut:]))
    assert read_s0142(path).records == len(lines)


def test_large_file_spans_several_inflate_chunks(tmp_path):
    # ~12 MB of text: more than one 8 MB inflate piece, so chunk boundaries are exercised
    path = write_s0142(tmp_path, NORMAL_DAY, "SF", n_units=900, n_parties=40, seed=3)
    parsed = read_s0142(path)
    assert parsed.tables["bp7"].num_rows == 900 * 48
    assert parsed.records == int(gzip.decompress(path.read_bytes()).rstrip(b"\n").split(b"\n")[-1].split(b"|")[1])
