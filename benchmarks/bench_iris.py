"""IRIS benchmark: messages/s and rows/s into DuckDB, from a file drop and through Service Bus.

1. File drop: 50,000 messages in the realistic mix (MILS, MELS, BOALF, PN, BOD, FREQ, FUELINST,
   the indicated forecasts, MID, DISBSAD, REMIT) laid out as Elexon's client writes them, replayed
   into a fresh DuckDB file (median of 3). Baseline in the same run: the user's old loader
   pattern, one message per transaction, on the first 2,000 files.
2. Service Bus: the local AMQP 1.0 peer (tests/peers/servicebus.py) in its own process, preloaded
   with messages, drained by the real azure-servicebus SDK through ``IrisWorker`` (complete after
   commit), timed from the first batch to the last.

Targets (issue #3): >= 5,000 messages/s from a file drop, >= 1,000 messages/s through the SDK.

    python benchmarks/bench_iris.py [--messages 50000] [--sdk-messages 20000]
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.iris.config import IrisSettings  # noqa: E402
from ingest.iris.files import drop_files, file_message, replay_directory  # noqa: E402
from ingest.iris.generate import IrisGenerator, write_file_drop  # noqa: E402
from ingest.iris.load import IrisLoader  # noqa: E402
from ingest.iris.servicebus import IrisWorker  # noqa: E402
from warehouse.duckdb import DuckDBWarehouse  # noqa: E402

START = dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc)


def fresh_warehouse(work: Path, name: str) -> DuckDBWarehouse:
    for stale in (work / name, work / f"{name}.wal"):
        stale.unlink(missing_ok=True)
    return DuckDBWarehouse(work / name)


def file_drop(work: Path, count: int) -> tuple[float, float]:
    drop = work / "iris_data"
    if not drop.exists():
        t = time.perf_counter()
        messages = list(IrisGenerator(START, seed=1).messages(count))
        write_file_drop(drop, messages)
        print(f"generated a file drop of {count:,} messages, {sum(len(m.records) for m in messages):,} rows "
              f"in {time.perf_counter() - t:.1f} s")
    rates, row_rates = [], []
    for i in range(3):
        wh = fresh_warehouse(work, "drop.duckdb")
        summary = replay_directory(IrisLoader(wh), drop, batch_size=5000)
        wh.close()
        rates.append(summary.files / summary.seconds)
        row_rates.append(summary.rows / summary.seconds)
        print(f"  replay {i + 1}: {summary.files:,} messages, {summary.rows:,} rows in {summary.seconds:.2f} s")

    wh = fresh_warehouse(work, "baseline.duckdb")
    loader = IrisLoader(wh)
    paths = drop_files(drop)[:2000]
    t = time.perf_counter()
    for path in paths:  # one message, one transaction: the old file-at-a-time loader
        loader.load([file_message(path)])
    baseline = len(paths) / (time.perf_counter() - t)
    wh.close()
    rate, rows = statistics.median(rates), statistics.median(row_rates)
    print(f"file drop       {rate:,.0f} messages/s, {rows:,.0f} rows/s (median of 3)   (target >= 5,000)   "
          f"{'OK' if rate >= 5000 else 'MISSED'}")
    print(f"  baseline      {baseline:,.0f} messages/s one message per transaction: batching is {rate / baseline:.0f}x")
    return rate, rows


def service_bus(work: Path, count: int, batch_size: int) -> float:
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
        wh = fresh_warehouse(work, "sdk.duckdb")
        marks: list[float] = []
        worker = IrisWorker(IrisLoader(wh), settings, batch_size=batch_size, max_wait_s=0.5, exit_when_idle_s=1.0,
                            on_batch=lambda s: marks.append(time.perf_counter()))
        t = time.perf_counter()
        summary = worker.run()
        wh.close()
    finally:
        peer.terminate()
        snapshot = peer.communicate(timeout=30)[0].strip().splitlines()[-1]
    elapsed = marks[-1] - t  # connect + every batch, without the final idle wait
    rate = summary.messages / elapsed
    print(f"  {summary.messages:,} messages ({summary.rows:,} rows) in {elapsed:.2f} s; peer: {snapshot}")
    print(f"service bus     {rate:,.0f} messages/s, {summary.rows / elapsed:,.0f} rows/s through the real SDK "
          f"(batch {batch_size})   (target >= 1,000)   {'OK' if rate >= 1000 else 'MISSED'}")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--sdk-messages", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--keep", help="directory to keep (and reuse) the generated file drop in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_iris_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        file_drop(work, args.messages)
        service_bus(work, args.sdk_messages, args.batch_size)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
