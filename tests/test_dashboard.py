"""Dashboards end to end: the Google Sheets target against a local Sheets API, the local workbook
read back, the HTML page, layout validation and the refresh/report/reference commands."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import socket
from pathlib import Path

import openpyxl
import pytest
from click.testing import CliRunner

from core.config import load_settings
from core.errors import InsightsError
from reporting.dashboard import TemplateError, build_dashboard, cell, load_template
from reporting.formats import SHEETS_EPOCH
from reporting.refresh import refresh
from reporting.sheets import SheetsError
from run import cli
from tests.test_reports import LONG, SHORT, load_fixture

NOW = dt.datetime(2024, 11, 5, 9, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def fixture_wh(wh, tmp_path):
    """The report fixture in DuckDB (test_bigquery_parity compares what BigQuery writes to the Sheet)."""
    return load_fixture(wh, tmp_path)


def settings_for(tmp_path, **env):
    return load_settings(environ={"OUTPUT_DIR": str(tmp_path / "out"), **env})


def both_days(settings):
    """The fixture's two settlement dates (the default windows end at the latest one)."""
    from reporting.refresh import report_options

    return report_options(settings, date_from=SHORT, date_to=LONG)


def run(wh, settings, now=NOW, options=None):
    return refresh(wh, settings, "main", now=now, options=options or both_days(settings))


def sheets_settings(fake, tmp_path):
    return settings_for(tmp_path, SHEETS_SPREADSHEET_ID="sheet-1", SHEETS_API_ENDPOINT=fake.url)


def grid(fake, tab) -> dict:
    return fake.values("sheet-1", tab)


def find(cells: dict, value) -> tuple[int, int]:
    return next(k for k, v in cells.items() if v == value)


# ---------------------------------------------------------------------------------------- Google Sheets
def test_a_refresh_is_three_requests_writing_values_raw_with_explicit_formats(fixture_wh, sheets, tmp_path):
    result = run(fixture_wh, sheets_settings(sheets, tmp_path))
    assert result.target == "sheets" and result.requests == 3
    assert [k for _, k in sheets.requests] == ["metadata", "batchUpdate", "values"]
    assert [s["properties"]["title"] for s in sheets.spreadsheets["sheet-1"]["sheets"]] == [
        "Sheet1", "Revenue", "VLP revenue", "Live grid", "Alerts", "Reconciliation", "Completeness", "Self-balancing"]

    cells = grid(sheets, "VLP revenue")
    assert cells[(0, 0)].startswith("VLP revenue (settled, P114) — settlement dates")
    assert cells[(1, 0)].startswith("Last refreshed 2024-11-05 09:30 UTC · Data: P114 settlement to 2024-10-27 (R1)")
    header_row, _ = find(cells, "BM unit")  # the per-unit table, below the day totals and their chart
    first = header_row + 1
    # RAW values: the date as a serial day number, numbers as numbers
    assert cells[(first, 0)] == (SHORT - SHEETS_EPOCH.date()).days
    assert [cells[(first, j)] for j in range(1, 11)] == ["V__AFLEX001", "VLPCO", "SF", 46, 23, -1, 2, 170, 5, 165]
    formats = sheets.sheet("sheet-1", "VLP revenue")["formats"]
    assert formats[(first, 0)]["numberFormat"] == {"type": "DATE", "pattern": "yyyy-mm-dd"}
    assert formats[(first, 10)]["numberFormat"] == {"type": "CURRENCY", "pattern": "£#,##0.00"}
    # per-unit rows only: the day totals are their own block
    assert "daily total" not in cells.values() and find(cells, "Net BM revenue per day (all VLP units)")
    sheet = sheets.sheet("sheet-1", "VLP revenue")
    assert sheet["properties"]["gridProperties"]["frozenRowCount"] == 4
    assert len(sheet["charts"]) == 1 and len(sheet["conditionalFormats"]) == 2
    assert sheet["charts"][0]["spec"]["basicChart"]["chartType"] == "COLUMN"
    assert sheets.sheet("sheet-1", "Live grid")["charts"][0]["spec"]["pieChart"]


