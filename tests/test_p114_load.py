"""Loading S0142 files: idempotent, one transaction per file, manifest, canonical best-run views."""

from __future__ import annotations

import datetime as dt
import json

from ingest.p114.generate import default_created_at, sample_units, write_s0142
from ingest.p114.load import load_file
from ingest.p114.s0142 import read_s0142
from ingest.p114.tables import BPI, MANIFEST
from tests.conftest import LONG_DAY, NORMAL_DAY

SMALL = sample_units(6, 3, seed=11)


def test_loading_a_file_fills_every_table_and_its_manifest_row(tmp_path, wh):
    path = write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11)
    result = load_file(wh, path)
    parsed = read_s0142(path)

    assert result.status == "loaded" and result.records == parsed.records
    for key, table in parsed.tables.items():
        name = f"elexon_p114_s0142_{key}"
        assert wh.scalar(f"SELECT COUNT(*) FROM {name}") == table.num_rows
    manifest = wh.query_rows(f"SELECT * FROM {MANIFEST.name}")
    assert len(manifest) == 1
    row = manifest[0]
    assert row["file_name"] == path.name
    assert (row["settlement_date"], row["settlement_run"]) == (NORMAL_DAY, "SF")
    assert row["file_created_at"] == default_created_at(NORMAL_DAY, "SF")
    assert row["sha256"] == parsed.sha256 and row["size_bytes"] == path.stat().st_size
    assert row["records"] == parsed.records and row["periods"] == 48
    assert json.loads(row["record_counts"]) == parsed.record_counts
    assert json.loads(row["rows_loaded"])["elexon_p114_s0142_bp7"] == 6 * 48
    assert row["loaded_at"] is not None


def test_bpi_table_has_the_documented_columns_and_types(tmp_path, wh):
    load_file(wh, write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11))
    columns = wh.table_columns(BPI.name)
    assert list(columns) == [
        "settlement_date", "settlement_period", "settlement_run", "file_created_at", "bm_unit_id", "trading_unit",
        "fpn_mwh", "metered_volume_mwh", "transmission_loss_multiplier", "absvd_mwh", "flow_version", "source_file",
        "source_line",
    ]
    assert columns["settlement_date"] == "DATE"
    assert columns["settlement_period"] == "BIGINT"
    assert columns["file_created_at"] == "TIMESTAMP"
    assert columns["metered_volume_mwh"] == "DOUBLE"


def test_loading_the_same_file_again_is_a_no_op_that_says_so(tmp_path, wh):
    path = write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11)
    assert load_file(wh, path).status == "loaded"
    again = load_file(wh, path)
    assert again.status == "skipped"
    assert "already loaded" in again.describe()
    assert wh.scalar("SELECT COUNT(*) FROM elexon_p114_s0142_bpi") == 6 * 48
    assert wh.scalar(f"SELECT COUNT(*) FROM {MANIFEST.name}") == 1


def test_a_different_file_under_a_loaded_name_is_skipped_with_a_warning(tmp_path, wh):
    path = write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11)
    load_file(wh, path)
    write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=12)  # same name, other content
    again = load_file(wh, path)
    assert again.status == "skipped" and "content differs" in again.describe()


def test_force_replaces_a_loaded_file_in_one_go(tmp_path, wh):
    path = write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11)
    load_file(wh, path)
    write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=12)
    assert load_file(wh, path, force=True).status == "loaded"
    assert wh.scalar("SELECT COUNT(*) FROM elexon_p114_s0142_bpi") == 6 * 48
    assert wh.scalar(f"SELECT COUNT(*) FROM {MANIFEST.name}") == 1
    assert wh.scalar(f"SELECT sha256 FROM {MANIFEST.name}") == read_s0142(path).sha256


def _canonical(wh):
    return wh.query_rows(
        "SELECT settlement_date, settlement_run, file_created_at, COUNT(*) AS n "
        "FROM p114_settlement_canonical GROUP BY ALL ORDER BY settlement_date"
    )


