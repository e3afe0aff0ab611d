"""Flow versions: known layouts (013, 014) load every field; any other version loads only the fields
stable since v008, keeps the rest in ``extra_fields`` and says so, never borrowing a newer layout."""

from __future__ import annotations

import json

import pytest

from ingest.p114.load import load_file
from ops.status import collect_status
from ingest.p114.s0142 import S0142Error, inspect_s0142, read_s0142
from ingest.p114.tables import BP7, BPI, MANIFEST
from tests.conftest import NORMAL_DAY, s0142_lines, write_lines

#: Widths of an older-shaped file (before P376/P415): BP7 fields 1-17 plus three cells of unknown
#: meaning, APC 1-7 plus two, SPI without the supplier sourcing cost, SSD five fields narrower.
OLDER = {"BP7": 21, "APC": 10, "SPI": 53, "SSD": 75}


def older_shaped(lines: list[str], version: str = "011") -> list[str]:
    """A generated v013 file reshaped to an older flow version's widths (cells cut from the end,
    so every stable prefix keeps its values)."""
    out = []
    for line in lines:
        rec = line[:3]
        if rec == "AAA":
            line = line.replace("|S0142013|", f"|S0142{version}|", 1)
        elif rec in OLDER:
            cells = line.split("|")[: OLDER[rec]]
            if rec == "BP7":
                cells[18:21] = ["x1", "", "x3"]
            line = "|".join(cells) + "|"
        out.append(line)
    return out