def test_refreshing_again_replaces_charts_rules_and_stale_cells_without_a_blank_moment(fixture_wh, sheets, tmp_path):
    settings = sheets_settings(sheets, tmp_path)
    run(fixture_wh, settings)
    before = dict(grid(sheets, "VLP revenue"))
    header_row, _ = find(before, "BM unit")
    assert (header_row + 2, 0) in before and (header_row + 3, 0) not in before  # one unit on two days

    from reporting.refresh import report_options

    narrower = report_options(settings, date_from=SHORT, date_to=SHORT)
    run(fixture_wh, settings, now=NOW + dt.timedelta(hours=1), options=narrower)
    after = grid(sheets, "VLP revenue")
    assert (header_row + 1, 0) in after and (header_row + 2, 0) not in after  # the wider window's rows are gone
    assert after[(1, 0)].startswith("Last refreshed 2024-11-05 10:30 UTC")
    sheet = sheets.sheet("sheet-1", "VLP revenue")
    assert len(sheet["charts"]) == 1 and len(sheet["conditionalFormats"]) == 2
    # between the requests of the second refresh the tab still showed the first refresh's values
    kinds = [k for k, _ in sheets.snapshots]
    after_structure = sheets.snapshots[kinds.index("batchUpdate", 2)][1]
    tab = next(s for s in after_structure["sheets"] if s["properties"]["title"] == "VLP revenue")
    assert tab["cells"] == before


def test_rate_limits_and_server_errors_are_retried(fixture_wh, sheets, tmp_path, monkeypatch):
    from reporting import sheets as sheets_module

    monkeypatch.setattr(sheets_module.RetryingHTTPClient, "backoff_multiplier", 0.01)
    sheets.fail("metadata", 429)
    sheets.fail("values", 503, 500)
    result = run(fixture_wh, sheets_settings(sheets, tmp_path))
    assert result.requests == 6 and dict(sheets.counts) == {"metadata": 2, "batchUpdate": 1, "values": 3}
    assert grid(sheets, "VLP revenue")


def test_a_failed_write_is_an_error_and_the_previous_sheet_stays(fixture_wh, sheets, tmp_path):
    settings = sheets_settings(sheets, tmp_path)
    run(fixture_wh, settings)
    before = dict(grid(sheets, "VLP revenue"))
    sheets.fail("values", 400)
    with pytest.raises(SheetsError, match="updating spreadsheet sheet-1 failed"):
        run(fixture_wh, settings, now=NOW + dt.timedelta(hours=1))
    assert grid(sheets, "VLP revenue") == before


def test_a_missing_spreadsheet_is_a_clear_error(fixture_wh, sheets, tmp_path):
    settings = settings_for(tmp_path, SHEETS_SPREADSHEET_ID="nope", SHEETS_API_ENDPOINT=sheets.url)
    with pytest.raises(SheetsError, match=r"cannot open spreadsheet nope: .*check the id in \[sheets.spreadsheets\]"):
        run(fixture_wh, settings)


def test_a_spreadsheet_not_shared_with_us_says_to_share_it_with_the_service_account(fixture_wh, sheets, tmp_path):
    from reporting.sheets import push_dashboard, sheets_http_client

    sheets.fail("metadata", 403)
    with pytest.raises(SheetsError, match=r"cannot open spreadsheet sheet-1: .*share the spreadsheet, as Editor"):
        run(fixture_wh, sheets_settings(sheets, tmp_path))
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from reporting.dashboard import Dashboard
    from reporting.sheets import google_credentials

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    key = tmp_path / "key.json"
    key.write_text(json.dumps({"type": "service_account", "project_id": "proj", "private_key_id": "k1",
                               "private_key": pem, "client_email": "robot@proj.iam.gserviceaccount.com",
                               "client_id": "1", "token_uri": "https://oauth2.googleapis.com/token"}))
    credentials = google_credentials(str(key))
    credentials.token, credentials.expiry = "a-token", dt.datetime.utcnow() + dt.timedelta(hours=1)  # no refresh
    http = sheets_http_client(credentials, endpoint=sheets.url)
    sheets.fail("metadata", 403)
    with pytest.raises(SheetsError, match=r"share the spreadsheet with robot@proj.iam.gserviceaccount.com as Editor"):
        push_dashboard(Dashboard("main", "Main", "stamp", []), "sheet-1", http)


