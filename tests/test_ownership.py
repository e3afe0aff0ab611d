"""The project never alters, writes to, replaces or drops a table or view it did not create, on
DuckDB and on BigQuery (the emulator), beside tables in the user's own legacy layouts."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.errors import NotOurTable
from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader
from ingest.p114.load import load_file
from ingest.p114.tables import BPI, ensure_p114_schema
from reporting.reports import run_report
from tests.s0142_builder import UnitSpec, write_file
from warehouse.ownership import REGISTRY

#: the user's bmrs_freq, from their schema export: camelCase, every value a STRING, their bookkeeping
LEGACY_FREQ = ["measurementTime", "frequency", "dataset", "_dataset", "_window_from_utc", "_window_to_utc",
               "_ingested_utc", "_source_columns", "_source_api", "_hash_source_cols", "_hash_key"]
LEGACY_ROW = ["2025-01-01T00:00:00Z", 50.01, "FREQ", "FREQ", "", "", "2025-01-01T00:01:00Z", "", "stream", "", "k1"]
#: their P114 table: 5 fields of the S0142 BPI record
LEGACY_BPI = ["settlementDate", "settlementPeriod", "settlementRunType", "bmUnitId", "meteredVolume"]


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def any_wh(request):
    return request.getfixturevalue("wh" if request.param == "duckdb" else "bq")


def make_legacy_table(wh, name: str, columns: list[str], row: list | None = None, numbers=("frequency",)) -> None:
    """A table made by the user's own scripts (not through the project): STRING columns, FLOAT ``numbers``."""
    duck = wh.dialect == "duckdb"
    if not duck:
        wh._ensure_dataset()
    quote = (lambda c: f'"{c}"') if duck else (lambda c: f"`{c}`")  # noqa: E731
    text, number = ("VARCHAR", "DOUBLE") if duck else ("STRING", "FLOAT64")
    wh.execute(f"CREATE TABLE {wh.ref(name)} ("
               + ", ".join(f"{quote(c)} {number if c in numbers else text}" for c in columns) + ")")
    if row:
        values = ", ".join(repr(v) if isinstance(v, float) else f"'{v}'" for v in row)
        wh.execute(f"INSERT INTO {wh.ref(name)} VALUES ({values})")


