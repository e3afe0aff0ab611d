"""P114 benchmark: parse + load one full-size S0142 day file into DuckDB, against ``gzip -dc``.

Generates a realistic day file (8,000 BM units x 48 periods, ~1.7M records, the record mix of a
real 2026 SF file), then, in the same run and alternating:

* ``gzip -dc FILE > /dev/null`` (the baseline), and
* parse + load into a new DuckDB file, three times in a fresh Python process: the first load is a
  cold start, the next two are the steady state a backfill runs in (one process, file after file).
  Interpreter start-up and imports are not timed; closing (checkpointing) the database is.

Prints records/s and the ratio of the steady-state load time to the gzip time (medians), the
cold first-file time, and the peak RSS of the loading process.
Targets (issue #2): ratio <= 3x, >= 500,000 records/s, peak memory < 2 GiB.

    python benchmarks/bench_p114.py [--units 8000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(file: str, workdir: str, loads: int) -> None:
    """Measured part, in a fresh process: ``loads`` parse+loads of ``file``, each into a new DuckDB file.

    The first is a cold start (imports done, nothing else warmed); the rest are the steady state
    a backfill runs in, one file after another in one process.
    """
    from ingest.p114.load import load_file
    from ingest.p114.tables import ensure_p114_schema
    from warehouse.duckdb import DuckDBWarehouse

    times, records = [], 0
    for i in range(loads):
        db = Path(workdir) / f"bench_{i}.duckdb"
        wh = DuckDBWarehouse(db)
        ensure_p114_schema(wh)
        started = time.perf_counter()
        result = load_file(wh, file, ensure_schema=False)
        wh.close()  # a closed file is a durable, checkpointed file: part of the measured work
        times.append(time.perf_counter() - started)
        if result.status != "loaded":
            raise SystemExit(f"load failed: {result.describe()}")
        records = result.records
        db.unlink()
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": times, "records": records, "peak_mib": peak_mib}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=8000)
    parser.add_argument("--parties", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated file in")
    parser.add_argument("--child", nargs=3, metavar=("FILE", "DIR", "LOADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    from ingest.p114.generate import sample_units, write_s0142

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_p114_"))
    work.mkdir(parents=True, exist_ok=True)
    day, created = dt.date(2026, 8, 28), dt.datetime(2026, 9, 22, 22, 35, 19)
    file = work / f"S0142_{day:%Y%m%d}_SF_{created:%Y%m%d%H%M%S}.gz"
    if not file.exists():
        t = time.perf_counter()
        write_s0142(work, day, "SF", created_at=created, units=sample_units(args.units, args.parties, seed=1), seed=1)
        print(f"generated {file.name} ({file.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t:.1f} s")

    gzip_times, cold, warm, peaks, records = [], [], [], [], 0
    for i in range(args.repeat):
        t = time.perf_counter()
        subprocess.run(f"gzip -dc '{file}' > /dev/null", shell=True, check=True)
        gzip_times.append(time.perf_counter() - t)
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(file), str(work), "3"], check=True, capture_output=True, text=True
        )
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        cold.append(measured["seconds"][0])
        warm.extend(measured["seconds"][1:])
        peaks.append(measured["peak_mib"])
        records = measured["records"]
        print(f"run {i + 1}: gzip -dc {gzip_times[-1]:.3f} s, parse+load "
              + ", ".join(f"{x:.3f}" for x in measured["seconds"]) + " s (first in a fresh process, then warm)")

    gz, steady, first = statistics.median(gzip_times), statistics.median(warm), statistics.median(cold)
    rate, ratio, peak = records / steady, steady / gz, max(peaks)
    print()
    print(f"file            {file.name}: {records:,} records, {file.stat().st_size / 1e6:.1f} MB gzip")
    print(f"gzip -dc        {gz:.3f} s (median of {len(gzip_times)})")
    print(f"parse+load      {steady:.3f} s (median of {len(warm)}) into DuckDB, steady state as in a backfill")
    print(f"  first file    {first:.3f} s in a fresh process ({first / gz:.2f}x gzip): includes start-up costs")
    print(f"throughput      {rate:,.0f} records/s   (target >= 500,000)   {'OK' if rate >= 500_000 else 'MISSED'}")
    print(f"ratio to gzip   {ratio:.2f}x              (target <= 3x)        {'OK' if ratio <= 3 else 'MISSED'}")
    print(f"peak memory     {peak:,.0f} MiB          (target < 2048 MiB)   {'OK' if peak < 2048 else 'MISSED'}")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
