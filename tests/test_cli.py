"""The command line: help everywhere, documented in the README, exit codes, warehouse selection."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ingest.p114.generate import sample_units, write_s0142
from run import cli
from tests.conftest import NORMAL_DAY
from warehouse.duckdb import DuckDBWarehouse

ROOT = Path(__file__).resolve().parent.parent


def all_commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        path = prefix + (name,)
        yield path, command
        if isinstance(command, click.Group):
            yield from all_commands(command, path)


COMMANDS = list(all_commands(cli))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help_text_and_is_in_the_readme(path, command):
    assert command.help and command.help.strip(), f"{' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    readme = (ROOT / "README.md").read_text()
    assert re.search(rf"python run\.py {re.escape(' '.join(path))}\b", readme), f"README lacks `python run.py {' '.join(path)}`"


def invoke(tmp_path, *args, **kwargs):
    db = tmp_path / "wh.duckdb"
    return CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", *args], catch_exceptions=False, **kwargs), db


def test_load_p114_loads_good_files_reports_bad_ones_and_exits_non_zero(tmp_path):
    units = sample_units(5, 2, seed=1)
    good = write_s0142(tmp_path, NORMAL_DAY, "SF", units=units, seed=1)
    bad = write_s0142(tmp_path, NORMAL_DAY, "II", units=units, seed=1)
    bad.write_bytes(bad.read_bytes()[:300])
    result, db = invoke(tmp_path, "load", "p114", str(bad), str(good))
    assert result.exit_code == 1
    assert f"{good.name}: loaded" in result.output
    assert f"FAILED {bad.name}: truncated gzip data" in result.output
    assert "1 of 2 files failed to load" in result.output
    with DuckDBWarehouse(db) as wh:
        assert wh.scalar("SELECT COUNT(DISTINCT source_file) FROM elexon_p114_s0142_bpi") == 1

    again, _ = invoke(tmp_path, "load", "p114", str(good))
    assert again.exit_code == 0 and "already loaded; skipped" in again.output


def test_load_p114_of_a_folder_loads_every_s0142_file_under_it_and_names_the_misnamed(tmp_path):
    units = sample_units(5, 2, seed=1)
    sf = write_s0142(tmp_path / "in", NORMAL_DAY, "SF", units=units, seed=1)
    ii = write_s0142(tmp_path / "in" / "2024", NORMAL_DAY, "II", units=units, seed=1)
    (tmp_path / "in" / "notes.txt").write_text("not a settlement file")
    (tmp_path / "in" / "S0142_20241011_XX.gz").write_bytes(sf.read_bytes())
    (tmp_path / "empty").mkdir()
    result, db = invoke(tmp_path, "load", "p114", str(tmp_path / "in"), str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert f"{sf.name}: loaded" in result.output and f"{ii.name}: loaded" in result.output
    assert "S0142_20241011_XX.gz" in result.output and "notes.txt" not in result.output
    assert f"{tmp_path / 'empty'}: a folder with no S0142 files" in result.output
    assert "2 of 4 files failed to load" in result.output
    with DuckDBWarehouse(db) as wh:
        assert wh.scalar("SELECT COUNT(DISTINCT source_file) FROM elexon_p114_s0142_bpi") == 2

    nothing, other_db = invoke(tmp_path / "empty", "load", "p114", str(tmp_path / "empty"))
    assert nothing.exit_code == 1 and not other_db.exists()


def test_backfill_p114_from_a_folder_prints_a_summary(tmp_path):
    units = sample_units(5, 2, seed=1)
    for run in ("II", "SF"):
        write_s0142(tmp_path / "in", NORMAL_DAY, run, units=units, seed=1)
    result, _ = invoke(tmp_path, "backfill", "p114", "2024-10-11", "2024-10-11", "--runs", "SF",
                       "--source", str(tmp_path / "in"))
    assert result.exit_code == 0, result.output
    assert "loaded now       1 files" in result.output


def test_backfill_rejects_an_unknown_run_and_a_missing_folder(tmp_path):
    result, _ = invoke(tmp_path, "backfill", "p114", "2024-10-11", "2024-10-12", "--runs", "SF,XX", "--source", "x")
    assert result.exit_code == 2 and "unknown settlement run 'XX'" in result.output
    result, _ = invoke(tmp_path, "backfill", "p114", "2024-10-11", "2024-10-12", "--source", str(tmp_path / "nope"))
    assert result.exit_code == 1 and "does not exist" in result.output


def test_backfill_from_the_portal_without_a_key_says_what_to_set(tmp_path, monkeypatch):
    monkeypatch.delenv("ELEXON_PORTAL_KEY", raising=False)
    result, _ = invoke(tmp_path, "backfill", "p114", "2024-10-11", "2024-10-12")
    assert result.exit_code == 1 and "ELEXON_PORTAL_KEY is not set" in result.output


def test_warehouse_url_comes_from_the_environment_too(tmp_path, monkeypatch):
    db = tmp_path / "env.duckdb"
    monkeypatch.setenv("WAREHOUSE_URL", f"duckdb:///{db}")
    with DuckDBWarehouse(db) as wh:  # only loading commands create one
        wh.scalar("SELECT 1")
    result = CliRunner().invoke(cli, ["query", "SELECT 41 + 1 AS answer", "--format", "csv"])
    assert result.exit_code == 0 and result.output.splitlines() == ["answer", "42"]


def test_read_only_commands_refuse_a_warehouse_that_does_not_exist(tmp_path):
    typo = tmp_path / "data" / "demo" / "warehose.duckdb"
    for args in (["status"], ["query", "SELECT 1"], ["report", "completeness"], ["refresh", "--target", "local"]):
        result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{typo}", *args])
        assert result.exit_code == 1, (args, result.output)
        assert f"no warehouse at {typo}" in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
    assert not typo.parent.exists()  # nor the folder



def test_a_misspelt_report_is_named_before_the_warehouse_is_looked_for(tmp_path):
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path / 'none.duckdb'}", "report", "revnue"])
    assert result.exit_code == 1
    assert result.output.strip() == ("error: unknown report 'revnue'; reports: alerts, completeness, live_grid, "
                                     "reconciliation, revenue, self_balancing, vlp_revenue")

def test_an_unknown_warehouse_scheme_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["--warehouse", "postgres://x", "query", "SELECT 1"])
    assert result.exit_code == 1 and "unknown warehouse scheme 'postgres'" in result.output


def test_a_duckdb_file_can_be_named_by_its_plain_path_and_an_absolute_one_mistyped_as_relative_is_said(
        tmp_path, monkeypatch):
    absolute = tmp_path / "abs" / "w.duckdb"
    monkeypatch.chdir(tmp_path)
    with DuckDBWarehouse(absolute) as wh:
        wh.execute("CREATE TABLE t AS SELECT 42 AS answer")
    for given in (str(absolute), "abs/w.duckdb"):  # absolute and relative plain paths
        result = CliRunner().invoke(cli, ["--warehouse", given, "query", "SELECT answer FROM t", "--format", "csv"])
        assert result.exit_code == 0 and result.output.splitlines() == ["answer", "42"], result.output
    not_a_file = CliRunner().invoke(cli, ["--warehouse", "my-project.my_dataset", "status"])
    assert not_a_file.exit_code == 1 and "has no scheme; use a DuckDB file's path (ending .duckdb)" in not_a_file.output

    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    three_slashes = "duckdb:///" + str(absolute).lstrip("/")  # meant absolute, is relative
    result = CliRunner().invoke(cli, ["--warehouse", three_slashes, "query", "SELECT 1"])
    assert result.exit_code == 1
    assert f"is the relative path {str(absolute).lstrip('/')}" in result.output
    assert f"write duckdb:///{absolute} or just the path" in result.output


def test_bigquery_without_usable_credentials_is_one_line_naming_the_fix(tmp_path):
    no_adc = {"HOME": str(tmp_path), "NO_GCE_CHECK": "True", "GOOGLE_CLOUD_PROJECT": "", "SETTINGS_FILE": "",
              "BIGQUERY_API_ENDPOINT": "", "GOOGLE_APPLICATION_CREDENTIALS": ""}  # no ADC file, no metadata server
    result = CliRunner().invoke(cli, ["--warehouse", "bigquery://proj/ds", "status"], env=no_adc)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]
    assert "cannot create a BigQuery client for project proj" in result.output
    assert "Set GOOGLE_APPLICATION_CREDENTIALS" in result.output and ".." not in result.output
    key = tmp_path / "key.json"
    key.write_text('{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\nnope\\n"}')
    result = CliRunner().invoke(cli, ["--warehouse", "bigquery://proj/ds", "status"],
                                env={**no_adc, "GOOGLE_APPLICATION_CREDENTIALS": str(key)})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert f"the Google credentials file {key} is not a usable service-account key" in result.output



def test_a_malformed_google_key_for_sheets_is_one_line_not_an_internal_error(tmp_path):
    db = tmp_path / "w.duckdb"
    DuckDBWarehouse(db).execute("SELECT 1")  # the file exists
    key = tmp_path / "sa.json"
    key.write_text('{"type": "service_account"}')
    settings = tmp_path / "settings.toml"
    settings.write_text(f'[sheets]\ncredentials_file = "{key}"\n[sheets.spreadsheets]\nmain = "1AbC"\n')
    result = CliRunner().invoke(cli, ["--settings", str(settings), "--warehouse", f"duckdb:///{db}", "refresh"])
    assert result.exit_code == 1 and "internal error" not in result.output
    line = result.output.strip()
    assert line.startswith(f"error: the Google credentials file {key} is not a usable service-account key "
                           "(MalformedError: Service account info was not in the expected format, missing fields ")
    assert line.endswith("); download a new JSON key for the service account") and "\n" not in line

def test_demo_runs_end_to_end_and_is_safe_to_run_again(demo_run):
    first, tmp_path = demo_run
    assert first.exit_code == 0, first.output
    assert "loaded now       21 files" in first.output
    second, db = invoke(tmp_path, "demo", "--dir", str(tmp_path / "demo"), env={"OUTPUT_DIR": str(tmp_path / "out")})
    assert second.exit_code == 0 and "21 already loaded" in second.output
    with DuckDBWarehouse(db) as wh:
        periods = wh.query_rows(
            "SELECT settlement_date, COUNT(DISTINCT settlement_period) AS n FROM p114_settlement_canonical GROUP BY 1"
        )
        assert {str(r["settlement_date"]): r["n"] for r in periods}["2025-10-26"] == 50
        assert wh.scalar("SELECT COUNT(*) FROM p114_file_manifest") == 21
    page = (tmp_path / "out" / "demo" / "main.html").read_text()  # in the output folder, not the checkout
    assert "Demo data, generated by python run.py demo" in page and "hours old" not in page
    assert "hours old" not in first.output


def test_a_missing_input_file_is_one_line_saying_so(tmp_path):
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path / 'w.duckdb'}", "load", "p114",
                                      str(tmp_path / "nope.gz")])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"FAILED {tmp_path / 'nope.gz'}: no such file"]


def test_a_dashboard_name_is_never_a_path(tmp_path):
    db = tmp_path / "w.duckdb"
    with DuckDBWarehouse(db) as wh:
        wh.scalar("SELECT 1")
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "refresh", "--dashboard", "../../x",
                                      "--target", "local"], env={"OUTPUT_DIR": str(tmp_path / "out")})
    assert result.exit_code == 1 and "dashboard names are plain names" in result.output
    assert not (tmp_path / "out").exists()


def test_a_table_wider_than_the_terminal_prints_one_block_per_row_with_ids_whole(tmp_path):
    db = tmp_path / "w.duckdb"
    with DuckDBWarehouse(db) as wh:
        wh.scalar("SELECT 1")
    columns = ", ".join(f"'V__AFLEX{i:03d}' AS bm_unit_{i}" for i in range(16))  # 16 ids cannot fit 160 columns
    wide = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "query", f"SELECT {columns}"])
    assert wide.exit_code == 0, wide.output
    assert "row 1 of 1" in wide.output and "…" not in wide.output
    assert all(re.search(rf"bm_unit_{i}\s+V__AFLEX{i:03d}\b", wide.output) for i in range(16))
    tall = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "query",
                                    "SELECT " + ", ".join(f"'T_DRAX-{i}' AS settlement_quantity_of_unit_{i}"
                                                          for i in range(8))])
    assert "row 1 of 1" not in tall.output and "T_DRAX-7" in tall.output  # headers over several lines instead
    narrow = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "query", "SELECT 'T_DRAX-1' AS bm_unit_id"])
    assert "│ T_DRAX-1   │" in narrow.output


def test_an_option_the_report_does_not_read_is_refused_not_ignored(tmp_path):
    for args, option, owners in ((["revenue", "--unit", "2__FBPGM002"], "--unit", "reconciliation"),
                                 (["live_grid", "--from", "2025-10-26"], "--from", "vlp_revenue, revenue"),
                                 (["completeness", "--population", "all"], "--population", "self_balancing")):
        result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path / 'none.duckdb'}", "report", *args])
        assert result.exit_code == 1
        assert result.output.startswith(f"error: report {args[0]} does not take {option} (it is an option of {owners}")
