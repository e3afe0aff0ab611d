"""The warehouse contract, run on both backends: DuckDB (embedded) and BigQuery (the emulator).

Keyed writes skip rows whose key exists (or repeats in the batch), a write is all or nothing,
deletes and inserts share one transaction, schema evolution adds nullable columns, and
``@name`` parameters (including lists, empty lists and NULLs) mean the same on both engines.
"""

from __future__ import annotations

import datetime as dt
import json

import pyarrow as pa
import pytest

from core.errors import DataRejected, WarehouseUnavailable
from warehouse import WarehouseError, connect
from warehouse.base import Batch, Delete, Replace
from warehouse.schema import Column, Table

UTC = dt.timezone.utc
THINGS = Table(
    "things",
    (Column("day", "DATE"), Column("unit", "STRING"), Column("volume", "FLOAT64"), Column("n", "INT64"),
     Column("at", "TIMESTAMP"), Column("ok", "BOOL"), Column("detail", "JSON")),
    partition_by="day",
    cluster_by=("unit",),
)
D1, D2 = dt.date(2024, 3, 31), dt.date(2024, 10, 27)


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def any_wh(request):
    wh = request.getfixturevalue("wh" if request.param == "duckdb" else "bq")
    wh.ensure_tables([THINGS])
    return wh


def things(*rows) -> pa.Table:
    keys = ["day", "unit", "volume", "n", "at", "ok", "detail"]
    return THINGS.conform(pa.Table.from_pylist([dict(zip(keys, r)) for r in rows]))


def stored(wh) -> list[tuple]:
    got = wh.query_rows(f"SELECT day, unit, volume, n, ok FROM {wh.ref('things')} ORDER BY day, unit, volume")
    return [tuple(r.values()) for r in got]


def test_keyed_write_skips_existing_keys_and_repeats_within_the_batch(any_wh):
    at = dt.datetime(2024, 3, 31, 1, 30, tzinfo=UTC)
    first = things((D1, "V__A", 1.0, 1, at, True, '{"a": 1}'), (D1, "V__A", 9.0, 9, at, True, None),
                   (D1, "2__B", 2.0, 2, at, False, None))
    assert any_wh.write([Batch("things", first, key=("day", "unit"), prune="day")]) == {"things": 2}
    again = things((D1, "V__A", 5.0, 5, at, True, None), (D2, "V__A", 3.0, 3, at, None, "[1, 2]"))
    assert any_wh.write([Batch("things", again, key=("day", "unit"), prune="day")]) == {"things": 1}
    assert stored(any_wh) == [(D1, "2__B", 2.0, 2, False), (D1, "V__A", 1.0, 1, True), (D2, "V__A", 3.0, 3, None)]


def test_a_null_key_part_matches_a_null(any_wh):
    batch = things((None, "X", 1.0, 1, None, None, None))
    assert any_wh.write([Batch("things", batch, key=("day", "unit"), prune="day")]) == {"things": 1}
    assert any_wh.write([Batch("things", batch, key=("day", "unit"), prune="day")]) == {"things": 0}


def test_unkeyed_write_appends_everything(any_wh):
    batch = things((D1, "A", 1.0, 1, None, None, None), (D1, "A", 1.0, 1, None, None, None))
    assert any_wh.write({"things": batch}) == {"things": 2}
    assert any_wh.write({"things": batch}) == {"things": 2}
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('things')}") == 4


def test_deletes_and_inserts_land_together(any_wh):
    any_wh.write({"things": things((D1, "A", 1.0, 1, None, None, None), (D2, "B", 2.0, 2, None, None, None))})
    written = any_wh.write({"things": things((D1, "C", 3.0, 3, None, None, None))},
                           deletes=[Delete("things", "day", D1)])
    assert written == {"things": 1}
    assert [r[1] for r in stored(any_wh)] == ["C", "B"]
    any_wh.write([], deletes=[Delete("things")])
    assert stored(any_wh) == []


