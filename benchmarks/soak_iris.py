"""IRIS reliability soak: kill -9, a full disk and hostile messages, then count what was lost or doubled.

The local Service Bus peer (in this process) holds N generated messages in the realistic mix, with
hostile ones among them (a body that is not JSON, records without
their key, a fractional value in an integer field, a field named like a bookkeeping column, a new
dataset whose later message lacks a field, a correction re-sent later). ``python run.py ingest iris``
runs as its own process against it and is killed with SIGKILL at a random moment once it is making
progress (mid-batch, between commit and complete, while holding a batch through an outage), then restarted;
meanwhile the warehouse's file system (a small tmpfs, where this process may mount one) is filled
to the last byte for a few seconds at a time. At the end every message must be in the ledger once,
every good record stored once (the current row of its key, or a superseded version in history),
the hostile records in quarantine and nothing dead-lettered.

    sudo python benchmarks/soak_iris.py [--messages 20000] [--kills 40] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest.iris.generate import IrisGenerator  # noqa: E402
from tests.peers.servicebus import FakeServiceBus  # noqa: E402
from tests.test_iris_servicebus import fill  # noqa: E402
from warehouse.duckdb import DuckDBWarehouse  # noqa: E402

QUEUE = "iris.soak"
START = dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc)


def hostile(i: int) -> list[tuple[str, str, bytes, int]]:
    """(message id, subject, body, records that must be quarantined) for hostile batch ``i``."""
    def body(rows):
        return json.dumps(json.dumps(rows)).encode()

    t = f"2026-05-07T{i % 24:02d}:{i % 60:02d}:00Z"
    return [
        (f"POISON_{i}.json", "BOALF", b"\x00 not json", 1),
        (f"FREQ_nokey_{i}.json", "FREQ", body([{"dataset": "FREQ", "frequency": 50.0},
                                               {"dataset": "FREQ", "measurementTime": t, "frequency": 49.9}]), 1),
        (f"BOALF_frac_{i}.json", "BOALF", body([{"dataset": "BOALF", "bmUnit": "2__FFSEN005", "acceptanceNumber": 9_000 + i,
                                                 "timeFrom": t, "timeTo": t, "levelFrom": 5.7, "levelTo": 1}]), 1),
        (f"FREQ_clash_{i}.json", "FREQ", body([{"dataset": "FREQ", "measurementTime": t.replace("Z", ".5Z"),
                                                "frequency": 50.0, "_message_id": "spoof"}]), 0),
        (f"SOAKNEW_a_{i}.json", "SOAKNEW", body([{"dataset": "SOAKNEW", "k": i, "a": 1, "b": "x"}]), 0),
        (f"SOAKNEW_b_{i}.json", "SOAKNEW", body([{"dataset": "SOAKNEW", "k": i, "b": "y"}]), 0),
        (f"DISBSAD_fix_{i}.json", "DISBSAD", body([{"dataset": "DISBSAD", "settlementDate": "2026-05-07",
                                                   "settlementPeriod": 1, "id": 50_000 + i, "cost": 1000.0 + i}]), 0),
    ]


def enqueue(bus: FakeServiceBus, count: int, seed: int, rate: float, expected: dict[str, int],
            counts: dict[str, int]) -> None:
    """Enqueue ``rate`` messages a second into ``expected`` ({message id: records}; hostile ones -1);
    ``counts["bad"]``: records that must be quarantined."""
    started = time.monotonic()
    for n, message in enumerate(IrisGenerator(START, seed=seed).messages(count), start=1):
        while n > (time.monotonic() - started) * rate:
            time.sleep(0.01)
        bus.send(QUEUE, message.body(), message_id=message.message_id, subject=message.subject)
        expected[message.message_id] = len(message.records)
        if n % 500 == 0:
            for message_id, subject, raw, quarantined in hostile(n // 500):
                bus.send(QUEUE, raw, message_id=message_id, subject=subject)
                expected[message_id] = -1  # counted apart
                counts["bad"] += quarantined
    counts["done"] = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=150.0, help="messages a second arriving on the queue")
    parser.add_argument("--log", help="append the workers' log lines (WARNING and above) to this file")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="soak_iris_"))
    disk = work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    print("full-disk faults:", "on (a 256 MB tmpfs)" if mounted else "OFF (cannot mount a tmpfs: run as root)")
    bus = FakeServiceBus(lock_duration_s=5).start()
    stop = threading.Event()
    disk_faults = 0
    try:
        expected: dict[str, int] = {}
        counts = {"bad": 0, "done": 0}
        threading.Thread(target=enqueue, args=(bus, args.messages, args.seed, args.rate, expected, counts),
                         daemon=True).start()
        db = disk / "w.duckdb"

        def disk_trouble() -> None:
            nonlocal disk_faults
            while not stop.wait(rng.uniform(8, 15)):
                filler = fill(disk)
                disk_faults += 1
                stop.wait(rng.uniform(2, 5))
                filler.unlink()

        if mounted:
            threading.Thread(target=disk_trouble, daemon=True).start()
        env = {**os.environ, "IRIS_CONNECTION_STRING": bus.connection_string, "IRIS_QUEUE_NAME": QUEUE}
        cmd = [sys.executable, "run.py", "--log-level", "WARNING", "--warehouse", f"duckdb:///{db}", "ingest", "iris",
               "--batch-size", "200", "--exit-when-idle", "8"]
        kills = 0
        started = time.perf_counter()
        worker_log = open(args.log, "a") if args.log else subprocess.DEVNULL
        while True:
            done_before = len(bus.snapshot(QUEUE)["completed"])
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=worker_log)
            if kills < args.kills:
                # kill at a random moment once this worker is making progress (mid-batch, between commit
                # and complete, in an outage's hold ...): a worker killed before it can finish anything
                # would only be measuring the broker's max delivery count
                deadline = time.monotonic() + 30
                while (len(bus.snapshot(QUEUE)["completed"]) == done_before and time.monotonic() < deadline
                       and proc.poll() is None):
                    time.sleep(0.05)
                try:
                    proc.wait(timeout=rng.uniform(0.0, 3.0))
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    kills += 1
                    continue
            else:
                proc.wait()
            snap = bus.snapshot(QUEUE)
            if counts["done"] and not snap["available"] and not snap["locked"]:
                break
        stop.set()
        sent, quarantined_expected = len(expected), counts["bad"]
        elapsed = time.perf_counter() - started
        snap = bus.snapshot(QUEUE)
        while any(p.name == "filler" for p in disk.iterdir()):
            time.sleep(0.2)
        with DuckDBWarehouse(db) as wh:
            ledger = {r["message_id"]: r["n"] for r in wh.query_rows(
                "SELECT message_id, COUNT(*) AS n FROM iris_message_ledger GROUP BY message_id")}
            tables = [r["table_name"] for r in wh.query_rows(
                "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'bmrs_%' "
                "AND table_type = 'BASE TABLE'")]
            stored = {}
            for t in tables:
                for r in wh.query_rows(f"SELECT _message_id, COUNT(*) AS n FROM {t} GROUP BY _message_id"):
                    stored[r["_message_id"]] = stored.get(r["_message_id"], 0) + r["n"]
            quarantined = wh.scalar("SELECT COUNT(*) FROM iris_quarantine")
            outages = wh.scalar("SELECT COUNT(*) FROM iris_outages")
        good = {m: n for m, n in expected.items() if n > 0}
        lost = [m for m, n in good.items() if stored.get(m, 0) < n]
        doubled = [m for m, n in good.items() if stored.get(m, 0) > n] + [m for m, n in ledger.items() if n > 1]
        missing_from_ledger = [m for m in expected if m not in ledger]
        print(f"{kills} kill -9, {disk_faults} full-disk periods ({outages} outages recorded by the worker) "
              f"over {sent:,} messages in {elapsed:.0f} s")
        print(f"  lost            {len(lost)} messages" + (f" e.g. {lost[:3]}" if lost else ""))
        print(f"  doubled         {len(doubled)} messages" + (f" e.g. {doubled[:3]}" if doubled else ""))
        print(f"  not in ledger   {len(missing_from_ledger)}")
        print(f"  dead-lettered   {len(snap['dead_lettered'])}"
              + (f" (the broker's max delivery count: {snap['dead_lettered'][:2]})" if snap["dead_lettered"] else ""))
        print(f"  quarantined     {quarantined} records (expected {quarantined_expected}: the hostile ones)")
        print(f"  completed       {len(set(snap['completed']))} of {sent:,} distinct messages")
        for message_id, _ in snap["dead_lettered"][:1]:
            t0 = time.time() - (time.perf_counter() - started)
            history = [(round(t - t0, 1), n, c) for m, n, t, c in bus.delivered if m == message_id]
            print(f"  deliveries of {message_id} (seconds into the run, delivery count, connection): {history}")
            conns = {c for _, _, c in history}
            print("  those connections:", [(e, c, round(t - t0, 1)) for e, c, t in bus.connection_events if c in conns])
        ok = (not lost and not doubled and not missing_from_ledger and not snap["dead_lettered"]
              and quarantined == quarantined_expected)
        print("RESULT", "OK" if ok else "FAILED")
        sys.exit(0 if ok else 1)
    finally:
        stop.set()
        bus.stop()
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
