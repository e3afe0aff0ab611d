"""IRIS benchmark: messages per wall second and per CPU second, whole processes, cold.

1. File drop: 50,000 messages in the realistic mix (MILS, MELS, BOALF, PN, BOD, FREQ, FUELINST,
   the indicated forecasts, MID, DISBSAD, REMIT) laid out as Elexon's client writes them. Each
   round runs the command a user runs, ``python run.py ingest iris --from-dir DIR --once``, in a
   fresh process on a fresh DuckDB file, and measures its wall time and CPU seconds (user + system,
   from the child's rusage). Baseline in the same run: a lean script doing the minimum the same
   data needs (read each file, orjson, one Arrow table per dataset, one DuckDB insert each: no
   typing checks, keys, ledger, quarantine, corrections or history), also as a whole process.
   With alert rules: the same command with a settings file of nine alert rules (every market kind
   plus silence) and a JSON webhook target on a local server; the worker pokes a check after each
   commit, run on the monitor's thread in the same process (its CPU is counted). The ratio to the
   run without rules is the cost of alerting to ingestion (issue #13: "unchanged").
2. Service Bus: the local AMQP 1.0 peer (tests/peers/servicebus.py) in its own process, preloaded
   with messages, drained by the real azure-servicebus SDK through ``IrisWorker`` (complete after
   commit), timed from connecting to the last batch; CPU seconds of the worker's process.

Targets (issue #9): >= 9,000 messages per CPU second from the file drop; the Service Bus rate must
not drop below the previous release's.

    python benchmarks/bench_iris.py [--messages 50000] [--sdk-messages 20000] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import proctime

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.iris.config import IrisSettings  # noqa: E402
from ingest.iris.generate import IrisGenerator, write_file_drop  # noqa: E402
from ingest.iris.load import IrisLoader  # noqa: E402
from ingest.iris.servicebus import IrisWorker  # noqa: E402
from warehouse.duckdb import DuckDBWarehouse  # noqa: E402

START = dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc)
TARGET = 9_000  # messages per CPU second

LEAN = r'''
import os, sys, orjson, pyarrow as pa, duckdb
from collections import defaultdict
root, db = sys.argv[1], sys.argv[2]
con = duckdb.connect(db)
groups = defaultdict(list)
files = []
for d in os.scandir(root):
    for e in os.scandir(d.path):
        files.append(e.path)
for i, path in enumerate(files, 1):
    with open(path, "rb") as f:
        records = orjson.loads(f.read())
    if isinstance(records, str):
        records = orjson.loads(records)
    groups[os.path.basename(os.path.dirname(path))].extend(records)
    if i % 10_000 == 0 or i == len(files):
        for code, rows in groups.items():
            t = pa.Table.from_pylist(rows)
            t = t.select([c for c in t.column_names if not pa.types.is_nested(t.schema.field(c).type)])
            con.register("b", t)
            con.execute(f"CREATE TABLE IF NOT EXISTS {code} AS SELECT * FROM b LIMIT 0")
            con.execute(f"INSERT INTO {code} BY NAME SELECT * FROM b")
            con.unregister("b")
        groups.clear()
con.close()
'''


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, stdout) of a whole child process."""
    wall, cpu, proc = proctime.timed(cmd, cwd=ROOT)
    return wall, cpu, proc.stdout


def fresh(work: Path, name: str) -> Path:
    for stale in (work / name, work / f"{name}.wal"):
        stale.unlink(missing_ok=True)
    return work / name


RULES = """
[alerts]
min_interval_seconds = 10
[alerts.targets]
desk = "json://127.0.0.1:{port}/hook"
[[alerts.rules]]
name = "band"
kind = "frequency"
[[alerts.rules]]
name = "spike"
kind = "price"
source = "mid"
above = 150
jump = 50
[[alerts.rules]]
name = "margin"
kind = "margin"
below = 3000
[[alerts.rules]]
name = "imbalance"
kind = "imbalance"
beyond = 1000
[[alerts.rules]]
name = "lolp"
kind = "lolp"
above = 0.01
[[alerts.rules]]
name = "warnings"
kind = "syswarn"
[[alerts.rules]]
name = "outages"
kind = "outage"
min_mw = 100
[[alerts.rules]]
name = "accepted"
kind = "acceptance"
units = ["T_GEN-01", "2__BATT001"]
[[alerts.rules]]
name = "silent"
kind = "silence"
"""