# ---------------------------------------------------------------------------------------- local dashboard
def test_without_google_settings_the_local_workbook_has_the_same_tabs_and_formats(fixture_wh, tmp_path):
    result = run(fixture_wh, settings_for(tmp_path))
    assert result.target == "local" and result.where == [str(tmp_path / "out/main.xlsx"), str(tmp_path / "out/main.html")]
    wb = openpyxl.load_workbook(tmp_path / "out/main.xlsx")
    assert wb.sheetnames == ["Revenue", "VLP revenue", "Live grid", "Alerts", "Reconciliation", "Completeness",
                             "Self-balancing"]
    ws = wb["VLP revenue"]
    header = next(r for r in ws.iter_rows(min_row=1, max_row=40) if r[1].value == "BM unit")
    first = header[0].row + 1
    assert ws.cell(first, 1).value == dt.datetime(2024, 3, 31) and ws.cell(first, 1).number_format == "yyyy-mm-dd"
    assert [ws.cell(first, j).value for j in range(2, 12)] == ["V__AFLEX001", "VLPCO", "SF", 46, 23, -1, 2, 170, 5, 165]
    assert ws.cell(first, 11).number_format == "£#,##0.00"
    # per-unit rows and day totals are separate Excel tables (filters and pivots work on each)
    assert sorted(ws.tables) == ["t_VLP_revenue_by_unit", "t_VLP_revenue_daily"]
    assert ws.tables["t_VLP_revenue_by_unit"].ref.startswith(f"A{first - 1}:K")
    assert not any(c.value == "daily total" for row in ws.iter_rows() for c in row)
    assert ws.freeze_panes == "A5"
    assert len(ws._charts) == 1 and sum(len(cf.rules) for cf in ws.conditional_formatting) == 2
    completeness = wb["Completeness"]
    periods = [c.value for c in completeness["B"] if isinstance(c.value, int)]
    assert 46 in periods or 50 in periods


def test_a_refresh_failing_after_some_tabs_are_written_leaves_the_previous_workbook_whole(fixture_wh, tmp_path,
                                                                                          monkeypatch):
    import reporting.dashboard as dashboard
    from core.errors import WarehouseUnavailable

    settings = settings_for(tmp_path)
    run(fixture_wh, settings)
    before = (tmp_path / "out/main.xlsx").read_bytes()
    real = dashboard.run_report

    def run_report(wh, name, *args, **kwargs):
        if name == "self_balancing":  # the last tab: every other tab is in the workbook by now
            raise WarehouseUnavailable("the warehouse went away")
        return real(wh, name, *args, **kwargs)

    monkeypatch.setattr(dashboard, "run_report", run_report)
    with pytest.raises(WarehouseUnavailable):
        run(fixture_wh, settings, now=NOW + dt.timedelta(hours=1))
    assert (tmp_path / "out/main.xlsx").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["main.html", "main.xlsx"]


def test_the_html_page_is_self_contained_with_charts_and_formatted_values(fixture_wh, tmp_path):
    run(fixture_wh, settings_for(tmp_path))
    page = (tmp_path / "out/main.html").read_text()
    assert page.count("<svg") >= 3 and "<script" not in page and "http" not in page.replace("https://bmrs", "")
    assert "£170.00" in page and "£165.00" in page and "Net BM revenue (£)" in page
    assert "Last refreshed 2024-11-05 09:30 UTC" in page


# ---------------------------------------------------------------------------------------- layouts
def test_cell_references_convert_both_ways():
    from reporting.dashboard import a1

    assert cell("A1") == (0, 0) and cell("N5") == (4, 13) and cell("AA10") == (9, 26)
    assert [a1(*cell(x)) for x in ("A1", "N5", "AA10", "AZ3")] == ["A1", "N5", "AA10", "AZ3"]


@pytest.mark.parametrize("body,message", [
    ("name: x\ntabs:\n  - name: T\n    report: nope\n    blocks: [{section: a}]\n", "unknown report 'nope'"),
    ("name: x\ntabs:\n  - name: T\n    report: vlp_revenue\n    blocks: [{section: nope}]\n", "has no section 'nope'"),
    ("name: x\ntabs:\n  - name: T\n    report: vlp_revenue\n    blocks: [{section: daily, columns: [{field: a, format: euro}]}]\n",
     "unknown format 'euro'"),
    ("name: x\ntabs:\n  - name: T\n    report: vlp_revenue\n    blocks: [{section: daily, at: Z}]\n", "not a cell reference"),
])
def test_a_bad_layout_names_the_file_tab_and_key(tmp_path, body, message):
    (tmp_path / "x.yaml").write_text(body)
    with pytest.raises(TemplateError, match=message) as info:
        load_template("x", tmp_path)
    assert str(tmp_path / "x.yaml") in str(info.value) and "'T'" in str(info.value)


