"""``import legacy``: the user's own IRIS tables (camelCase STRING columns, their bookkeeping) brought
into the project's tables in SQL, typed, deduplicated with what IRIS loaded, bad rows quarantined;
resumable by chunk. DuckDB and BigQuery (the emulator)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.errors import ArgumentError
from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader
from ingest.legacy import LEGACY_IMPORTS, import_legacy
from tests.test_ownership import LEGACY_FREQ, make_legacy_table

UTC = dt.timezone.utc


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def any_wh(request):
    return request.getfixturevalue("wh" if request.param == "duckdb" else "bq")


def legacy_row(time: str, frequency: str, ingested: str, key: str) -> list:
    return [time, frequency, "FREQ", "FREQ", "", "", ingested, "", "stream", "", key]


ROWS = [
    legacy_row("2026-05-07T23:59:45Z", "49.9", "2026-05-08T00:00:10Z", "a"),  # IRIS has it: kept as IRIS stored it
    legacy_row("2026-05-08T00:00:00Z", "50.01", "2026-05-08T00:01:00Z", "b"),  # an older copy of the next row
    legacy_row("2026-05-08T00:00:00Z", "50.02", "2026-05-08T00:05:00Z", "c"),  # the newest copy: imported
    legacy_row("yesterday", "50.0", "2026-05-08T00:06:00Z", "d"),  # quarantined: the time
    legacy_row("2026-05-08T00:00:15Z", "fifty", "2026-05-08T00:06:00Z", "e"),  # quarantined: the frequency
    legacy_row("2026-05-09 00:00:30 UTC", "50.03", "2026-05-09T00:01:00Z", "f"),  # BigQuery's format: imported
]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def iris_row(wh) -> None:
    rows = [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45.000Z", "frequency": 50.017}]
    IrisLoader(wh).load([Message("m-1", json.dumps(json.dumps(rows)).encode(), "FREQ", "iris")])


def stored(wh) -> list[tuple]:
    return [(r["measurement_time"], r["frequency"], r["_source"]) for r in wh.query_rows(
        f"SELECT measurement_time, frequency, _source FROM {wh.ref('bmrs_freq')} ORDER BY measurement_time")]


def test_a_legacy_table_comes_in_typed_deduplicated_with_iris_and_its_bad_rows_quarantined(any_wh):
    make_legacy_table(any_wh, "legacy_bmrs_freq", LEGACY_FREQ[:2] + ["_ingested_utc"])
    for t, f, ingested, _ in [(r[0], r[1], r[6], r[10]) for r in ROWS]:
        any_wh.execute(f"INSERT INTO {any_wh.ref('legacy_bmrs_freq')} VALUES ('{t}', "
                       f"{f if _number(f) else 'NULL'}, '{ingested}')")
    iris_row(any_wh)
    result = import_legacy(any_wh, "legacy_bmrs_freq", "FREQ")
    assert result.mapped == {"measurement_time": "measurementTime", "frequency": "frequency"}
    assert (result.total("rows_read"), result.total("imported"), result.total("skipped"),
            result.total("quarantined")) == (6, 3, 2, 1)
    assert stored(any_wh) == [  # "fifty" was NULL in their FLOAT column: a reading without a value, as they had it
        (dt.datetime(2026, 5, 7, 23, 59, 45, tzinfo=UTC), 50.017, "iris"),
        (dt.datetime(2026, 5, 8, 0, 0, tzinfo=UTC), 50.02, "legacy"),
        (dt.datetime(2026, 5, 8, 0, 0, 15, tzinfo=UTC), None, "legacy"),
        (dt.datetime(2026, 5, 9, 0, 0, 30, tzinfo=UTC), 50.03, "legacy"),
    ]
    quarantined = any_wh.query_rows(f"SELECT message_id, dataset, source, reason, raw FROM {any_wh.ref('iris_quarantine')}")
    assert [(q["message_id"], q["dataset"], q["source"], q["reason"]) for q in quarantined] == [
        ("legacy:legacy_bmrs_freq", "FREQ", "legacy", "measurementTime: the value does not convert to TIMESTAMP")]
    assert "yesterday" in quarantined[0]["raw"]
    again = import_legacy(any_wh, "legacy_bmrs_freq", "FREQ")
    assert [c.already_done for c in again.chunks] == [True] and len(stored(any_wh)) == 4


def test_string_values_that_do_not_convert_are_quarantined_naming_the_field(any_wh):
    make_legacy_table(any_wh, "legacy_bmrs_freq", ["measurement_time", "frequency", "_hash_key"], numbers=())
    any_wh.execute(f"INSERT INTO {any_wh.ref('legacy_bmrs_freq')} VALUES ('2026-05-08T00:00:15Z', 'fifty', 'x'), "
                   f"('2026-05-08T00:00:30Z', '50.01', 'y')")
    with pytest.raises(ArgumentError, match="no column for the BOALF key field.s. bm_unit, acceptance_number, time_from"):
        import_legacy(any_wh, "legacy_bmrs_freq", "BOALF")
    result = import_legacy(any_wh, "legacy_bmrs_freq", "FREQ")
    assert result.missing == ["dataset"] and result.ignored == ["_hash_key"]
    assert (result.total("imported"), result.total("quarantined")) == (1, 1)
    assert any_wh.scalar(f"SELECT reason FROM {any_wh.ref('iris_quarantine')}") == (
        "frequency: the value does not convert to FLOAT64")
    assert stored(any_wh) == [(dt.datetime(2026, 5, 8, 0, 0, 30, tzinfo=UTC), 50.01, "legacy")]


def test_a_chunked_import_resumes_where_it_stopped_and_adds_nothing_twice(any_wh):
    make_legacy_table(any_wh, "legacy_bmrs_freq", ["measurementTime", "frequency", "_ingested_utc"])
    for day in range(3):
        any_wh.execute(f"INSERT INTO {any_wh.ref('legacy_bmrs_freq')} VALUES "
                       f"('2026-05-0{day + 1}T12:00:00Z', 50.0{day}, '2026-05-0{day + 1}T12:01:00Z'), "
                       f"('bad {day}', 50.0, '2026-05-0{day + 1}T12:01:00Z')")
    # on BigQuery, the legacy table named as dataset.table (it usually lives in a dataset of its own)
    source = "legacy_bmrs_freq" if any_wh.dialect == "duckdb" else f"{any_wh.dataset}.legacy_bmrs_freq"
    first = import_legacy(any_wh, source, "FREQ", chunk_days=1)
    assert [(c.chunk_from.day, c.imported, c.quarantined) for c in first.chunks] == [(1, 1, 3), (2, 1, 0), (3, 1, 0)]
    # a crash after the second chunk: its record and the third's are gone, the rows they wrote are not
    any_wh.execute(f"DELETE FROM {any_wh.ref(LEGACY_IMPORTS.name)} WHERE chunk_from > @t",
                   {"t": dt.datetime(2026, 5, 1, tzinfo=UTC)})
    resumed = import_legacy(any_wh, source, "FREQ", chunk_days=1)
    assert [(c.already_done, c.imported, c.skipped) for c in resumed.chunks] == [(True, 0, 0), (False, 0, 1), (False, 0, 1)]
    assert len(stored(any_wh)) == 3
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('iris_quarantine')}") == 3


#: the user's bmrs_boalf as exported: camelCase, numbers and flags as STRING, their bookkeeping beside
LEGACY_BOALF = ["dataset", "settlementDate", "settlementPeriodFrom", "settlementPeriodTo", "timeFrom", "timeTo",
                "levelFrom", "levelTo", "acceptanceNumber", "acceptanceTime", "deemedBoFlag", "soFlag",
                "amendmentFlag", "storFlag", "rrFlag", "nationalGridBmUnit", "bmUnit", "_ingested_utc", "_hash_key"]


def test_a_mapping_file_imports_each_table_from_the_command_line(tmp_path):
    from click.testing import CliRunner

    from run import cli
    from warehouse.duckdb import DuckDBWarehouse

    db = tmp_path / "w.duckdb"
    wh = DuckDBWarehouse(db)
    make_legacy_table(wh, "legacy_bmrs_boalf", LEGACY_BOALF, numbers=())
    make_legacy_table(wh, "legacy_bmrs_freq", ["measurementTime", "frequency"])
    wh.execute("INSERT INTO legacy_bmrs_boalf VALUES ('BOALF', '2025-01-06', '20', '20', '2025-01-06T09:30:00Z', "
               "'2025-01-06T09:35:00Z', '0', '-50', '1234', '2025-01-06T09:28:00Z', 'false', 'true', 'ORI', "
               "'false', 'false', 'FBPGM002', '2__FBPGM002', '2025-01-06T10:00:00Z', 'h')")
    wh.execute("INSERT INTO legacy_bmrs_freq VALUES ('2025-01-06T00:00:00Z', 49.99)")
    wh.close()
    mapping = tmp_path / "legacy.csv"
    mapping.write_text("table,dataset\nlegacy_bmrs_boalf,BOALF\nlegacy_bmrs_freq,freq\n")
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "import", "legacy", "--mapping", str(mapping)],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "legacy_bmrs_boalf -> bmrs_boalf (BOALF): 1 rows read, 1 imported, 0 skipped" in result.output
    assert "the newest copy of a key by: _ingested_utc" in result.output
    assert "not imported (not fields of the dataset): _hash_key" in result.output
    assert "legacy_bmrs_freq -> bmrs_freq (FREQ): 1 rows read, 1 imported" in result.output
    wh = DuckDBWarehouse(db)
    assert wh.query_rows("SELECT bm_unit, acceptance_number, level_to, so_flag, time_from, _source FROM bmrs_boalf") == [
        {"bm_unit": "2__FBPGM002", "acceptance_number": 1234, "level_to": -50, "so_flag": True,
         "time_from": dt.datetime(2025, 1, 6, 9, 30, tzinfo=UTC), "_source": "legacy"}]
    wh.close()


#: the user's P114 table: five fields of the S0142 BPI record, STRING values, and when they loaded it
P114_COLUMNS = ["settlementDate", "settlementPeriod", "settlementRunType", "bmUnitId", "meteredVolume", "_ingested_utc"]
P114_ROWS = [
    ("2025-01-06", "1", "RF", "V__AFLEX001", "-1.5", "2025-03-01T00:00:00Z"),  # an older copy of the next row
    ("2025-01-06", "1", "RF", "V__AFLEX001", "-1.75", "2025-03-02T00:00:00Z"),  # the newest copy: imported
    ("2025-01-06", "2", "rf ", "V__AFLEX001", "-2.0", "2025-03-02T00:00:00Z"),  # the run tidied: imported
    ("2025-01-06", "1", "SF", "V__AFLEX001", "-1.0", "2025-01-20T00:00:00Z"),  # another run of the date: imported
    ("2025-01-07", "1", "SF", "T_DRAX-1", "490.0", "2025-01-21T00:00:00Z"),  # the real SF file has it: skipped
    ("2025-01-07", "1", "R3", "T_DRAX-1", "480.0", "2025-05-01T00:00:00Z"),  # imported; the real file still wins
    ("2025-01-08", "51", "RF", "T_DRAX-1", "1.0", "2025-03-01T00:00:00Z"),  # quarantined: the period
    ("2025-01-08", "1", "XX", "T_DRAX-1", "1.0", "2025-03-01T00:00:00Z"),  # quarantined: the run
    ("soon", "1", "RF", "T_DRAX-1", "1.0", "2025-03-01T00:00:00Z"),  # quarantined: the date
]


def canonical(wh) -> list[tuple]:
    return [(str(r["settlement_date"]), r["settlement_period"], r["settlement_run"], r["bm_unit_id"],
             r["metered_volume_mwh"], r["source_file"]) for r in wh.query_rows(
        f"SELECT * FROM {wh.ref('p114_settlement_canonical')} "
        "ORDER BY settlement_date, settlement_period, bm_unit_id")]


def test_a_legacy_p114_table_comes_in_as_partial_bpi_rows_behind_real_files(any_wh, tmp_path):
    from ingest.p114.load import load_file
    from tests.s0142_builder import UnitSpec, write_file

    real = write_file(tmp_path, dt.date(2025, 1, 7), "SF", dt.datetime(2025, 1, 21, 9), [UnitSpec("T_DRAX-1", "DRAX", 500.0)])
    load_file(any_wh, real)
    make_legacy_table(any_wh, "legacy_p114", P114_COLUMNS, numbers=())
    for row in P114_ROWS:
        any_wh.execute(f"INSERT INTO {any_wh.ref('legacy_p114')} VALUES ({', '.join(repr(v) for v in row)})")

    result = import_legacy(any_wh, "legacy_p114", "s0142_bpi")
    assert (result.total("rows_read"), result.total("imported"), result.total("skipped"),
            result.total("quarantined")) == (9, 4, 2, 3)
    assert result.mapped == {"settlement_date": "settlementDate", "settlement_period": "settlementPeriod",
                             "settlement_run": "settlementRunType", "bm_unit_id": "bmUnitId",
                             "metered_volume_mwh": "meteredVolume"}
    assert "1 repeated in the legacy table (the newest copy kept, by _ingested_utc); 1 of 4 settlement date/run " \
           "pairs already loaded" in "\n".join(result.lines())
    rows = canonical(any_wh)
    assert [r for r in rows if r[0] == "2025-01-06"] == [  # RF outranks SF among legacy rows
        ("2025-01-06", 1, "RF", "V__AFLEX001", -1.75, "legacy:legacy_p114:2025-01-06:RF"),
        ("2025-01-06", 2, "RF", "V__AFLEX001", -2.0, "legacy:legacy_p114:2025-01-06:RF")]
    assert {(r[2], r[5]) for r in rows if r[0] == "2025-01-07"} == {("SF", real.name)}  # a real file beats legacy R3
    manifest = {(str(m["settlement_date"]), m["settlement_run"]): (m["layout"], m["periods"], m["records"], m["source"])
                for m in any_wh.query_rows(f"SELECT * FROM {any_wh.ref('p114_file_manifest')}")}
    assert manifest[("2025-01-06", "RF")] == ("legacy:partial", 2, 2, "legacy legacy_p114")
    assert manifest[("2025-01-07", "R3")] == ("legacy:partial", 1, 1, "legacy legacy_p114")
    assert manifest[("2025-01-07", "SF")][0] == "013"
    reasons = sorted(q["reason"] for q in any_wh.query_rows(
        f"SELECT reason FROM {any_wh.ref('iris_quarantine')} WHERE dataset = 'S0142_BPI'"))
    assert reasons == ["settlementDate: not a date", "settlementPeriod: not a settlement period 1..50",
                       "settlementRunType: not a settlement run (II, SF, R1, R2, R3, RF, DF)"]

    # killed after the rows went in but before their manifest rows: a re-run (by day) completes it, adds nothing
    any_wh.execute(f"DELETE FROM {any_wh.ref('p114_file_manifest')} WHERE layout = 'legacy:partial'")
    again = import_legacy(any_wh, "legacy_p114", "S0142_BPI", chunk_days=1)
    assert again.total("imported") == 0 and len(again.chunks) == 3  # 6, 7 and 8 January
    assert canonical(any_wh) == rows
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('p114_file_manifest')} WHERE layout = 'legacy:partial'") == 3
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('iris_quarantine')}") == 3


def test_a_legacy_p114_table_without_a_unit_column_is_refused_naming_it(wh):
    make_legacy_table(wh, "legacy_p114", ["settlementDate", "settlementPeriod", "settlementRunType", "meteredVolume"])
    with pytest.raises(ArgumentError, match=r"no column for bm_unit_id \(looked for bm_unit_id: bmunitid, bmunit"):
        import_legacy(wh, "legacy_p114", "S0142_BPI")
