"""Legacy import benchmark: ``python run.py import legacy`` of the user's own tables, in DuckDB.

Builds a DuckDB file holding two tables in the user's layouts (every value a STRING, camelCase
names, their bookkeeping columns):

* ``bmrs_freq``: a reading every 15 s for ``--freq-days`` days (two years: 4.2M rows), and
* ``elexon_p114_s0142_bpi``: five BPI fields for ``--units`` BM units x 48 periods x ``--p114-days``
  days (8,000 x 48 x 30: 11.5M rows),

then times, as whole cold processes in the same run (alternating, medians), each import into the
project's tables under ``table_prefix = "ep_"`` (a fresh copy of the file each round), against a
baseline process that reads the same table once (``run.py query "SELECT COUNT(*), MAX(...) ..."``).
Wall and CPU seconds (user + system of the process and its threads).

    python benchmarks/bench_legacy_import.py [--freq-days 730] [--p114-days 30] [--units 8000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from proctime import timed

ROOT = Path(__file__).resolve().parent.parent


def build(db: Path, freq_days: int, p114_days: int, units: int) -> dict[str, int]:
    import duckdb

    con = duckdb.connect(str(db))
    t = time.perf_counter()
    con.execute(f"""
        CREATE TABLE bmrs_freq AS
        SELECT strftime(ts, '%Y-%m-%dT%H:%M:%SZ') AS "measurementTime",
               CAST(round(50 + 0.1 * sin(i / 40.0), 3) AS VARCHAR) AS frequency,
               'FREQ' AS dataset, 'FREQ' AS _dataset, '' AS _window_from_utc, '' AS _window_to_utc,
               strftime(ts + INTERVAL 2 MINUTE, '%Y-%m-%dT%H:%M:%SZ') AS _ingested_utc, '' AS _source_columns,
               'stream' AS _source_api, '' AS _hash_source_cols, md5(CAST(i AS VARCHAR)) AS _hash_key
        FROM (SELECT i, TIMESTAMP '2023-01-01' + i * INTERVAL 15 SECOND AS ts
              FROM range({freq_days * 5760}) AS r(i))""")
    con.execute(f"""
        CREATE TABLE elexon_p114_s0142_bpi AS
        SELECT CAST(DATE '2024-06-01' + CAST(d AS INTEGER) AS VARCHAR) AS "settlementDate",
               CAST(p AS VARCHAR) AS "settlementPeriod", 'R3' AS "settlementRunType",
               printf('2__U%05d', u) AS "bmUnitId", CAST(round((u % 97) - 40.5 + p / 10.0, 3) AS VARCHAR) AS "meteredVolume"
        FROM range({p114_days}) AS a(d), range(1, 49) AS b(p), range({units}) AS c(u)""")
    counts = {t: con.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("bmrs_freq", "elexon_p114_s0142_bpi")}
    con.close()
    print(f"built {db.name}: {counts['bmrs_freq']:,} FREQ rows, {counts['elexon_p114_s0142_bpi']:,} P114 rows "
          f"in {time.perf_counter() - t:.1f} s")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--freq-days", type=int, default=730)
    parser.add_argument("--p114-days", type=int, default=30)
    parser.add_argument("--units", type=int, default=8000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_legacy_"))
    source = work / "legacy.duckdb"
    counts = build(source, args.freq_days, args.p114_days, args.units)
    env = dict(os.environ, WAREHOUSE_TABLE_PREFIX="ep_")
    jobs = {"FREQ": ("bmrs_freq", "SELECT COUNT(*), MAX(\"measurementTime\") FROM bmrs_freq"),
            "S0142_BPI": ("elexon_p114_s0142_bpi",
                          "SELECT COUNT(*), MAX(\"meteredVolume\") FROM elexon_p114_s0142_bpi")}
    results: dict[str, dict[str, list[float]]] = {code: {"wall": [], "cpu": [], "base_wall": [], "base_cpu": []}
                                                  for code in jobs}
    for i in range(args.repeat):
        for code, (table, baseline) in jobs.items():
            db = work / f"round_{i}_{code}.duckdb"
            shutil.copyfile(source, db)
            url = f"duckdb:///{db}"
            w, c, _ = timed([sys.executable, "run.py", "--warehouse", url, "query", baseline], cwd=ROOT, env=env)
            results[code]["base_wall"].append(w), results[code]["base_cpu"].append(c)
            w, c, proc = timed([sys.executable, "run.py", "--warehouse", url, "import", "legacy", table,
                                "--dataset", code], cwd=ROOT, env=env)
            results[code]["wall"].append(w), results[code]["cpu"].append(c)
            db.unlink()
            print(f"round {i + 1} {code}: import {w:.2f} s wall / {c:.2f} s CPU; {proc.stdout.splitlines()[0]}")
    med = statistics.median
    print()
    for code, (table, _) in jobs.items():
        r = results[code]
        n = counts[table]
        print(f"{code:10s} {n:>11,} rows: import {med(r['wall']):.2f} s wall, {med(r['cpu']):.2f} s CPU "
              f"({n / med(r['wall']):,.0f} rows/s); baseline read {med(r['base_wall']):.2f} s / "
              f"{med(r['base_cpu']):.2f} s = {med(r['wall']) / med(r['base_wall']):.1f}x wall, "
              f"{med(r['cpu']) / med(r['base_cpu']):.1f}x CPU")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