def test_every_shipped_layout_loads_and_builds(fixture_wh):
    from reporting.dashboard import template_names

    for name in template_names():
        dashboard = build_dashboard(fixture_wh, load_template(name), now=NOW)
        assert dashboard.tabs and all(t.blocks for t in dashboard.tabs)


def test_each_tab_is_handed_on_while_the_later_reports_still_run(fixture_wh, monkeypatch):
    """The workbook writes a tab as soon as its reports are done: the last tab's report here cannot finish
    until the first tab has been handed on (run all reports first, and it would wait in vain)."""
    import threading

    import reporting.dashboard as dashboard

    spec = load_template("main")
    first_handed_on = threading.Event()
    waited = []

    def run_report(wh, name, *args, **kwargs):
        if name == spec.tabs[-1].report:
            waited.append(first_handed_on.wait(10))
        return real(wh, name, *args, **kwargs)

    real = dashboard.run_report
    monkeypatch.setattr(dashboard, "run_report", run_report)
    handed_on = []
    built = build_dashboard(fixture_wh, spec, now=NOW,
                            on_tab=lambda tab: (handed_on.append(tab.name), first_handed_on.set()))
    assert waited == [True]
    assert handed_on == [t.name for t in built.tabs] == [t.name for t in spec.tabs]


# ---------------------------------------------------------------------------------------- commands
def cli_args(wh_path: Path, *args):
    return ["--warehouse", f"duckdb:///{wh_path}", *args]


def test_refresh_command_prints_where_it_wrote(fixture_wh, tmp_path, monkeypatch):
    fixture_wh.close()
    monkeypatch.setenv("OUTPUT_DIR", str(tmp_path / "dash"))
    result = CliRunner().invoke(cli, cli_args(Path(fixture_wh.path), "refresh", "--target", "local"))
    assert result.exit_code == 0, result.output
    assert f"7 tabs written to {tmp_path / 'dash/main.xlsx'} and {tmp_path / 'dash/main.html'}" in result.output
    asked = CliRunner().invoke(cli, cli_args(Path(fixture_wh.path), "refresh", "--target", "sheets"))
    assert asked.exit_code == 1 and "no spreadsheet id for dashboard 'main'" in asked.output
    unknown = CliRunner().invoke(cli, cli_args(Path(fixture_wh.path), "refresh", "--dashboard", "nope"))
    assert unknown.exit_code == 1 and "no dashboard layout" in unknown.output


def test_report_command_formats(fixture_wh):
    fixture_wh.close()
    path = Path(fixture_wh.path)
    as_json = CliRunner().invoke(cli, cli_args(path, "report", "self_balancing", "--population", "all", "--from", "2024-03-31", "--to",
                                               "2024-10-27", "--format", "json"))
    assert as_json.exit_code == 0, as_json.output
    payload = json.loads(as_json.output)
    assert payload["sections"]["summary"][0]["share_of_volume"] == 0.9933
    as_csv = CliRunner().invoke(cli, cli_args(path, "report", "vlp_revenue", "--from", "2024-03-31", "--to",
                                              "2024-03-31", "--section", "by_unit", "--format", "csv"))
    assert as_csv.exit_code == 0, as_csv.output
    rows = list(csv.reader(io.StringIO(as_csv.stdout)))  # exactly one CSV: one header, then rows of its width
    assert rows[0][:3] == ["settlement_date", "row_type", "bm_unit_id"] and {len(r) for r in rows} == {len(rows[0])}
    assert ["2024-03-31", "unit", "V__AFLEX001", "VLPCO", "SF", "46", "23.0"] == rows[1][:7]
    several = CliRunner().invoke(cli, cli_args(path, "report", "vlp_revenue", "--format", "csv"))
    assert several.exit_code == 1 and "choose one with --section" in several.output
    table = CliRunner().invoke(cli, cli_args(path, "report", "completeness", "--from", "2024-10-27", "--to",
                                             "2024-10-27"))
    assert table.exit_code == 0 and "49,50" in table.output and "Europe/London" in table.output
    bad = CliRunner().invoke(cli, cli_args(path, "report", "nope"))
    assert bad.exit_code == 1 and "unknown report 'nope'" in bad.output