def test_an_older_flow_version_loads_its_stable_prefix_and_keeps_the_rest(tmp_path, wh, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    old = older_shaped(lines)
    path = write_lines(tmp_path, old, NORMAL_DAY, "SF")

    parsed = read_s0142(path)
    assert (parsed.flow_version, parsed.layout) == ("011", "unknown:011")
    assert any("layout = unknown:011" in w and "not loaded: BPI" in w for w in parsed.warnings)
    new = read_s0142(write_lines(tmp_path / "new", lines, NORMAL_DAY, "SF"))
    old_bp7, new_bp7 = parsed.tables["bp7"].to_pylist(), new.tables["bp7"].to_pylist()
    assert len(old_bp7) == len(new_bp7) > 0
    for o, n in zip(old_bp7, new_bp7):
        # fields 1-17 exactly as the newer file has them
        for name in ("bm_unit_id", "lead_party_id", "settlement_period", "fpn_mwh", "metered_volume_mwh",
                     "transmission_loss_multiplier", "trading_unit", "supplier_non_bm_absvd_volume_mwh"):
            assert o[name] == n[name], name
        # P415 metrics the version predates are NULL, never zero
        assert o["supplier_compensation_volume_mwh"] is None and o["supplier_compensation_cashflow_gbp"] is None
        assert json.loads(o["extra_fields"]) == ["x1", None, "x3"]
        assert o["flow_version"] == "011"
    spi = parsed.tables["spi"].to_pylist()[0]
    assert spi["system_buy_price_gbp_per_mwh"] == new.tables["spi"].to_pylist()[0]["system_buy_price_gbp_per_mwh"]
    assert spi["supplier_sourcing_cost_gbp_per_mwh"] is None and len(json.loads(spi["extra_fields"])) == 48
    apc = parsed.tables["apc"].to_pylist()[0]
    assert apc["vlp_compensation_cashflow_gbp"] is None and len(json.loads(apc["extra_fields"])) == 2
    assert "bpi" not in parsed.tables

    result = load_file(wh, path)
    assert result.status == "loaded"
    assert wh.query_rows(f"SELECT flow_version, layout FROM {MANIFEST.name}") == [
        {"flow_version": "011", "layout": "unknown:011"}]
    assert wh.scalar(f"SELECT COUNT(*) FROM {BPI.name}") == 0
    assert wh.scalar(f"SELECT COUNT(*) FROM {BP7.name} WHERE supplier_compensation_volume_mwh IS NULL "
                     f"AND json_extract_string(extra_fields, '$[2]') = 'x3'") == len(old_bp7)
    r1, _ = s0142_lines(NORMAL_DAY, "R1", units)
    assert load_file(wh, write_lines(tmp_path / "r1", r1, NORMAL_DAY, "R1")).status == "loaded"
    layouts = {r["settlement_run"]: r["layouts"] for r in collect_status(wh).p114}
    assert layouts == {"SF": "unknown:011", "R1": "013"}


def test_widths_matching_a_known_layout_never_promote_an_unknown_version(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    lines[0] = lines[0].replace("|S0142013|", "|S0142012|")
    parsed = read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert parsed.layout == "unknown:012"
    bp7 = parsed.tables["bp7"].to_pylist()[0]
    assert bp7["supplier_compensation_volume_mwh"] is None
    assert len(json.loads(bp7["extra_fields"])) == 25 - 17


def test_version_013_with_older_widths_fails_naming_line_record_version_and_width(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    bad = older_shaped(lines, version="013")
    with pytest.raises(S0142Error) as info:
        read_s0142(write_lines(tmp_path, bad, NORMAL_DAY, "SF"))
    err = info.value
    rec = bad[err.line - 1][:3]
    assert rec in OLDER and err.field == "field count"
    assert err.reason.startswith(f"{rec} record has {OLDER[rec]} fields, expected ")
    assert "for flow version S0142013" in err.reason


def test_a_width_change_in_a_record_type_we_do_not_load_is_caught(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    lines = [line + "extra|" if line.startswith("MEL|") else line for line in lines]
    with pytest.raises(S0142Error, match="MEL record has 6 fields, expected 5 for flow version S0142013") as info:
        read_s0142(write_lines(tmp_path, lines, NORMAL_DAY, "SF"))
    assert lines[info.value.line - 1].startswith("MEL|")


def test_an_unknown_version_whose_prefix_is_not_where_the_reference_says_is_refused(tmp_path, wh, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    old = older_shaped(lines, version="009")
    i = next(i for i, line in enumerate(old) if line.startswith("BP7|"))
    cells = old[i].split("|")
    cells[12] = "-1250.5"  # a volume where v013 has the TLM: a field inserted before it in this version
    old[i] = "|".join(cells)
    path = write_lines(tmp_path, old, NORMAL_DAY, "SF")
    with pytest.raises(S0142Error, match="does not look like a TLM") as info:
        read_s0142(path)
    assert (info.value.line, info.value.field) == (i + 1, "transmission_loss_multiplier (BP7 12)")
    assert load_file(wh, path).status == "failed"


def test_inspect_prints_version_counts_and_widths_of_any_file(tmp_path, units):
    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    info = inspect_s0142(write_lines(tmp_path, older_shaped(lines), NORMAL_DAY, "SF"))
    assert (info["flow_version"], info["layout"], info["records"]) == ("011", "unknown:011", len(lines))
    by_rec = {r["record"]: r for r in info["record_types"]}
    assert by_rec["BP7"]["width"] == 21 and by_rec["SSD"]["width"] == 75 and by_rec["BPI"]["loaded"] is False
    assert by_rec["BP7"]["records"] == sum(line.startswith("BP7|") for line in lines)
    known = inspect_s0142(write_lines(tmp_path / "013", older_shaped(lines, "013"), NORMAL_DAY, "SF"))
    assert {r["record"]: r["check"] for r in known["record_types"]}["BP7"] == "DIFFERS"


def test_p114_inspect_command_prints_the_layout_and_the_widths(tmp_path, units):
    from click.testing import CliRunner

    from run import cli

    lines, _ = s0142_lines(NORMAL_DAY, "SF", units)
    path = write_lines(tmp_path, older_shaped(lines), NORMAL_DAY, "SF")
    result = CliRunner().invoke(cli, ["p114", "inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert f"{path.name}: flow version S0142011, layout unknown:011, {len(lines):,} records" in result.output
    assert "BP7" in result.output and "21" in result.output
    missing = CliRunner().invoke(cli, ["p114", "inspect", str(tmp_path / "nope.gz")])
    assert missing.exit_code == 1 and "nope.gz: no such file" in missing.output