def test_a_failing_batch_rolls_back_the_whole_write(any_wh):
    any_wh.write({"things": things((D1, "A", 1.0, 1, None, None, None))})

    def batches():
        yield Batch("things", things((D2, "B", 2.0, 2, None, None, None)))
        raise RuntimeError("parser failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        any_wh.write(batches(), deletes=[Delete("things")])
    assert [r[1] for r in stored(any_wh)] == ["A"]
    # a batch the engine rejects (a column the table does not have) also leaves nothing behind
    bad = pa.table({"day": [D2], "no_such_column": [1]})
    with pytest.raises(WarehouseError):
        any_wh.write([("things", things((D2, "C", 1.0, 1, None, None, None))), ("things", bad)])
    assert [r[1] for r in stored(any_wh)] == ["A"]


def test_schema_evolution_adds_a_nullable_column(any_wh):
    any_wh.write({"things": things((D1, "A", 1.0, 1, None, None, None))})
    wider = Table("things", (*THINGS.columns, Column("note", "STRING")), partition_by="day", cluster_by=("unit",))
    any_wh.ensure_tables([wider])
    assert any_wh.logical_columns("things")["note"] == "STRING"
    any_wh.write({"things": wider.conform(pa.table({"day": [D2], "unit": ["B"], "note": ["new"]}))})
    got = any_wh.query_rows(f"SELECT unit, note FROM {any_wh.ref('things')} ORDER BY unit")
    assert got == [{"unit": "A", "note": None}, {"unit": "B", "note": "new"}]


def test_logical_types_and_values_round_trip(any_wh):
    at = dt.datetime(2024, 10, 27, 1, 30, 15, 123456, tzinfo=UTC)
    any_wh.write({"things": things((D2, "V__A", 0.1 + 0.2, 2**53, at, True, '{"k": [1, "x"]}'))})
    assert any_wh.logical_columns("things") == {"day": "DATE", "unit": "STRING", "volume": "FLOAT64", "n": "INT64",
                                                "at": "TIMESTAMP", "ok": "BOOL", "detail": "JSON"}
    row = any_wh.query_rows(f"SELECT * FROM {any_wh.ref('things')}")[0]
    assert row["day"] == D2 and row["volume"] == 0.1 + 0.2 and row["n"] == 2**53 and row["ok"] is True
    assert row["at"] == at and row["at"].utcoffset() == dt.timedelta(0)
    assert json.loads(row["detail"]) == {"k": [1, "x"]}


@pytest.mark.parametrize("ids, expected", [(["V__A", "T_B"], 2), ([], 0), (["nope"], 0)])
def test_list_parameters_including_an_empty_list(any_wh, ids, expected):
    any_wh.write({"things": things((D1, "V__A", 1.0, 1, None, None, None), (D1, "T_B", 1.0, 1, None, None, None),
                                   (D2, "V__A", 1.0, 1, None, None, None))})
    sql = (f"SELECT COUNT(*) AS n FROM {any_wh.ref('things')} "
           f"WHERE day BETWEEN @first AND @last AND {any_wh.in_list('unit', 'ids')}")
    assert any_wh.scalar(sql, {"first": D1, "last": D1, "ids": ids, "unused": 1}) == expected


def test_parameters_never_become_sql(any_wh):
    any_wh.write({"things": things((D1, "A", 1.0, 1, None, None, None))})
    hostile = "A' OR '1'='1"
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('things')} WHERE unit = @u", {"u": hostile}) == 0
    # a literal that looks like a parameter is left alone
    assert any_wh.scalar("SELECT '@u' AS s", {"u": "x"}) == "@u"


def test_table_names_lists_tables_and_views(any_wh):
    any_wh.execute(f"CREATE OR REPLACE VIEW {any_wh.ref('things_view')} AS SELECT unit FROM {any_wh.ref('things')}")
    assert {"things", "things_view"} <= any_wh.table_names()
    assert any_wh.table_columns("missing") is None


# ---------------------------------------------------------------------------------------- BigQuery only
@pytest.mark.bigquery
def test_bigquery_tables_are_partitioned_clustered_and_typed_explicitly(bq):
    bq.ensure_tables([THINGS])
    table = bq.client.get_table(f"{bq.project}.{bq.dataset}.things")
    assert table.time_partitioning.field == "day" and table.time_partitioning.type_ == "DAY"
    assert table.clustering_fields == ["unit"]
    assert [(f.name, f.field_type, f.mode) for f in table.schema][:3] == [
        ("day", "DATE", "NULLABLE"), ("unit", "STRING", "NULLABLE"), ("volume", "FLOAT", "NULLABLE")]


