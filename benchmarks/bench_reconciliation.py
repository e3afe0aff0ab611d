"""Reconciliation benchmark: the T3 recompute of a full day, as ``python run.py report reconciliation``.

Builds (or reuses, with ``--keep``) a DuckDB warehouse with one settlement day at realistic volume:
PN and BOD (six pairs) for every unit and period, thousands of BOALF rows (acceptances of one to four
segments, spanning periods, superseding each other), and BOAV/EBOCF for the accepted units. Then
times, each as its own cold process:

* ``report reconciliation --from D --to D --format json`` (every section: by unit, summary, by period,
  by acceptance; each recomputes the day), the target: under 10 s on this machine;
* ``report reconciliation --section by_unit`` (the figure most users read);
* baseline, same run: ``query`` of one scan over the three inputs (process start, warehouse open,
  reading every row the recompute reads).

    python benchmarks/bench_reconciliation.py [--units 1000] [--accepted 400] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from proctime import timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DAY = dt.date(2026, 6, 3)


def _z(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_warehouse(work: Path, units: int, accepted: int) -> tuple[Path, dict]:
    from core.settlement import period_start_utc, periods_in_day
    from ingest.iris.decode import Message
    from ingest.iris.load import IrisLoader
    from warehouse.duckdb import DuckDBWarehouse

    db = work / "reconciliation.duckdb"
    counts_file = work / "counts.json"
    if db.exists() and counts_file.exists():
        print(f"reusing {db}")
        return db, json.loads(counts_file.read_text())
    rng = random.Random(7)
    ids = [f"T_UNIT-{i}" for i in range(units)]
    periods = periods_in_day(DAY)
    pn, bod, boalf, ebocf = [], [], [], []
    for unit in ids:
        for p in range(1, periods + 1):
            start = period_start_utc(DAY, p)
            level = rng.randint(0, 400)
            for a, b in ((0, 10), (10, 30)):
                nxt = max(0, level + rng.randint(-30, 30))
                pn.append({"dataset": "PN", "settlementDate": DAY.isoformat(), "settlementPeriod": p,
                           "timeFrom": _z(start + dt.timedelta(minutes=a)),
                           "timeTo": _z(start + dt.timedelta(minutes=b)), "levelFrom": level, "levelTo": nxt,
                           "bmUnit": unit})
                level = nxt
            for pair in (-3, -2, -1, 1, 2, 3):
                size = rng.randint(10, 80) * (1 if pair > 0 else -1)
                offer = round(rng.uniform(60, 200), 2)
                bod.append({"dataset": "BOD", "settlementDate": DAY.isoformat(), "settlementPeriod": p,
                            "timeFrom": _z(start), "timeTo": _z(start + dt.timedelta(minutes=30)), "levelFrom": size,
                            "levelTo": size, "pairId": pair, "offer": offer,
                            "bid": round(offer - rng.uniform(5, 40), 2), "bmUnit": unit})
    number = 10_000
    first = period_start_utc(DAY, 1)
    for unit in rng.sample(ids, accepted):
        for _ in range(rng.randint(2, 8)):
            number += 1
            at = first + dt.timedelta(minutes=rng.randint(0, 24 * 60 - 100))
            level = rng.randint(0, 450)
            for _ in range(rng.randint(1, 4)):
                nxt_t = at + dt.timedelta(minutes=rng.choice((2, 5, 10, 20, 30)))
                nxt = max(0, level + rng.randint(-80, 80))
                boalf.append({"dataset": "BOALF", "settlementDate": DAY.isoformat(), "settlementPeriodFrom": 1,
                              "settlementPeriodTo": 1, "timeFrom": _z(at), "timeTo": _z(nxt_t), "levelFrom": level,
                              "levelTo": nxt, "acceptanceNumber": number, "acceptanceTime": _z(at), "rrFlag": False,
                              "bmUnit": unit})
                at, level = nxt_t, nxt
        for p in range(1, periods + 1, 3):
            ebocf.append({"dataset": "EBOCF", "createdDateTime": "2026-06-04T03:00:00Z",
                          "settlementDate": DAY.isoformat(), "settlementPeriod": p,
                          "startTime": _z(period_start_utc(DAY, p)), "bmUnit": unit, "side": "offer",
                          "bidOfferPairCashflows": {"positive1": 100.0}, "totalCashflow": 100.0})
    wh = DuckDBWarehouse(work / "building.duckdb")
    loader = IrisLoader(wh)
    t = time.perf_counter()
    for code, rows in (("PN", pn), ("BOD", bod), ("BOALF", boalf), ("EBOCF", ebocf)):
        for i in range(0, len(rows), 50_000):
            loader.load([Message(f"{code}-{i}", json.dumps(rows[i:i + 50_000]).encode(), code)])
    wh.close()
    (work / "building.duckdb").rename(db)
    counts = {"PN": len(pn), "BOD": len(bod), "BOALF": len(boalf), "EBOCF": len(ebocf),
              "acceptances": number - 10_000}
    counts_file.write_text(json.dumps(counts))
    print(f"loaded {sum(counts.values()):,} rows in {time.perf_counter() - t:.0f} s")
    return db, counts


def _process(args: list[str], work: Path) -> tuple[float, float]:
    """(wall, CPU) seconds of ``python run.py ARGS`` as its own process."""
    wall, cpu, _ = timed([sys.executable, str(ROOT / "run.py"), "--log-level", "ERROR", *args], cwd=work,
                         stdout=subprocess.DEVNULL)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=1000, help="units with PN and BOD every period [1000]")
    parser.add_argument("--accepted", type=int, default=400, help="units with acceptances [400]")
    parser.add_argument("--keep", type=Path, help="build into (or reuse) this folder")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-reconciliation-"))
    work.mkdir(parents=True, exist_ok=True)
    db, counts = build_warehouse(work, args.units, args.accepted)
    url = f"duckdb:///{db}"
    print(f"one day ({DAY}): {counts['BOALF']:,} BOALF rows ({counts['acceptances']:,} acceptances), "
          f"{counts['BOD']:,} BOD rows, {counts['PN']:,} PN rows, {counts['EBOCF']:,} EBOCF rows")
    day = DAY.isoformat()
    runs = {
        "baseline: query scanning PN, BOD and BOALF": [
            "--warehouse", url, "query",
            "SELECT (SELECT SUM(level_to) FROM bmrs_pn) + (SELECT SUM(offer) FROM bmrs_bod) "
            "+ (SELECT SUM(level_to) FROM bmrs_boalf) AS s"],
        "report reconciliation --section by_unit": [
            "--warehouse", url, "report", "reconciliation", "--from", day, "--to", day, "--section", "by_unit",
            "--format", "json"],
        "report reconciliation (all four sections)": [
            "--warehouse", url, "report", "reconciliation", "--from", day, "--to", day, "--format", "json"],
    }
    results = {}
    for name, cli_args in runs.items():
        samples = [_process(cli_args, work) for _ in range(args.repeat)]
        results[name] = (statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples))
    base_wall, base_cpu = results["baseline: query scanning PN, BOD and BOALF"]
    title = f"process (cold, median of {args.repeat})"
    print(f"{title:<48} {'wall s':>7} {'CPU s':>7} {'x wall':>7} {'x CPU':>7}")
    for name, (wall, cpu) in results.items():
        print(f"{name:<48} {wall:7.2f} {cpu:7.2f} {wall / base_wall:7.2f} {cpu / base_cpu:7.2f}")
    full = results["report reconciliation (all four sections)"][0]
    print(f"target: a day's reconciliation under 10 s wall: {'met' if full < 10 else 'MISSED'} ({full:.1f} s)")


if __name__ == "__main__":
    main()