def test_canonical_view_takes_the_most_authoritative_run_whatever_the_creation_order(tmp_path, wh):
    # stamps deliberately out of order: precedence, not recency, decides between runs
    stamp = dt.datetime(2025, 1, 1, 12)
    for i, run in enumerate(["DF", "RF", "R3", "R2", "R1", "SF", "II"]):
        load_file(wh, write_s0142(tmp_path, NORMAL_DAY, run, units=SMALL, created_at=stamp + dt.timedelta(hours=i)))
    assert [(r["settlement_run"], r["n"]) for r in _canonical(wh)] == [("DF", 6 * 48)]

    wh.execute("DELETE FROM p114_file_manifest WHERE settlement_run = 'DF'")
    assert _canonical(wh)[0]["settlement_run"] == "RF"
    wh.execute("DELETE FROM p114_file_manifest WHERE settlement_run IN ('RF', 'R3', 'R2')")
    assert _canonical(wh)[0]["settlement_run"] == "R1"


def test_two_files_of_the_same_run_the_later_creation_stamp_wins(tmp_path, wh):
    early = default_created_at(LONG_DAY, "SF")
    late = early + dt.timedelta(days=1)
    load_file(wh, write_s0142(tmp_path, LONG_DAY, "SF", units=SMALL, seed=11, created_at=late))
    load_file(wh, write_s0142(tmp_path, LONG_DAY, "SF", units=SMALL, seed=12, created_at=early))
    rows = _canonical(wh)
    assert [(r["settlement_run"], r["file_created_at"], r["n"]) for r in rows] == [("SF", late, 6 * 50)]


def test_canonical_view_has_one_row_per_date_period_unit_with_the_chosen_files_values(tmp_path, wh):
    chosen = write_s0142(tmp_path, NORMAL_DAY, "R1", units=SMALL, seed=11)
    load_file(wh, write_s0142(tmp_path, NORMAL_DAY, "II", units=SMALL, seed=11))
    load_file(wh, chosen)
    load_file(wh, write_s0142(tmp_path, LONG_DAY, "II", units=SMALL, seed=11))

    assert wh.table_columns("p114_settlement_canonical") == wh.table_columns(BPI.name)
    dupes = wh.scalar(
        "SELECT COUNT(*) FROM (SELECT settlement_date, settlement_period, bm_unit_id, COUNT(*) AS n "
        "FROM p114_settlement_canonical GROUP BY ALL HAVING COUNT(*) > 1)"
    )
    assert dupes == 0
    assert [(r["settlement_date"], r["settlement_run"], r["n"]) for r in _canonical(wh)] == [
        (NORMAL_DAY, "R1", 6 * 48), (LONG_DAY, "II", 6 * 50)
    ]
    expected = sorted(
        (r["settlement_period"], r["bm_unit_id"], r["metered_volume_mwh"])
        for r in read_s0142(chosen).tables["bpi"].to_pylist()
    )
    got = sorted(
        (r["settlement_period"], r["bm_unit_id"], r["metered_volume_mwh"])
        for r in wh.query_rows(
            "SELECT * FROM p114_settlement_canonical WHERE settlement_date = @d", {"d": NORMAL_DAY}
        )
    )
    assert got == expected


def test_canonical_views_exist_for_every_p114_table(tmp_path, wh):
    load_file(wh, write_s0142(tmp_path, NORMAL_DAY, "II", units=SMALL, seed=11))
    load_file(wh, write_s0142(tmp_path, NORMAL_DAY, "SF", units=SMALL, seed=11))
    for view, table in [("p114_bp7_canonical", "elexon_p114_s0142_bp7"), ("p114_bo4_canonical", "elexon_p114_s0142_bo4"),
                        ("p114_system_prices_canonical", "elexon_p114_s0142_spi"),
                        ("p114_apc_canonical", "elexon_p114_s0142_apc")]:
        runs = {r["settlement_run"] for r in wh.query_rows(f"SELECT DISTINCT settlement_run FROM {view}")}
        assert runs <= {"SF"}, view
        assert wh.scalar(f"SELECT COUNT(*) FROM {view}") * 2 == wh.scalar(f"SELECT COUNT(*) FROM {table}"), view