@pytest.mark.bigquery
def test_bigquery_writes_use_load_jobs_and_leave_no_staging_tables(bq, monkeypatch):
    bq.ensure_tables([THINGS])
    client = bq.client
    monkeypatch.setattr(client, "insert_rows", lambda *a, **k: pytest.fail("streaming insert used"))
    monkeypatch.setattr(client, "insert_rows_json", lambda *a, **k: pytest.fail("streaming insert used"))
    bq.write([Batch("things", things((D1, "A", 1.0, 1, None, None, '{"x": 1}')), key=("day", "unit"), prune="day")])
    with pytest.raises(WarehouseError):
        bq.write([("things", things((D2, "B", 1.0, 1, None, None, None))), ("things", pa.table({"zzz": [1]}))])
    listed = sorted(t.table_id for t in client.list_tables(f"{bq.project}.{bq.dataset}"))
    assert listed == ["things", "warehouse_objects"]  # the table and the registry of what the project made
    jobs = [j.job_type for j in client.list_jobs()]
    assert "load" in jobs


@pytest.mark.bigquery
def test_bigquery_dry_run_reports_bytes_without_running(bq):
    bq.ensure_tables([THINGS])
    bq.write({"things": things((D1, "A", 1.0, 1, None, None, None))})
    scanned = bq.dry_run(f"SELECT SUM(volume) FROM {bq.ref('things')} WHERE day BETWEEN @a AND @b",
                         {"a": D1, "b": D1})
    assert isinstance(scanned, int) and scanned >= 0  # the emulator bills nothing; BigQuery says the real figure


def test_bigquery_urls_are_checked_before_any_connection():
    with pytest.raises(WarehouseError, match="bigquery://PROJECT/DATASET"):
        connect("bigquery://only-a-project")
    with pytest.raises(WarehouseError, match="bigquery://PROJECT/DATASET"):
        connect("bigquery://Bad_Project/data")
    wh = connect("bigquery://my-project/elexon")
    assert (wh.project, wh.dataset, wh.dialect) == ("my-project", "elexon", "bigquery")
    assert wh.ref("p114_file_manifest") == "`my-project.elexon.p114_file_manifest`"
    with pytest.raises(ValueError):
        wh.ref("x; DROP TABLE y")


# ---------------------------------------------------------------------------------------- latest wins
READINGS = Table("readings", (Column("unit", "STRING"), Column("value", "FLOAT64"), Column("detail", "JSON"),
                              Column("_message_id", "STRING"), Column("_version", "TIMESTAMP")))
READINGS_HISTORY = Table("readings_history", READINGS.columns + (Column("_replaced_by", "STRING"),
                                                                 Column("_replaced_at", "TIMESTAMP")))
LATEST = Replace("_version", "readings_history", compare=("value", "detail"))
T1, T2, T3 = (dt.datetime(2026, 5, 6, h, tzinfo=UTC) for h in (1, 2, 3))


def readings(*rows) -> pa.Table:
    return READINGS.conform(pa.Table.from_pylist(
        [dict(zip(["unit", "value", "detail", "_message_id", "_version"], r)) for r in rows]))


def write_readings(wh, *rows) -> dict:
    return wh.write([Batch("readings", readings(*rows), key=("unit",), replace=LATEST)])


@pytest.fixture
def latest_wh(any_wh):
    any_wh.ensure_tables([READINGS, READINGS_HISTORY])
    return any_wh


def current(wh) -> list[tuple]:
    return [tuple(r.values()) for r in wh.query_rows(
        f"SELECT unit, value, _message_id FROM {wh.ref('readings')} ORDER BY unit")]


def history(wh) -> list[tuple]:
    return [tuple(r.values()) for r in wh.query_rows(
        f"SELECT unit, value, _message_id, _replaced_by FROM {wh.ref('readings_history')} ORDER BY _message_id")]


