"""What a refresh would cost on BigQuery with a year of data: bytes scanned per report query.

BigQuery bills a query for the columns it reads in the partitions it reads (on demand: $6.25 per
TiB, at least 10 MB per table a query references). This script measures the two inputs on
full-scale data in DuckDB and combines them:

* **which columns and partitions** each report query reads: its optimised plan (every scan's
  columns and whether the report window's partition filter reached it);
* **how many bytes a row of each column takes** in BigQuery's accounting (INT64, FLOAT64, DATE,
  TIMESTAMP 8 bytes; BOOL 1; STRING 2 + UTF-8 length; NULL 0), averaged over generated full-scale
  S0142 days (8,000 BM units) and a generated IRIS day.

Rows per day: P114 from the generated files (one run per settlement date: a year of all seven runs
is about 3x this for the raw tables, which only the canonical views' file choice reads); IRIS from
the volumes below (PN is Elexon's figure, the others are cadence-based estimates: say so when
quoting them). A query that reads a partitioned table without its window's filter is charged a
whole year of it. ``report NAME --dry-run`` against a real dataset gives BigQuery's own figure.

    python benchmarks/bigquery_cost.py [--days 2] [--units 8000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

HISTORY_DAYS = 365
PRICE_PER_TIB = 6.25
MIN_BYTES_PER_TABLE = 10 * 2**20
IRIS_ROWS_PER_DAY = {  # production volumes: PN from Elexon's stream (IRIS.md); others from their cadence
    "bmrs_freq": 5_760, "bmrs_fuelinst": 288 * 20, "bmrs_pn": 120_000, "bmrs_mels": 120_000, "bmrs_mils": 120_000,
    "bmrs_boalf": 10_000, "bmrs_bod": 250_000, "bmrs_remit": 500, "bmrs_indgen": 48 * 14, "bmrs_inddem": 48 * 14,
    "bmrs_melngc": 48 * 14, "bmrs_imbalngc": 48 * 14, "bmrs_mid": 96, "bmrs_disbsad": 300,
}
SIZE = {"BIGINT": "8", "DOUBLE": "8", "DATE": "8", "TIMESTAMP WITH TIME ZONE": "8", "TIMESTAMP": "8",
        "BOOLEAN": "1", "INTEGER": "8"}


def column_bytes(wh, table: str) -> tuple[dict[str, float], float, str | None]:
    """(BigQuery bytes per row per column, rows per partition day, partition column) of ``table``."""
    from reporting.reports import partition_columns

    partition = partition_columns()
    columns = wh.table_columns(table) or {}
    parts = []
    for name, typ in columns.items():
        size = SIZE.get(typ, f"2 + strlen(CAST(\"{name}\" AS VARCHAR))")
        parts.append(f"AVG(CASE WHEN \"{name}\" IS NULL THEN 0 ELSE {size} END) AS \"{name}\"")
    column = partition.get(table)
    days = f"COUNT(DISTINCT CAST(\"{column}\" AS DATE))" if column else "1"
    # leave out the sentinel rows add_old_rows puts 400 days back (a kept warehouse already has them)
    recent = (f" WHERE \"{column}\" > (SELECT MAX(\"{column}\") FROM {table}) - INTERVAL 300 DAY"
              if column else "")
    row = wh.query_rows(f"SELECT COUNT(*) AS __rows, {days} AS __days, {', '.join(parts)} FROM {table}{recent}")[0]
    rows, days_seen = row.pop("__rows"), row.pop("__days") or 1
    per_day = IRIS_ROWS_PER_DAY.get(table, rows / days_seen)
    return {k: float(v or 0) for k, v in row.items()}, per_day, column


def add_old_rows(wh) -> None:
    """Copy one row of each partitioned table 400 days back: DuckDB drops a filter its statistics
    prove always true, and the plan must show which scans the report window reaches."""
    from reporting.reports import partition_columns

    partition = partition_columns()
    for table in wh.table_names():
        column = partition.get(table)
        spread = wh.scalar(f"SELECT date_diff('day', MIN(\"{column}\"), MAX(\"{column}\")) FROM {table}") if column else None
        if spread is not None and spread < 300:  # not done yet (--keep reuses the file)
            wh.execute(f"INSERT INTO {table} SELECT * REPLACE (\"{column}\" - INTERVAL 400 DAY AS \"{column}\") "
                       f"FROM {table} LIMIT 1")


def estimate(wh, sql: str, params: dict, window_days: float, stats: dict) -> tuple[int, list[str]]:
    """Bytes BigQuery would bill for ``sql`` and a note per table read."""
    total, notes = 0, []
    for table, projected, filters in wh.plan_scans(sql, params):
        if table not in stats:
            stats[table] = column_bytes(wh, table)
        sizes, per_day, partition = stats[table]
        used = {c for c in sizes if c in projected or re.search(rf"\b{re.escape(c)}\b", filters)}
        days = window_days if partition and partition in filters else (HISTORY_DAYS if partition else 1)
        rows = per_day * days if partition else per_day
        nbytes = max(int(rows * sum(sizes[c] for c in used)), MIN_BYTES_PER_TABLE)
        total += nbytes
        notes.append(f"{table}: {len(used)} columns x {days:g} days")
    return total, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=2, help="full-scale S0142 days to measure row sizes on")
    parser.add_argument("--units", type=int, default=8000)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated warehouse in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    from bench_refresh import FIRST_DAY, build_warehouse
    from core.config import Settings
    from reporting.dashboard import load_template
    from reporting.refresh import report_options
    from reporting.reports import LIVE_LOOKBACK, report_sql
    from warehouse.duckdb import DuckDBWarehouse

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bigquery_cost_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        wh = DuckDBWarehouse(build_warehouse(work, args.days, args.units))
        stats: dict = {}
        add_old_rows(wh)
        last = FIRST_DAY + dt.timedelta(days=args.days - 1)
        defaults = {"vlp_revenue": 7, "completeness": 30, "self_balancing": 30,
                    "live_grid": LIVE_LOOKBACK.days + 1}  # partitions a filter ">= as_of - 2 days" touches
        print(f"Estimated BigQuery bytes with {HISTORY_DAYS} days of data ({args.units:,} BM units; "
              f"row sizes measured on {args.days} generated days):\n")
        print(f"{'query':34} {'window':>9} {'GiB':>9}   tables read")
        refresh_total = 0
        needed = {b.report for t in load_template("main").tabs for b in t.blocks}
        for name in sorted(needed):
            options = report_options(Settings(), date_to=last)
            params, queries = report_sql(wh, name, options)
            for section, sql in queries.items():
                nbytes, notes = estimate(wh, sql, params, defaults[name], stats)
                refresh_total += nbytes
                print(f"{name + '.' + section:34} {defaults[name]:>6} d {nbytes / 2**30:9.3f}   {'; '.join(notes)}")
        print(f"\nFull refresh of the main dashboard (default windows): {refresh_total / 2**30:.2f} GiB "
              f"= ${refresh_total / 2**40 * PRICE_PER_TIB:.4f} on demand; every 15 minutes for a month "
              f"(2,880 refreshes): ${refresh_total * 2880 / 2**40 * PRICE_PER_TIB:.2f}")
        print("\nA report over a whole year (--from/--to spanning 365 days):")
        for name in ("vlp_revenue", "completeness", "self_balancing"):
            params, queries = report_sql(wh, name, report_options(Settings(), date_from=FIRST_DAY, date_to=last))
            nbytes = sum(estimate(wh, sql, params, HISTORY_DAYS, stats)[0] for sql in queries.values())
            print(f"  {name:20} {nbytes / 2**30:8.2f} GiB  ${nbytes / 2**40 * PRICE_PER_TIB:.3f}")
        wh.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
