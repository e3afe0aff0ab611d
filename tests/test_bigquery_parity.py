"""The whole pipeline on BigQuery (the emulator) and on DuckDB must give the same answers.

The demo's inputs (a week of S0142 files with a 50-period day, several runs and a re-published
file; an IRIS file drop over the long clock-change day) go through the same library calls the
CLI makes: P114 backfill from a folder, IRIS replay (twice: the second loads nothing), BM unit
reference data from the Insights API stand-in, and a refresh to the Sheets stand-in. Then every
table and view, every report and every cell written to the Sheet is compared across engines.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from pathlib import Path

import pyarrow as pa
import pytest

from alerts.events import check
from alerts.rules import parse_alerts
from core.config import Settings
from ingest.iris.api import InsightsClient
from ingest.iris.files import replay_directory
from ingest.iris.load import IrisLoader
from ingest.p114.backfill import run_backfill
from ops.demo import DEMO_ALERT_RULES, DEMO_DAYS, IRIS_DAY, write_demo_assets, write_demo_iris, write_demo_p114
from reporting.assets import import_assets
from reporting.dashboard import load_template
from reporting.reference import load_bmunits
from reporting.refresh import refresh, report_options
from reporting.reports import REPORTS, run_report
from warehouse.duckdb import DuckDBWarehouse

pytestmark = pytest.mark.bigquery

NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone.utc)
TODAY = NOW.date()
#: when a row was written, by which batch, how long parsing took: differ between any two runs
VOLATILE = {"_ingested_at", "ingested_at", "loaded_at", "listed_at", "committed_at", "batch_id", "parse_seconds",
            "quarantined_at", "changed_at", "failed_at", "_replaced_at", "recorded_at"}
ARRIVAL = {"last_arrival"}  # when the test loaded the row (completeness.iris)
MAY_BE_EMPTY = {"iris_quarantine", "iris_outages", "iris_api_windows", "p114_load_errors", "p114_portal_listed_dates",
                "p114_portal_listing", "bmrs_boav_history"}  # the demo re-issues EBOCF only
REFERENCE = [  # five of the demo's VLP units are secondary units in Elexon's data; V__GVLPO006 is not listed
    {"elexonBmUnit": f"V__{c}VLPO00{i}", "nationalGridBmUnit": f"{c}VLPO00{i}", "bmUnitType": "V",
     "leadPartyName": "VL Power", "fuelType": "OTHER", "eic": None, "fpnFlag": False}
    for i, c in enumerate("BCDEF", start=1)
] + [{"elexonBmUnit": "T_BRIT-1", "nationalGridBmUnit": "BRIT-1", "bmUnitType": "T", "leadPartyName": "Briten",
      "fuelType": "CCGT", "eic": None, "fpnFlag": True}]
CONFIGURED_VLP = ["2__CVLPO002"]  # a supplier-prefixed unit the user counts as VLP, by exact id


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    write_demo_p114(root / "p114")
    write_demo_iris(root / "iris", spacing_s=18.0)
    write_corrections(root / "iris", root / "iris_corrections")
    return root


#: Elexon re-sends: the first message of these datasets again, one value amended
AMENDED = {"BOALF": ("levelFrom", 7), "PN": ("levelFrom", 5), "DISBSAD": ("cost", 250.5), "BOD": ("offer", 1.25),
           "MID": ("volume", 10.5), "REMIT": ("availableCapacity", 10.0)}


def write_corrections(drop, directory) -> None:
    for dataset, (field, delta) in AMENDED.items():
        first = min((drop / dataset).iterdir(), key=lambda p: (p.stat().st_mtime, p.name))
        records = json.loads(first.read_bytes())
        for r in records:
            r[field] += delta
            if dataset == "BOALF":
                r["amendmentFlag"] = "AMD"
        target = directory / dataset / f"{first.name}-amended"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(records))
        later = first.stat().st_mtime + 60
        os.utime(target, (later, later))


def settings_for(sheet_id: str, out) -> Settings:
    s = Settings(output_dir=str(out))
    s.reporting.vlp_units = list(CONFIGURED_VLP)
    s.sheets.spreadsheets = {"main": sheet_id}
    return s


def run_pipeline(wh, inputs, sheet_id, out, sheets_endpoint, insights_url, hook_url) -> dict:
    """Everything a user runs, in order; returns what each step reported."""
    backfill = run_backfill(wh, DEMO_DAYS[0], DEMO_DAYS[-1], source=str(inputs / "p114"))
    first = replay_directory(IrisLoader(wh), inputs / "iris", batch_size=1000)
    second = replay_directory(IrisLoader(wh), inputs / "iris", batch_size=1000)
    corrections = replay_directory(IrisLoader(wh), inputs / "iris_corrections", batch_size=1000)
    reference = load_bmunits(wh, InsightsClient(insights_url))
    import_assets(wh, write_demo_assets(Path(out) / "assets.csv"))
    settings = settings_for(sheet_id, out)
    settings.sheets.endpoint = sheets_endpoint
    settings.alerts = parse_alerts({"targets": {"desk": hook_url}, "rules": DEMO_ALERT_RULES}, "parity", {})
    alerts = [check(wh, settings, as_of=IRIS_DAY + dt.timedelta(hours=h), now=NOW) for h in range(2, 27, 2)]
    options = report_options(settings, date_from=DEMO_DAYS[0], date_to=DEMO_DAYS[-1], today=TODAY, now=NOW)
    pushed = refresh(wh, settings, "main", target="sheets", now=NOW, options=options)
    return {"files": len(backfill.results), "loaded": sum(r.status == "loaded" for r in backfill.results),
            "iris_rows": first.rows, "iris_inserted_again": second.rows - second.duplicate_rows,
            "iris_duplicate_messages_again": second.duplicate_messages,
            "iris_corrections": corrections.corrections, "reference": reference,
            "sheet_requests": pushed.requests, "options": options,
            "alerts": [(len(a.opened), len(a.closed), sum(s.ok for s in a.sent)) for a in alerts]}


@pytest.fixture(scope="module")
def both(inputs, bigquery_emulator, tmp_path_factory):
    """The pipeline run on DuckDB and on BigQuery, with the Sheets and Insights stand-ins."""
    from tests.peers.insights import FakeInsights
    from tests.peers.sheets import FakeSheets
    from warehouse.bigquery import BigQueryOptions, BigQueryWarehouse

    mp = pytest.MonkeyPatch()
    from tests.peers.notify import Webhook

    insights, sheets, hook = FakeInsights().start(), FakeSheets().start(), Webhook().start()
    insights.bmunits = REFERENCE
    mp.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    sheets.create("duck", tabs={"Sheet1": (1000, 26)})
    sheets.create("bq", tabs={"Sheet1": (1000, 26)})
    work = tmp_path_factory.mktemp("parity")
    duck = DuckDBWarehouse(work / "warehouse.duckdb")
    bq = BigQueryWarehouse(bigquery_emulator.project, "parity",
                           BigQueryOptions(api_endpoint=bigquery_emulator.endpoint, location="EU"))
    try:
        steps = {"duckdb": run_pipeline(duck, inputs, "duck", work / "out-duck", sheets.url, insights.url, hook.url),
                 "bigquery": run_pipeline(bq, inputs, "bq", work / "out-bq", sheets.url, insights.url, hook.url)}
        yield duck, bq, sheets, steps
    finally:
        duck.close()
        bq.close()
        insights.stop()
        sheets.stop()
        hook.stop()
        mp.undo()


# ---------------------------------------------------------------------------------------- comparing
def _value(v):
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc) if v.tzinfo else v
    return v


def _rows(table: pa.Table, drop=frozenset()) -> list[dict]:
    return [{k: _value(v) for k, v in r.items() if k not in drop} for r in table.to_pylist()]


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-9)  # sums in another order: last-bit noise only
    return type(a) is type(b) and a == b


def _json(v):
    return json.loads(v) if isinstance(v, str) else v


def assert_same_rows(left: list[dict], right: list[dict], what: str, ordered: bool) -> None:
    assert len(left) == len(right), f"{what}: {len(left)} rows on DuckDB, {len(right)} on BigQuery"
    if not ordered:
        key = lambda r: json.dumps([(k, r[k]) for k in sorted(r)], default=str)  # noqa: E731
        left, right = sorted(left, key=key), sorted(right, key=key)
    for i, (a, b) in enumerate(zip(left, right)):
        assert list(a) == list(b), f"{what}: columns differ: {list(a)} vs {list(b)}"
        diffs = {k: (a[k], b[k]) for k in a if not _same(a[k], b[k])}
        assert not diffs, f"{what}, row {i}: DuckDB vs BigQuery {diffs}"


# ---------------------------------------------------------------------------------------- tests
def test_each_step_reports_the_same_on_both_engines(both, inputs):
    _, _, _, steps = both
    duck, bq = steps["duckdb"], steps["bigquery"]
    assert duck == bq
    assert duck["files"] == duck["loaded"] == 21
    assert duck["iris_rows"] > 20_000 and duck["iris_inserted_again"] == 0
    amended = [json.loads(p.read_bytes()) for p in (inputs / "iris_corrections").rglob("*-amended")]
    assert len(amended) == len(AMENDED) and duck["iris_corrections"] == sum(map(len, amended))
    assert duck["reference"] == len(REFERENCE)
    assert duck["sheet_requests"] <= 3
    assert sum(opened for opened, _, _ in duck["alerts"]) > 0  # every event announced once, on both engines
    assert sum(opened for opened, _, _ in duck["alerts"]) == sum(sent for _, _, sent in duck["alerts"])


def test_every_table_and_view_holds_the_same_rows_and_types(both):
    duck, bq, _, _ = both
    names = duck.table_names()
    assert names == bq.table_names()
    assert {"elexon_p114_s0142_bpi", "p114_settlement_canonical", "mart_vlp_revenue_p114", "bmrs_freq",
            "iris_message_ledger", "bmu_reference"} <= names
    for name in sorted(names):
        types = duck.logical_columns(name)
        assert types == bq.logical_columns(name), f"{name}: column types differ"
        json_columns = {c for c, t in types.items() if t == "JSON"}
        left, right = (_rows(wh.query(f"SELECT * FROM {wh.ref(name)}"), VOLATILE) for wh in (duck, bq))
        for rows in (left, right):
            for r in rows:
                for c in json_columns:
                    r[c] = _json(r[c])
        if name not in MAY_BE_EMPTY:
            assert left, f"{name} is empty: the comparison would prove nothing"
        assert_same_rows(left, right, name, ordered=False)


def test_every_report_gives_the_same_sections_in_the_same_order(both):
    duck, bq, _, steps = both
    options = steps["duckdb"]["options"]
    for name in REPORTS:
        a, b = run_report(duck, name, options), run_report(bq, name, options)
        assert a.params == b.params and a.warnings == b.warnings, name
        for section in a.sections:
            ta, tb = a.sections[section], b.sections[section]
            assert ta.column_names == tb.column_names, f"{name}.{section}"
            assert ta.num_rows, f"{name}.{section} is empty: the comparison would prove nothing"
            assert_same_rows(_rows(ta, ARRIVAL), _rows(tb, ARRIVAL), f"{name}.{section}", ordered=True)


def test_the_sheet_written_from_bigquery_is_cell_for_cell_the_one_from_duckdb(both):
    _, _, sheets, _ = both
    tabs = [t.name for t in load_template("main").tabs]
    for tab in tabs:
        a, b = sheets.values("duck", tab), sheets.values("bq", tab)
        assert a, f"tab {tab} is empty"
        assert sorted(a) == sorted(b), f"tab {tab}: different cells filled"
        arrival_columns = {col for (row, col), v in a.items() if v == "Last arrival (UTC)"}
        for cell in [c for c in a if c[1] in arrival_columns and isinstance(a[c], float)]:
            del a[cell], b[cell]  # when the test loaded the rows: differs between any two runs
        diffs = {cell: (a[cell], b[cell]) for cell in a if not _same(a[cell], b[cell])}
        assert not diffs, f"tab {tab}: DuckDB vs BigQuery {dict(list(diffs.items())[:5])}"