def test_latest_wins_a_newer_version_replaces_the_row_and_the_old_one_is_kept(latest_wh):
    write_readings(latest_wh, ("A", 1000.0, None, "m1", T1), ("B", 5.0, '{"x": 1}', "m1", T1))
    written = write_readings(latest_wh, ("A", 1500.0, None, "m2", T2), ("B", 5.0, '{"x": 1}', "m2", T2))
    assert current(latest_wh) == [("A", 1500.0, "m2"), ("B", 5.0, "m1")]  # B identical: nothing changes
    assert history(latest_wh) == [("A", 1000.0, "m1", "m2")]
    assert written["readings"] == 1 and written["readings#replaced"] == 1 and written["readings_history"] == 1


def test_latest_wins_an_older_version_arriving_late_goes_to_history_only(latest_wh):
    write_readings(latest_wh, ("A", 1500.0, None, "m2", T2))
    written = write_readings(latest_wh, ("A", 1000.0, None, "m1", T1))
    assert current(latest_wh) == [("A", 1500.0, "m2")]
    assert history(latest_wh) == [("A", 1000.0, "m1", "m2")]
    assert written.get("readings", 0) == 0 and written["readings#stale"] == 1


def test_latest_wins_inside_one_batch_the_newest_row_of_a_key_wins(latest_wh):
    write_readings(latest_wh, ("A", 2.0, None, "m2", T2), ("A", 3.0, None, "m3", T3), ("A", 1.0, None, "m1", T1),
                   ("A", 3.0, None, "m3b", T3))
    assert current(latest_wh) == [("A", 3.0, "m3b")]  # ties go to the later row
    assert history(latest_wh) == [("A", 1.0, "m1", "m3b"), ("A", 2.0, "m2", "m3b")]  # identical m3 dropped


def test_latest_wins_json_values_compare_by_content(latest_wh):
    write_readings(latest_wh, ("A", 1.0, '{"a": [1, 2]}', "m1", T1))
    write_readings(latest_wh, ("A", 1.0, '{"a": [1, 3]}', "m2", T2))
    assert current(latest_wh) == [("A", 1.0, "m2")] and len(history(latest_wh)) == 1


# ---------------------------------------------------------------------------------------- error kinds
def test_a_batch_the_warehouse_cannot_bind_is_data_rejected_and_nothing_is_written(any_wh):
    good = things((D1, "V__A", 1.0, 1, None, True, None))
    odd = pa.table({"day": [D1], "no_such_column": ["x"]})
    with pytest.raises(DataRejected):
        any_wh.write([Batch("things", good), Batch("things", odd)])
    assert stored(any_wh) == []


def test_a_query_with_bad_sql_is_a_plain_warehouse_error_not_an_outage(any_wh):
    with pytest.raises(WarehouseError) as caught:
        any_wh.query("SELEC 1")
    assert not isinstance(caught.value, (DataRejected, WarehouseUnavailable))


def test_an_integer_column_widens_to_float_keeping_its_values(any_wh):
    any_wh.write([Batch("things", things((D1, "A", 1.0, 7, None, None, None)))])
    any_wh.widen_column("things", "n", "FLOAT64")
    assert any_wh.logical_columns("things")["n"] == "FLOAT64"
    any_wh.write([Batch("things", THINGS.conform(pa.table({"day": [D1], "unit": ["B"]})).set_column(
        3, "n", pa.array([5.7])))])
    assert [r["n"] for r in any_wh.query_rows(f"SELECT n FROM {any_wh.ref('things')} ORDER BY unit")] == [7.0, 5.7]


def test_duckdb_tolerates_a_failed_rollback_and_reports_the_original_error(wh, monkeypatch):
    import duckdb

    wh.ensure_tables([THINGS])

    class Failing:
        """A connection whose commit fails as a full disk makes it fail, and whose rollback then fails too."""

        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            if sql == "COMMIT":
                self.con.execute("ROLLBACK")
                raise duckdb.IOException("Could not write all bytes to file: No space left on device")
            if sql == "ROLLBACK":
                raise duckdb.TransactionException("cannot rollback - no transaction is active")
            return self.con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self.con, name)

    wh._con = Failing(wh.con)
    with pytest.raises(WarehouseUnavailable, match="No space left"):
        wh.write([Batch("things", things((D1, "A", 1.0, 1, None, None, None)))])
    assert wh._con is None  # dropped: the next use reopens the file
    assert stored(wh) == []