def file_drop(work: Path, count: int, rounds: int) -> None:
    drop = work / "iris_data"
    if not drop.exists():
        t = time.perf_counter()
        messages = list(IrisGenerator(START, seed=1).messages(count))
        write_file_drop(drop, messages)
        print(f"generated a file drop of {count:,} messages, {sum(len(m.records) for m in messages):,} rows "
              f"in {time.perf_counter() - t:.1f} s")
    from tests.peers.notify import Webhook

    hook = Webhook().start()
    rules = work / "alerts.toml"
    rules.write_text(RULES.format(port=hook.port))
    ours, lean, alerting = [], [], []
    for i in range(rounds):  # alternate, so a busy moment hits each alike
        db = fresh(work, "drop.duckdb")
        wall, cpu, _ = timed([sys.executable, "run.py", "--log-level", "ERROR", "--warehouse", f"duckdb:///{db}",
                              "ingest", "iris", "--from-dir", str(drop), "--once"])
        ours.append((wall, cpu))
        db = fresh(work, "lean.duckdb")
        lean.append(timed([sys.executable, "-c", LEAN, str(drop), str(db)])[:2])
        db = fresh(work, "alerts.duckdb")
        alerting.append(timed([sys.executable, "run.py", "--log-level", "ERROR", "--settings", str(rules),
                               "--warehouse", f"duckdb:///{db}", "ingest", "iris", "--from-dir", str(drop),
                               "--once"])[:2])
        print(f"  round {i + 1}: run.py {wall:.2f} s wall, {cpu:.2f} s CPU; with 9 alert rules {alerting[-1][0]:.2f} s "
              f"wall, {alerting[-1][1]:.2f} s CPU; lean baseline {lean[-1][0]:.2f} s wall, {lean[-1][1]:.2f} s CPU")
    hook.stop()
    wall, cpu = statistics.median(w for w, _ in ours), statistics.median(c for _, c in ours)
    lwall, lcpu = statistics.median(w for w, _ in lean), statistics.median(c for _, c in lean)
    per_cpu = count / cpu
    print(f"file drop (run.py ingest iris --from-dir, whole process, cold, median of {rounds}):")
    print(f"  {count / wall:,.0f} messages per wall second ({wall:.2f} s), {per_cpu:,.0f} messages per CPU second "
          f"({cpu:.2f} s)   (target >= {TARGET:,} per CPU second)   {'OK' if per_cpu >= TARGET else 'MISSED'}")
    print(f"  lean baseline (no checks, keys, ledger or history): {count / lwall:,.0f} per wall second, "
          f"{count / lcpu:,.0f} per CPU second; ours costs {wall / lwall:.2f}x its wall and {cpu / lcpu:.2f}x its CPU")
    awall, acpu = statistics.median(w for w, _ in alerting), statistics.median(c for _, c in alerting)
    print(f"  with 9 alert rules checked after the commits: {count / awall:,.0f} per wall second, {count / acpu:,.0f} "
          f"per CPU second: {awall / wall:.2f}x the wall and {acpu / cpu:.2f}x the CPU of the run without rules")


def service_bus(work: Path, count: int, batch_size: int) -> None:
    peer = subprocess.Popen(
        [sys.executable, "-m", "tests.peers.servicebus", "--queue", "iris.bench", "--preload", str(count),
         "--lock-duration", "60", "--seed", "2"],
        cwd=ROOT, stdout=subprocess.PIPE, text=True,
    )
    try:
        port = int(peer.stdout.readline().split()[1])
        settings = IrisSettings.load(
            connection_string=f"Endpoint=sb://127.0.0.1:{port};SharedAccessKeyName=bench;SharedAccessKey=YmVuY2g=;"
                              "UseDevelopmentEmulator=true",
            queue_name="iris.bench", environ={},
        )
        wh = DuckDBWarehouse(fresh(work, "sdk.duckdb"))
        marks: list[tuple[float, float]] = []
        worker = IrisWorker(IrisLoader(wh), settings, batch_size=batch_size, max_wait_s=0.5, exit_when_idle_s=1.0,
                            on_batch=lambda s: marks.append((time.perf_counter(), time.process_time())))
        t, c = time.perf_counter(), time.process_time()
        summary = worker.run()
        wh.close()
    finally:
        peer.terminate()
        snapshot = peer.communicate(timeout=30)[0].strip().splitlines()[-1]
    elapsed, cpu = marks[-1][0] - t, marks[-1][1] - c  # connect + every batch, without the final idle wait
    print(f"  {summary.messages:,} messages ({summary.rows:,} rows) in {elapsed:.2f} s; peer: {snapshot}")
    print(f"service bus     {summary.messages / elapsed:,.0f} messages per wall second, "
          f"{summary.messages / cpu:,.0f} per CPU second of the worker ({cpu:.2f} s), through the real SDK "
          f"(batch {batch_size}); dead-lettered {summary.dead_lettered}, quarantined {summary.quarantined}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--sdk-messages", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated file drop in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_iris_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        file_drop(work, args.messages, args.rounds)
        if args.sdk_messages:  # 0: the file drop only
            service_bus(work, args.sdk_messages, args.batch_size)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
