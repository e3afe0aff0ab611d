"""Shared fixtures: a throw-away DuckDB warehouse and small generated S0142 files."""

from __future__ import annotations

import datetime as dt
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
