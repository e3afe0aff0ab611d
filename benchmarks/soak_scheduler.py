"""Soak test of ``run.py schedule``: every job, at an accelerated cadence, for a long while.

Runs the real :class:`ops.scheduler.Scheduler` on a DuckDB file with the local stand-ins: the IRIS
worker reads the AMQP peer while a feeder keeps sending messages at a live-like rate; the refresh
runs every ``--refresh-s`` seconds; the Portal fetch and the API gap fill, daily in production,
run every ``--daily-s`` seconds (the Portal keeps publishing new files); one extra job fails every
time. Each minute it samples the process (RSS, threads, open files) and the job outcomes, and at
the end says whether anything grew or stopped.

    python benchmarks/soak_scheduler.py [--minutes 30] [--refresh-s 20] [--daily-s 120]
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

QUEUE = "iris.soak"


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--refresh-s", type=int, default=20)
    parser.add_argument("--daily-s", type=int, default=120)
    parser.add_argument("--rate", type=float, default=3.0, help="IRIS messages per second")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from core.config import load_settings
    from ingest.iris.generate import IrisGenerator
    from ingest.p114.generate import sample_units, write_s0142
    from ops.scheduler import Scheduler
    from tests.peers.insights import FakeInsights
    from tests.peers.portal import FakePortal
    from tests.peers.servicebus import FakeServiceBus
    from warehouse.duckdb import DuckDBWarehouse

    work = Path(tempfile.mkdtemp(prefix="soak_"))
    bus, portal, insights = FakeServiceBus(lock_duration_s=30).start(), FakePortal().start(), FakeInsights().start()
    os.environ.update({"IRIS_CONNECTION_STRING": bus.connection_string, "IRIS_QUEUE_NAME": QUEUE,
                       "ELEXON_PORTAL_KEY": portal.key, "ELEXON_PORTAL_URL": portal.url,
                       "INSIGHTS_API_URL": insights.url, "OUTPUT_DIR": str(work / "out")})
    settings = load_settings(environ=dict(os.environ))
    settings.p114 = {"cache_dir": str(work / "cache"), "runs": ["II", "SF"]}
    s = settings.schedule
    s.refresh_minutes, s.p114_fetch_at, s.gap_fill_at = args.refresh_s / 60, None, None
    s.p114_lookback_days, s.gap_fill_days, s.gap_fill_datasets = 30, 1, ["FREQ", "FUELINST", "BOALF"]
    db = work / "soak.duckdb"
    scheduler = Scheduler(settings, f"duckdb:///{db}", shutdown_s=30).build()
    scheduler.add("p114_fetch", scheduler._p114_fetch, lambda p: p.every(args.daily_s).seconds)
    scheduler.add("gap_fill", scheduler._gap_fill, lambda p: p.every(args.daily_s).seconds)
    scheduler.add("always_fails", lambda wh: 1 / 0, lambda p: p.every(args.daily_s // 2).seconds)

    stop = threading.Event()
    sent = Counter()

    def feed() -> None:  # IRIS messages at a steady rate
        gen = IrisGenerator(dt.datetime.now(dt.timezone.utc), seed=11)
        for m in gen.messages(10**9, spacing_s=1 / args.rate):
            if stop.wait(1 / args.rate):
                return
            bus.send(QUEUE, m.body(), message_id=m.message_id, subject=m.subject)
            sent["messages"] += 1

    def publish() -> None:  # a new S0142 file on the Portal every few minutes
        units = sample_units(200, 10, seed=3)
        today = dt.date.today()
        for i in range(1, 10**6):
            if stop.wait(args.daily_s / 2):
                return
            day = today - dt.timedelta(days=20 - (i % 18))
            run = "II" if i <= 18 else "SF"
            created = dt.datetime.combine(today - dt.timedelta(days=1), dt.time(12, 0)) + dt.timedelta(seconds=i)
            path = write_s0142(work / "made", day, run, created_at=created, units=units, seed=i)
            portal.publish(created.date().isoformat(), path.name, path.read_bytes())
            sent["files"] += 1

    feeders = [threading.Thread(target=f, daemon=True) for f in (feed, publish)]
    for t in feeders:
        t.start()
    runner = threading.Thread(target=scheduler.run, kwargs={"install_signals": False}, daemon=True)
    started = time.monotonic()
    runner.start()
    samples = []
    print(f"{'min':>4} {'RSS MiB':>8} {'threads':>7} {'fds':>5} {'sent':>7} {'completed':>9}  job runs (ok/failed/skipped)")
    try:
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(60)
            runs = Counter({(r["job"], r["outcome"]): r["n"] for r in scheduler.warehouse().query_rows(
                "SELECT job, outcome, COUNT(*) AS n FROM ops_job_runs GROUP BY ALL")})
            completed = len(bus.snapshot(QUEUE)["completed"])
            sample = (rss_mib(), threading.active_count(), len(os.listdir("/proc/self/fd")))
            samples.append(sample)
            jobs = " ".join(f"{j}={runs[(j, 'ok')]}/{runs[(j, 'failed')]}/{runs[(j, 'skipped')]}"
                            for j in ("refresh", "p114_fetch", "gap_fill", "always_fails"))
            print(f"{len(samples):>4} {sample[0]:8.0f} {sample[1]:7d} {sample[2]:5d} {sent['messages']:7d} "
                  f"{completed:9d}  {jobs}", flush=True)
    finally:
        stop.set()
        t = time.monotonic()
        scheduler.stop("soak over")
        runner.join(60)
        print(f"stopped in {time.monotonic() - t:.1f} s; scheduler thread alive: {runner.is_alive()}")
    with DuckDBWarehouse(db) as wh:
        ledger = wh.scalar("SELECT COUNT(*) FROM iris_message_ledger")
        distinct = wh.scalar("SELECT COUNT(DISTINCT message_id) FROM iris_message_ledger")
        files = wh.scalar("SELECT COUNT(*) FROM p114_file_manifest")
        outcomes = wh.query_rows("SELECT job, outcome, COUNT(*) AS n FROM ops_job_runs GROUP BY ALL ORDER BY ALL")
    print(f"IRIS: {sent['messages']} sent, {ledger} in the ledger ({distinct} distinct); P114: {sent['files']} "
          f"published, {files} loaded")
    print("job runs recorded:", ", ".join(f"{o['job']} {o['outcome']} {o['n']}" for o in outcomes))
    if len(samples) >= 4:
        first, last = samples[len(samples) // 4], samples[-1]  # after warm-up
        print(f"growth after warm-up: RSS {last[0] - first[0]:+.0f} MiB, threads {last[1] - first[1]:+d}, "
              f"open files {last[2] - first[2]:+d}")
    for peer in (bus, portal, insights):
        peer.stop()


if __name__ == "__main__":
    main()
