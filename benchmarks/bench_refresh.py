"""Refresh benchmark: a month of full-scale P114 plus a day of IRIS in DuckDB, then ``refresh``.

Builds (or reuses, with ``--keep``) a DuckDB warehouse holding 30 days of SF settlement files at
full scale (8,000 BM units x 48 periods: 11.5M BPI and 11.5M BP7 rows) and a day of IRIS messages,
then times a full refresh of the main dashboard (every report, every tab) to the local target
(workbook + HTML), and to the local Google Sheets API server, counting its requests.

Targets: the whole ``python run.py refresh`` process under 5 s on this machine (wall; CPU printed too,
with a baseline CLI process of the same run); at most 3 Sheets requests per dashboard.

    python benchmarks/bench_refresh.py [--days 30] [--units 8000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from proctime import timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST_DAY = dt.date(2026, 6, 1)


def _make_file(args) -> str:
    folder, day, units, parties = args
    from ingest.p114.generate import sample_units, write_s0142

    created = dt.datetime.combine(day + dt.timedelta(days=23), dt.time(12, 2, 9))
    return str(write_s0142(folder, day, "SF", created_at=created, units=sample_units(units, parties, seed=1), seed=1))


def build_warehouse(work: Path, days: int, units: int) -> Path:
    from ingest.iris.files import replay_directory
    from ingest.iris.generate import IrisGenerator, write_file_drop
    from ingest.iris.load import IrisLoader
    from ingest.p114.backfill import run_backfill
    from warehouse.duckdb import DuckDBWarehouse

    db = work / "month.duckdb"
    if db.exists():
        print(f"reusing {db}")
        return db
    folder = work / "p114"
    dates = [FIRST_DAY + dt.timedelta(days=i) for i in range(days)]
    t = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_make_file, [(folder, d, units, 480) for d in dates]))
    print(f"generated {days} full-size S0142 files in {time.perf_counter() - t:.0f} s")
    wh = DuckDBWarehouse(work / "building.duckdb")
    t = time.perf_counter()
    summary = run_backfill(wh, dates[0], dates[-1], source=str(folder))
    print(f"loaded {summary.records:,} records in {time.perf_counter() - t:.0f} s")
    gen = IrisGenerator(dt.datetime.combine(dates[-1], dt.time(), tzinfo=dt.timezone.utc), seed=3)
    write_file_drop(work / "iris", list(gen.messages(86_400 // 2, spacing_s=2.0)))
    iris = replay_directory(IrisLoader(wh), work / "iris")
    print(f"loaded a day of IRIS: {iris.loaded:,} messages, {iris.rows:,} rows")
    wh.close()
    (work / "building.duckdb").rename(db)
    return db


def _process(args: list[str], work: Path, env: dict | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python run.py ARGS`` as its own process."""
    wall, cpu, _ = timed([sys.executable, str(ROOT / "run.py"), "--log-level", "ERROR", *args], cwd=work,
                         stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--units", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated warehouse in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_refresh_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        db = build_warehouse(work, args.days, args.units)
        from core.config import load_settings
        from reporting.refresh import refresh, report_options
        from tests.peers.sheets import FakeSheets
        from warehouse.duckdb import DuckDBWarehouse

        wh = DuckDBWarehouse(db)
        rows = wh.scalar("SELECT COUNT(*) FROM elexon_p114_s0142_bpi") + wh.scalar(
            "SELECT COUNT(*) FROM elexon_p114_s0142_bp7")
        last = FIRST_DAY + dt.timedelta(days=args.days - 1)
        wh.close()
        print(f"warehouse       {rows:,} BPI + BP7 rows ({args.days} days x {args.units:,} units x 48 periods) "
              "+ a day of IRIS")
        # the whole process a user runs, cold, against a baseline in the same run: the same CLI
        # starting, opening the warehouse and running one trivial query
        url = f"duckdb:///{db}"
        base = [_process(["--warehouse", url, "query", "SELECT 1"], work) for _ in range(args.repeat)]
        runs = [_process(["--warehouse", url, "refresh", "--target", "local"], work,
                         env={"SETTINGS_FILE": "", "OUTPUT_DIR": str(work / "out")}) for _ in range(args.repeat)]
        b_wall, b_cpu = statistics.median(w for w, _ in base), statistics.median(c for _, c in base)
        r_wall, r_cpu = statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs)
        print(f"baseline        python run.py query 'SELECT 1': {b_wall:.2f} s wall, {b_cpu:.2f} s CPU (median of "
              f"{args.repeat})")
        print(f"refresh, local  python run.py refresh --target local (default windows, ending {last}): "
              f"{r_wall:.2f} s wall, {r_cpu:.2f} s CPU (median of {args.repeat}; {r_wall / b_wall:.1f}x / "
              f"{r_cpu / b_cpu:.1f}x the baseline)   (target < 5 s wall)   {'OK' if r_wall < 5 else 'MISSED'}")

        # where the time goes, in one process, each part alone (the refresh writes each workbook tab while
        # the engine runs the next reports), with the refresh's own default windows
        wh = DuckDBWarehouse(db)
        local = load_settings(environ={"OUTPUT_DIR": str(work / "out")})
        options = report_options(local)
        from reporting.dashboard import build_dashboard, load_template
        from reporting.html import write_html
        from reporting.workbook import write_workbook

        t = time.perf_counter()
        board = build_dashboard(wh, load_template("main"), options)
        t_reports = time.perf_counter() - t
        t = time.perf_counter()
        write_workbook(board, work / "out" / "split.xlsx")
        t_xlsx = time.perf_counter() - t
        t = time.perf_counter()
        write_html(board, work / "out" / "split.html")
        t_html = time.perf_counter() - t
        cells = sum(len(b.rows) * len(b.headers) for tab in board.tabs for b in tab.blocks)
        print(f"  each alone, in one process: reports {t_reports:.2f} s, workbook {t_xlsx:.2f} s ({cells:,} cells), "
              f"HTML {t_html:.2f} s")

        fake = FakeSheets().start()
        fake.create("bench", tabs={"Sheet1": (1000, 26)})
        remote = load_settings(environ={"SHEETS_SPREADSHEET_ID": "bench", "SHEETS_API_ENDPOINT": fake.url,
                                        "OUTPUT_DIR": str(work / "out")})
        t = time.perf_counter()
        first_push = refresh(wh, remote, "main", options=options)
        second_push = refresh(wh, remote, "main", options=options)
        elapsed = (time.perf_counter() - t) / 2
        fake.stop()
        print(f"refresh, Sheets {elapsed:.2f} s per refresh to the local Sheets API; requests per dashboard: "
              f"{first_push.requests} (new tabs), {second_push.requests} (existing tabs)   (target <= 3)   "
              f"{'OK' if max(first_push.requests, second_push.requests) <= 3 else 'MISSED'}")
        wh.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
