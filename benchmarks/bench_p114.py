"""P114 benchmark: ``python run.py load p114 FILE`` on a full-size S0142 day file, against ``gzip -dc``.

Generates a full-size day file (8,000 BM units x 48 periods) in one of two record mixes:

* ``full``: the record mix of a real 2026 SF file (every record type, ~1.7M records), and
* ``lean``: only the records the loader reads plus the system/party framing (~0.9M records), the
  shape of an independent generator's file: less text per BM unit, so gzip is faster and the
  ratio harder.

Then, in the same run and alternating, ``--repeat`` times:

* ``gzip -dc FILE > /dev/null`` (the baseline),
* **cold**: the whole process a user runs, ``python run.py --warehouse duckdb:///NEW load p114 FILE``
  into a fresh warehouse (interpreter start-up, imports, schema creation, parse, load, checkpoint);
* **steady**: the second and third file loaded by one process, timed in that process;
* with ``--backfill N``: **backfill**, the whole ``python run.py backfill p114 FROM TO --source DIR``
  process over N full-size day files (the next file parsed while this one is written), against
  ``gzip -dc`` of the same N files.

Wall and CPU seconds (user + system, all threads; children measured with getrusage) for each, with
ratios to gzip's; medians. Targets (issue 10): cold <= 3.0x gzip wall, <= 3.5x gzip CPU.

    python benchmarks/bench_p114.py [--mix full|lean] [--units 8000] [--repeat 5] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from proctime import timed

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LEAN = {"AAA", "SRH", "SPI", "BPI", "BPH", "APC", "SP7", "SSD", "BP7", "BO4", "ZZZ"}


def child(file: str, workdir: str, loads: int) -> None:
    """Steady state, in one process: ``loads`` parse+loads of ``file``, each into a new DuckDB file."""
    from ingest.p114.load import load_file
    from ingest.p114.tables import ensure_p114_schema
    from warehouse.duckdb import DuckDBWarehouse

    walls, cpus = [], []
    for i in range(loads):
        db = Path(workdir) / f"steady_{i}.duckdb"
        wh = DuckDBWarehouse(db)
        ensure_p114_schema(wh)
        started, cpu = time.perf_counter(), time.process_time()
        result = load_file(wh, file, ensure_schema=False)
        wh.close()  # a closed file is a durable, checkpointed file: part of the measured work
        walls.append(time.perf_counter() - started)
        cpus.append(time.process_time() - cpu)
        if result.status != "loaded":
            raise SystemExit(f"load failed: {result.describe()}")
        db.unlink()
    print(json.dumps({"wall": walls[1:], "cpu": cpus[1:]}))


def generate(work: Path, units: int, parties: int, mix: str, day: dt.date = dt.date(2026, 8, 28)) -> Path:
    from ingest.p114.generate import generate_s0142_lines, sample_units, write_s0142_lines
    from ingest.p114.layout import S0142Name

    created = dt.datetime.combine(day + dt.timedelta(days=25), dt.time(22, 35, 19))
    file = work / mix / S0142Name.format(day, "SF", created)
    if file.exists():
        return file
    file.parent.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    lines = generate_s0142_lines(day, "SF", created, sample_units(units, parties, seed=1), seed=1)
    if mix == "lean":
        lines = [line for line in lines if line[:3] in LEAN]
        lines[-1] = f"ZZZ|{len(lines)}|0|"
    write_s0142_lines(file, lines)
    print(f"generated {file.name} ({mix}: {len(lines):,} records, {file.stat().st_size / 1e6:.1f} MB) "
          f"in {time.perf_counter() - t:.1f} s")
    return file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mix", choices=["full", "lean"], default="full")
    parser.add_argument("--units", type=int, default=8000)
    parser.add_argument("--parties", type=int, default=480)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated files in")
    parser.add_argument("--backfill", type=int, default=0, metavar="N",
                        help="also time a backfill process over N day files (0: skip)")
    parser.add_argument("--child", nargs=3, metavar=("FILE", "DIR", "LOADS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]))
        return

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_p114_"))
    file = generate(work, args.units, args.parties, args.mix)
    gzip_w, gzip_c, cold_w, cold_c, steady_w, steady_c = [], [], [], [], [], []
    for i in range(args.repeat):
        w, c, _ = timed(f"gzip -dc '{file}' > /dev/null", shell=True)
        gzip_w.append(w), gzip_c.append(c)
        db = work / f"cold_{i}.duckdb"
        db.unlink(missing_ok=True)
        w, c, proc = timed([sys.executable, "run.py", "--warehouse", f"duckdb:///{db}", "load", "p114", str(file)],
                           cwd=ROOT)
        db.unlink()
        cold_w.append(w), cold_c.append(c)
        _, _, proc = timed([sys.executable, __file__, "--child", str(file), str(work), "3"])
        steady = json.loads(proc.stdout.strip().splitlines()[-1])
        steady_w += steady["wall"]
        steady_c += steady["cpu"]
        print(f"run {i + 1}: gzip -dc {gzip_w[-1]:.2f} s wall / {gzip_c[-1]:.2f} s CPU; "
              f"cold load {cold_w[-1]:.2f} / {cold_c[-1]:.2f}; steady "
              + ", ".join(f"{w:.2f} / {c:.2f}" for w, c in zip(steady["wall"], steady["cpu"])))

    med = statistics.median
    gw, gc = med(gzip_w), med(gzip_c)
    print()
    print(f"file           {file.name} ({args.mix} mix), {file.stat().st_size / 1e6:.1f} MB gzip")
    print(f"gzip -dc       {gw:.3f} s wall  {gc:.3f} s CPU   (median of {len(gzip_w)})")
    for label, w, c, targets in (("cold process", med(cold_w), med(cold_c), (3.0, 3.5)),
                                 ("steady state", med(steady_w), med(steady_c), None)):
        verdict = ""
        if targets:
            ok = w / gw <= targets[0] and c / gc <= targets[1]
            verdict = f"   target <= {targets[0]}x wall, <= {targets[1]}x CPU: {'OK' if ok else 'MISSED'}"
        print(f"{label:14s} {w:.3f} s wall  {c:.3f} s CPU   = {w / gw:.2f}x gzip wall, {c / gc:.2f}x gzip CPU{verdict}")
    if args.backfill:
        backfill(work, args)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def backfill(work: Path, args) -> None:
    """The whole backfill process over ``args.backfill`` day files, against gzip -dc of the same files."""
    days = [dt.date(2026, 8, 28) + dt.timedelta(days=i) for i in range(args.backfill)]
    files = [generate(work, args.units, args.parties, args.mix, day) for day in days]
    gzip_w, gzip_c, walls, cpus = [], [], [], []
    for i in range(args.repeat):
        w, c, _ = timed("gzip -dc " + " ".join(f"'{f}'" for f in files) + " > /dev/null", shell=True)
        gzip_w.append(w), gzip_c.append(c)
        db = work / f"backfill_{i}.duckdb"
        db.unlink(missing_ok=True)
        w, c, _ = timed([sys.executable, "run.py", "--warehouse", f"duckdb:///{db}", "backfill", "p114",
                         str(days[0]), str(days[-1]), "--source", str(files[0].parent)], cwd=ROOT)
        db.unlink()
        walls.append(w), cpus.append(c)
        print(f"backfill run {i + 1}: gzip -dc {gzip_w[-1]:.2f} s / {gzip_c[-1]:.2f} s CPU; "
              f"backfill {walls[-1]:.2f} / {cpus[-1]:.2f}")
    med, n = statistics.median, len(files)
    gw, gc, w, c = med(gzip_w), med(gzip_c), med(walls), med(cpus)
    print(f"backfill       {n} files: {w:.3f} s wall  {c:.3f} s CPU ({w / n:.2f} s / {c / n:.2f} s a file) "
          f"= {w / gw:.2f}x gzip wall, {c / gc:.2f}x gzip CPU (gzip -dc of the {n}: {gw:.2f} s / {gc:.2f} s)")


if __name__ == "__main__":
    main()