def freq_message() -> Message:
    rows = [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45.000Z", "frequency": 50.017}]
    return Message("m-1", json.dumps(json.dumps(rows)).encode(), "FREQ", "iris")


def test_iris_refuses_the_users_table_of_the_same_name_and_leaves_it_as_it_was(any_wh):
    make_legacy_table(any_wh, "bmrs_freq", LEGACY_FREQ, LEGACY_ROW)
    before = any_wh.logical_columns("bmrs_freq")
    with pytest.raises(NotOurTable, match=r"bmrs_freq exists in .* as a table this project did not create "
                                          r"\(it has measurementTime STRING, frequency FLOAT64.*another BigQuery dataset or DuckDB file"):
        IrisLoader(any_wh).load([freq_message()])
    assert any_wh.logical_columns("bmrs_freq") == before  # no column added beside measurementTime
    assert any_wh.query_rows(f"SELECT measurementTime, _hash_key FROM {any_wh.ref('bmrs_freq')}") == [
        {"measurementTime": "2025-01-01T00:00:00Z", "_hash_key": "k1"}]
    assert not any_wh.query_rows(f"SELECT * FROM {any_wh.ref('iris_quarantine')}")  # never blamed on the message


def test_p114_refuses_the_users_five_field_table_before_touching_anything(any_wh, tmp_path):
    make_legacy_table(any_wh, BPI.name, LEGACY_BPI)
    path = write_file(tmp_path, dt.date(2025, 1, 6), "SF", dt.datetime(2025, 1, 30, 12), [UnitSpec("T_DRAX-1", "DRAX", 10.0)])
    with pytest.raises(NotOurTable, match="elexon_p114_s0142_bpi exists"):
        load_file(any_wh, path)
    assert list(any_wh.logical_columns(BPI.name)) == LEGACY_BPI


def test_the_users_view_of_the_same_name_is_never_replaced(any_wh):
    ensure_p114_schema(any_wh)  # our tables, recorded
    make_legacy_table(any_wh, "their_revenue", ["bmUnit", "revenue"])
    any_wh.execute(f"CREATE VIEW {any_wh.ref('mart_vlp_revenue_p114')} AS SELECT bmUnit FROM {any_wh.ref('their_revenue')}")
    with pytest.raises(NotOurTable, match="mart_vlp_revenue_p114 exists .* as a view this project did not create "
                                          r"\(its definition reads tables the project does not own\)"):
        run_report(any_wh, "vlp_revenue")
    assert "their_revenue" in any_wh.object_info("mart_vlp_revenue_p114")[1]


def test_tables_and_views_of_an_earlier_version_are_adopted_and_recorded(any_wh, caplog):
    # an earlier version made BPI without the registry and without its newest column
    older = BPI.__class__(BPI.name, BPI.columns[:-1], BPI.description)
    any_wh.create_table(older)
    any_wh.execute(f"CREATE VIEW {any_wh.ref('p114_settlement_canonical')} AS SELECT * FROM {any_wh.ref(BPI.name)}")
    ensure_p114_schema(any_wh)
    assert any_wh.logical_columns(BPI.name) == {c.name: c.type for c in BPI.columns}  # the new column added
    recorded = {r["name"]: (r["kind"], r["adopted"]) for r in any_wh.read_rows(REGISTRY.name)}
    assert recorded[BPI.name] == ("table", True)
    assert recorded["p114_settlement_canonical"] == ("view", True)
    assert recorded["elexon_p114_s0142_bp7"] == ("table", False)
    assert "adopting table elexon_p114_s0142_bpi" in caplog.text


def test_a_table_called_like_the_registry_is_not_taken_for_it(any_wh):
    make_legacy_table(any_wh, REGISTRY.name, ["objectName", "owner"])
    with pytest.raises(NotOurTable, match="warehouse_objects exists .* is not this project's registry"):
        ensure_p114_schema(any_wh)
    assert list(any_wh.logical_columns(REGISTRY.name)) == ["objectName", "owner"]


def test_every_table_the_project_creates_is_recorded(any_wh):
    ensure_p114_schema(any_wh)
    IrisLoader(any_wh).load([freq_message()])
    recorded = {r["name"] for r in any_wh.read_rows(REGISTRY.name)}
    ours = {n for n in any_wh.table_names() if n != REGISTRY.name}
    assert ours and ours <= recorded


def test_an_iris_table_of_an_earlier_version_is_adopted_by_its_lineage_columns(any_wh):
    IrisLoader(any_wh).load([freq_message()])
    any_wh.execute(f"DELETE FROM {any_wh.ref(REGISTRY.name)} WHERE name = 'bmrs_freq'")  # as before the registry
    any_wh._registry = None
    rows = [{"dataset": "FREQ", "measurementTime": "2026-05-08T00:00:00.000Z", "frequency": 49.98}]
    IrisLoader(any_wh).load([Message("m-2", json.dumps(json.dumps(rows)).encode(), "FREQ", "iris")])
    assert any_wh.scalar(f"SELECT COUNT(*) FROM {any_wh.ref('bmrs_freq')}") == 2
    recorded = {r["name"]: r["adopted"] for r in any_wh.read_rows(REGISTRY.name)}
    assert recorded["bmrs_freq"] is True


def test_a_table_another_process_just_made_is_known_as_ours_not_adopted(tmp_path, caplog):
    from ops.scheduler import JOB_RUNS
    from warehouse.duckdb import DuckDBWarehouse

    first, second = DuckDBWarehouse(tmp_path / "w.duckdb"), DuckDBWarehouse(tmp_path / "w.duckdb")
    try:
        ensure_p114_schema(first)  # reads the registry
        second.ensure_tables([JOB_RUNS])  # another worker makes a table the first has not seen
        first.ensure_tables([JOB_RUNS])
        assert "adopting" not in caplog.text
        assert [r["adopted"] for r in first.read_rows(REGISTRY.name) if r["name"] == JOB_RUNS.name] == [False]
    finally:
        first.close()
        second.close()


def test_status_names_the_users_tables_it_will_not_load_into_and_creates_nothing(any_wh):
    from ops.status import collect_status

    make_legacy_table(any_wh, "bmrs_freq", LEGACY_FREQ, LEGACY_ROW)
    make_legacy_table(any_wh, BPI.name, LEGACY_BPI)
    status = collect_status(any_wh)
    assert any(w.startswith("bmrs_freq, elexon_p114_s0142_bpi: table(s) with the project's names that it did not "
                            "create") for w in status.warnings)
    assert REGISTRY.name not in any_wh.table_names()


def with_prefix(wh, prefix: str):
    """The same warehouse opened with ``[warehouse] table_prefix = prefix``."""
    from warehouse.bigquery import BigQueryWarehouse
    from warehouse.duckdb import DuckDBWarehouse

    wh.close()
    if isinstance(wh, BigQueryWarehouse):
        return BigQueryWarehouse(wh.project, wh.dataset, wh.options, table_prefix=prefix)
    return DuckDBWarehouse(wh.path, table_prefix=prefix)


def test_with_a_table_prefix_the_project_lives_beside_the_users_tables_of_the_same_names(any_wh, tmp_path):
    from ingest.legacy import import_legacy
    from ops.status import collect_status

    make_legacy_table(any_wh, "bmrs_freq", LEGACY_FREQ, LEGACY_ROW)
    make_legacy_table(any_wh, BPI.name, LEGACY_BPI)
    any_wh.execute(f"CREATE VIEW {any_wh.ref('mart_vlp_revenue_p114')} AS SELECT bmUnitId FROM {any_wh.ref(BPI.name)}")
    theirs = {name: (any_wh.object_info(name), any_wh.logical_columns(name))
              for name in ("bmrs_freq", BPI.name, "mart_vlp_revenue_p114")}

    ours = with_prefix(any_wh, "ep_")  # [warehouse] table_prefix = "ep_"
    IrisLoader(ours).load([freq_message()])
    path = write_file(tmp_path, dt.date(2025, 1, 6), "SF", dt.datetime(2025, 1, 30, 12),
                      [UnitSpec("V__AFLEX001", "FLEX", -2.0)])
    assert load_file(ours, path).status == "loaded"
    assert run_report(ours, "vlp_revenue").sections  # its views made and read under the prefix
    imported = import_legacy(ours, "bmrs_freq", "FREQ")  # their table, named as they name it
    assert imported.total("imported") == 1

    assert ours.scalar(f"SELECT COUNT(*) FROM {ours.ref('bmrs_freq')}") == 2  # ep_bmrs_freq: IRIS + theirs
    assert ours.ref("bmrs_freq").strip("`").endswith("ep_bmrs_freq")
    assert ours.scalar(f"SELECT COUNT(*) FROM {ours.ref(BPI.name)}") > 0
    assert {"bmrs_freq", BPI.name, "mart_vlp_revenue_p114", REGISTRY.name} <= ours.table_names()
    status = collect_status(ours)
    assert not [w for w in status.warnings if "did not create" in w]
    assert "the project's tables and views are called ep_NAME ([warehouse] table_prefix)" in status.notes
    theirs_after = with_prefix(ours, "")
    try:
        assert {name: (theirs_after.object_info(name), theirs_after.logical_columns(name)) for name in theirs} == theirs
        assert theirs_after.query_rows(f"SELECT measurementTime FROM {theirs_after.ref('bmrs_freq')}") == [
            {"measurementTime": "2025-01-01T00:00:00Z"}]
        assert REGISTRY.name not in theirs_after.table_names()  # the project's registry is ep_warehouse_objects
    finally:
        theirs_after.close()


def test_without_a_prefix_the_refusal_offers_one(wh):
    make_legacy_table(wh, "bmrs_freq", LEGACY_FREQ, LEGACY_ROW)
    with pytest.raises(NotOurTable, match=r"\[warehouse\] table_prefix, WAREHOUSE_TABLE_PREFIX"):
        IrisLoader(wh).load([freq_message()])


def test_a_table_prefix_that_is_not_an_identifier_is_a_settings_error():
    from core.config import load_settings
    from core.errors import SettingsError

    assert load_settings(environ={"WAREHOUSE_TABLE_PREFIX": "ep_"}).table_prefix == "ep_"
    with pytest.raises(SettingsError, match=r"table_prefix .* must be letters, digits and underscores.*'ep-'"):
        load_settings(environ={"WAREHOUSE_TABLE_PREFIX": "ep-"})


@pytest.mark.bigquery
def test_on_bigquery_the_ownership_check_reads_metadata_only_no_query_job(bq, monkeypatch):
    from ingest.iris.tables import META

    make_legacy_table(bq, "bmrs_freq", LEGACY_FREQ, LEGACY_ROW)
    ensure_p114_schema(bq)  # the project's tables and views, recorded
    bq._registry = None  # a new process: the registry is read again

    def query(*args, **kwargs):
        raise AssertionError("the ownership check ran a query job (billed bytes); it must read metadata only")

    monkeypatch.setattr(bq.client, "query", query)
    lineage = {c.name: c.type for c in META[:3]}
    assert bq.registry.foreign({"bmrs_freq": lineage, BPI.name: BPI}) == ["bmrs_freq"]
    assert bq.registry.claim_table(BPI, exists=True) is False  # recorded: ours
    assert bq.registry.claim_view("p114_settlement_canonical") is False
    with pytest.raises(NotOurTable, match="bmrs_freq exists"):
        bq.registry.claim_existing("bmrs_freq", bq.logical_columns("bmrs_freq"), lineage, "the dataset's fields")
