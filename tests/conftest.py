"""Shared fixtures: a throw-away DuckDB warehouse and small generated S0142 files."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from pathlib import Path

import pytest

from ingest.p114.generate import default_created_at, generate_s0142_lines, sample_units, write_s0142_lines
from ingest.p114.layout import S0142Name
from warehouse.duckdb import DuckDBWarehouse

NORMAL_DAY = dt.date(2024, 10, 11)  # 48 periods
SHORT_DAY = dt.date(2024, 3, 31)  # clocks go forward: 46 periods
LONG_DAY = dt.date(2024, 10, 27)  # clocks go back: 50 periods


@pytest.fixture
def wh(tmp_path: Path):
    warehouse = DuckDBWarehouse(tmp_path / "warehouse.duckdb")
    yield warehouse
    warehouse.close()


@pytest.fixture(scope="session")
def units():
    """A small unit population with every prefix the generator knows (2__, V__, T_, E_, I_ …)."""
    return sample_units(24, 5, seed=7)


def s0142_lines(day=NORMAL_DAY, run="SF", units=None, created_at=None, seed=7, flow_version="S0142013"):
    units = units if units is not None else sample_units(24, 5, seed=7)
    created_at = created_at or default_created_at(day, run)
    return generate_s0142_lines(day, run, created_at, units, seed=seed, flow_version=flow_version), created_at


def write_lines(directory: Path, lines: list[str], day=NORMAL_DAY, run="SF", created_at=None, **kwargs) -> Path:
    created_at = created_at or default_created_at(day, run)
    gz = kwargs.get("gz", True)
    return write_s0142_lines(directory / S0142Name.format(day, run, created_at, gz=gz), lines, **kwargs)


@pytest.fixture
def portal(monkeypatch):
    """A running local Elexon Portal; ELEXON_PORTAL_KEY/URL point the real client at it."""
    from tests.peers.portal import FakePortal

    fake = FakePortal().start()
    monkeypatch.setenv("ELEXON_PORTAL_KEY", fake.key)
    monkeypatch.setenv("ELEXON_PORTAL_URL", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def insights(monkeypatch):
    """A running local Insights API; INSIGHTS_API_URL points the real client at it."""
    from tests.peers.insights import FakeInsights

    fake = FakeInsights().start()
    monkeypatch.setenv("INSIGHTS_API_URL", fake.url)
    yield fake
    fake.stop()


@pytest.fixture
def sheets(monkeypatch):
    """A running local Google Sheets API with spreadsheet 'sheet-1'; the Sheets endpoint points at it."""
    from tests.peers.sheets import FakeSheets

    fake = FakeSheets().start()
    fake.create("sheet-1", tabs={"Sheet1": (1000, 26)})
    monkeypatch.setenv("SHEETS_API_ENDPOINT", fake.url)
    monkeypatch.setenv("SHEETS_SPREADSHEET_ID", "sheet-1")
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def bigquery_emulator():
    """local-bigquery on loopback (installed into .cache/bigquery-emulator on first use).

    If it cannot be installed or started, every test that needs it fails with the reason: BigQuery
    parity is never skipped silently. BIGQUERY_EMULATOR=skip skips them knowingly.
    """
    from tests.peers.bigquery.emulator import Emulator, EmulatorUnavailable

    if os.environ.get("BIGQUERY_EMULATOR") == "skip":
        pytest.skip("BIGQUERY_EMULATOR=skip: the BigQuery backend is NOT being tested")
    try:
        emulator = Emulator().start()
    except EmulatorUnavailable as exc:
        pytest.fail(f"the BigQuery emulator is unavailable, so BigQuery parity is NOT tested: {exc}\n"
                    "(set BIGQUERY_EMULATOR=skip to skip these tests knowingly)", pytrace=False)
    yield emulator
    emulator.stop()


@pytest.fixture
def bq(bigquery_emulator):
    """A BigQuery warehouse on the emulator, in a fresh dataset."""
    from warehouse.bigquery import BigQueryOptions, BigQueryWarehouse

    dataset = f"test_{uuid.uuid4().hex[:10]}"
    warehouse = BigQueryWarehouse(bigquery_emulator.project, dataset,
                                  BigQueryOptions(api_endpoint=bigquery_emulator.endpoint, location="EU"))
    yield warehouse
    try:
        warehouse.client.delete_dataset(f"{bigquery_emulator.project}.{dataset}", delete_contents=True,
                                        not_found_ok=True)
    finally:
        warehouse.close()


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``python run.py demo`` once for the session, in a temporary folder: (result, folder)."""
    from click.testing import CliRunner

    from run import cli

    root = tmp_path_factory.mktemp("demo_run")
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{root / 'wh.duckdb'}", "demo", "--dir",
                                      str(root / "demo")], env={"OUTPUT_DIR": str(root / "out")},
                                catch_exceptions=False)
    return result, root