def test_reference_bmunits_loads_elexons_list(tmp_path, insights):
    db = tmp_path / "w.duckdb"
    result = CliRunner().invoke(cli, cli_args(db, "reference", "bmunits"))
    assert result.exit_code == 0 and "Loaded 2 BM units" in result.output
    from warehouse.duckdb import DuckDBWarehouse

    with DuckDBWarehouse(db) as wh:
        rows = wh.query_rows("SELECT elexon_bm_unit, is_secondary FROM bmu_reference ORDER BY 1")
    assert rows == [{"elexon_bm_unit": "T_DRAX-1", "is_secondary": False},
                    {"elexon_bm_unit": "V__AFLEX001", "is_secondary": True}]


def test_reference_bmunits_retries_a_busy_api_and_names_a_failure_in_one_line(tmp_path, insights):
    from ingest.iris.api import InsightsClient
    from reporting.reference import load_bmunits
    from warehouse.duckdb import DuckDBWarehouse

    db = tmp_path / "w.duckdb"
    insights.fail("bmunits", 503)  # busy once: retried like every Insights call
    with DuckDBWarehouse(db) as wh:
        assert load_bmunits(wh, InsightsClient(insights.url, backoff_max_s=0.01)) == 2
    assert insights.counts["bmunits"] == 2
    insights.fail("bmunits", 400)
    result = CliRunner().invoke(cli, cli_args(db, "reference", "bmunits"))
    assert result.exit_code == 1 and "Traceback" not in result.output and "internal error" not in result.output
    assert result.output.strip() == result.output.strip().splitlines()[0]
    assert f"cannot fetch Elexon's BM unit list from {insights.url}: /reference/bmunits/all: HTTP 400" in result.output
    with socket.socket() as s:  # a port nobody listens on: offline
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    refused = r"gave up after 2 attempts: ConnectionError \(\[Errno 111\] Connection refused\)"
    with DuckDBWarehouse(db) as wh, pytest.raises(InsightsError, match=refused):
        load_bmunits(wh, InsightsClient(closed, attempts=2, backoff_max_s=0.01))
    with DuckDBWarehouse(db) as wh:  # the list loaded first is still there
        assert wh.scalar("SELECT COUNT(*) FROM bmu_reference") == 2



@pytest.mark.parametrize("body, message", [
    (b'{"data": [{"foo": 1}]}', 'BM unit 1 of 1 has no elexonBmUnit (its settlement id): {"foo":1}; nothing loaded'),
    (b"[]", "no BM units in it; the reference data was left as it was"),
    (b'{"data": []}', "no BM units in it; the reference data was left as it was"),
])
def test_a_bm_unit_list_without_settlement_ids_never_replaces_the_reference(tmp_path, body, message):
    from core.errors import SourceError
    from reporting.reference import load_bmunits
    from warehouse.duckdb import DuckDBWarehouse

    with DuckDBWarehouse(tmp_path / "w.duckdb") as wh:
        load_bmunits(wh, body=b'[{"elexonBmUnit": "T_DRAX-1", "bmUnitType": "T"}]')
        with pytest.raises(SourceError, match=re.escape(message)):
            load_bmunits(wh, body=body, source="saved.json")
        assert wh.query_rows("SELECT elexon_bm_unit FROM bmu_reference") == [{"elexon_bm_unit": "T_DRAX-1"}]

def test_chart_axes_have_round_ticks_that_carry_the_unit():
    from reporting.html import _tick_label, _ticks, _unit

    ticks = _ticks(-4865, 8960)
    assert ticks == [-5000, 0, 5000, 10000]
    assert [_tick_label(t, ticks, _unit("Net BM revenue per day (£)")) for t in ticks] == [
        "-£5,000", "£0", "£5,000", "£10,000"]
    hz = _ticks(49.91, 50.07)
    assert [_tick_label(t, hz, _unit("System frequency (Hz)")) for t in hz] == [
        "49.90 Hz", "49.95 Hz", "50.00 Hz", "50.05 Hz", "50.10 Hz"]
    assert _ticks(0, 8960) == [0, 2500, 5000, 7500, 10000]
