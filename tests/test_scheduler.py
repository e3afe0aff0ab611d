"""``run.py schedule``: jobs isolated from each other, recorded, restarted, stopped cleanly by SIGTERM."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from core.config import Settings, load_settings
from ingest.p114.generate import sample_units, write_s0142
from ops.scheduler import JOB_RUNS, Scheduler
from tests.peers.servicebus import FakeServiceBus
from tests.test_iris_servicebus import enqueue
from tests.test_reports import load_fixture
from warehouse.duckdb import DuckDBWarehouse

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "iris.scheduler-test"


def quiet_settings(tmp_path, **schedule) -> Settings:
    """Settings with every built-in job off unless named in ``schedule``."""
    settings = load_settings(environ={**os.environ, "OUTPUT_DIR": str(tmp_path / "out")})
    settings.schedule.iris_worker = False
    settings.schedule.refresh_minutes = 0
    settings.schedule.p114_fetch_at = None
    settings.schedule.gap_fill_at = None
    for key, value in schedule.items():
        setattr(settings.schedule, key, value)
    return settings


def start(scheduler: Scheduler) -> threading.Thread:
    thread = threading.Thread(target=scheduler.run, kwargs={"install_signals": False}, daemon=True)
    thread.start()
    return thread


def job_runs(db: Path) -> list[dict]:
    with DuckDBWarehouse(db) as wh:
        return wh.query_rows(f"SELECT job, outcome, detail FROM {JOB_RUNS.name} ORDER BY started_at")


def test_a_failing_job_is_recorded_and_never_stops_the_others(tmp_path):
    db = tmp_path / "w.duckdb"
    scheduler = Scheduler(quiet_settings(tmp_path), f"duckdb:///{db}", tick_s=0.05).build()
    ticks = []
    scheduler.add("good", lambda wh: ticks.append(1) or f"tick {len(ticks)}", lambda p: p.every(1).seconds)
    scheduler.add("bad", lambda wh: 1 / 0, lambda p: p.every(1).seconds)
    thread = start(scheduler)
    time.sleep(3.6)
    assert thread.is_alive()
    scheduler.stop()
    thread.join(10)
    assert not thread.is_alive()
    runs = job_runs(db)
    good = [r for r in runs if r["job"] == "good"]
    bad = [r for r in runs if r["job"] == "bad"]
    assert len(good) >= 3 and all(r["outcome"] == "ok" for r in good)
    assert len(bad) >= 3 and all(r["outcome"] == "failed" and "ZeroDivisionError" in r["detail"] for r in bad)


def test_a_job_still_running_when_it_comes_due_is_skipped_not_doubled(tmp_path):
    db = tmp_path / "w.duckdb"
    scheduler = Scheduler(quiet_settings(tmp_path), f"duckdb:///{db}", tick_s=0.05).build()
    running = []

    def slow(wh):
        running.append(1)
        assert len(running) == 1, "two runs at once"
        time.sleep(2.5)
        running.pop()
        return "slow done"

    scheduler.add("slow", slow, lambda p: p.every(1).seconds)
    thread = start(scheduler)
    time.sleep(3.8)
    scheduler.stop()
    thread.join(10)
    outcomes = [r["outcome"] for r in job_runs(db) if r["job"] == "slow"]
    assert "skipped" in outcomes and "ok" in outcomes and "failed" not in outcomes


def test_refresh_job_writes_every_dashboard_and_records_it(tmp_path):
    db = tmp_path / "w.duckdb"
    with DuckDBWarehouse(db) as wh:
        load_fixture(wh, tmp_path)
    scheduler = Scheduler(quiet_settings(tmp_path, refresh_minutes=60), f"duckdb:///{db}").build()
    run = scheduler.run_job("refresh")
    assert run.outcome == "ok", run.detail
    assert "Dashboard main: 7 tabs written to" in run.detail
    assert (tmp_path / "out" / "main.xlsx").exists() and (tmp_path / "out" / "main.html").exists()
    assert job_runs(db)[-1] == {"job": "refresh", "outcome": "ok", "detail": run.detail}


def test_p114_fetch_loads_newly_published_files_and_is_skipped_without_a_key(tmp_path, portal, monkeypatch):
    db = tmp_path / "w.duckdb"
    settings = quiet_settings(tmp_path, p114_fetch_at="07:30", p114_lookback_days=20)
    settings.p114 = {"cache_dir": str(tmp_path / "cache"), "runs": ["II", "SF"]}
    scheduler = Scheduler(settings, f"duckdb:///{db}").build()
    today = dt.date.today()
    units = sample_units(6, 2, seed=5)
    for day in (today - dt.timedelta(days=12), today - dt.timedelta(days=9)):
        created = dt.datetime.combine(today - dt.timedelta(days=3), dt.time(12, 2, 9))
        path = write_s0142(tmp_path / "made", day, "II", created_at=created, units=units, seed=5)
        portal.publish(created.date().isoformat(), path.name, path.read_bytes())

    run = scheduler.run_job("p114_fetch")
    assert run.outcome == "ok", run.detail
    assert run.detail.startswith("2 file(s) loaded")
    assert scheduler.run_job("p114_fetch").detail.startswith("0 file(s) loaded")
    scheduler.settings.elexon.portal_key = None
    skipped = scheduler.run_job("p114_fetch")
    assert skipped.outcome == "skipped" and "ELEXON_PORTAL_KEY" in skipped.detail


def test_gap_fill_inserts_only_what_iris_missed(tmp_path, insights):
    db = tmp_path / "w.duckdb"
    scheduler = Scheduler(quiet_settings(tmp_path, gap_fill_at="05:15", gap_fill_days=1,
                                         gap_fill_datasets=["FREQ"]), f"duckdb:///{db}").build()
    first = scheduler.run_job("gap_fill")
    assert first.outcome == "ok", first.detail
    assert "FREQ +5761" in first.detail  # a day of 15-second readings, both ends included (the API is inclusive)
    again = scheduler.run_job("gap_fill")
    assert "FREQ +0" in again.detail
    insights.fail("FREQ", 404)  # not retried (the client's backoff is tested with the client)
    elsewhere = Scheduler(quiet_settings(tmp_path, gap_fill_at="05:15", gap_fill_days=1, gap_fill_datasets=["FREQ"]),
                          f"duckdb:///{tmp_path / 'other.duckdb'}").build()
    failed = elsewhere.run_job("gap_fill")
    assert failed.outcome == "failed" and "FREQ" in failed.detail


def test_the_iris_worker_is_kept_running_and_restarted_if_it_dies(tmp_path, monkeypatch):
    from ingest.iris import servicebus

    bus = FakeServiceBus(lock_duration_s=5).start()
    monkeypatch.setenv("IRIS_CONNECTION_STRING", bus.connection_string)
    monkeypatch.setenv("IRIS_QUEUE_NAME", QUEUE)
    real_run, calls = servicebus.IrisWorker.run, []

    def dies_the_first_time(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated crash")
        return real_run(self)

    monkeypatch.setattr(servicebus.IrisWorker, "run", dies_the_first_time)
    db = tmp_path / "w.duckdb"
    try:
        messages = enqueue(bus, 120, queue=QUEUE)
        scheduler = Scheduler(quiet_settings(tmp_path, iris_worker=True), f"duckdb:///{db}", tick_s=0.1)
        thread = start(scheduler.build())
        deadline = time.time() + 60
        while len(bus.snapshot(QUEUE)["completed"]) < len(messages):
            assert time.time() < deadline, "the restarted worker did not drain the queue"
            time.sleep(0.2)
        scheduler.stop()
        thread.join(30)
        assert not thread.is_alive()
    finally:
        bus.stop()
    assert len(calls) == 2
    with DuckDBWarehouse(db) as wh:
        assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 120
    iris_runs = [r for r in job_runs(db) if r["job"] == "iris"]
    assert iris_runs and iris_runs[0]["outcome"] == "failed" and "restarted" in iris_runs[0]["detail"]


def test_sigterm_stops_the_scheduler_process_cleanly(tmp_path):
    bus = FakeServiceBus(lock_duration_s=5).start()
    db = tmp_path / "w.duckdb"
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        '[schedule]\niris_worker = true\nrefresh_minutes = 0.02\np114_fetch_at = "off"\ngap_fill_at = "off"\n'
        f'[output]\ndir = "{tmp_path / "out"}"\n')
    env = {**os.environ, "PYTHONPATH": str(ROOT), "IRIS_CONNECTION_STRING": bus.connection_string,
           "IRIS_QUEUE_NAME": QUEUE}
    cmd = [sys.executable, str(ROOT / "run.py"), "--warehouse", f"duckdb:///{db}", "--settings", str(settings_file),
           "--log-json", "schedule"]
    proc = None
    try:
        enqueue(bus, 50, queue=QUEUE)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 90
        while len(bus.snapshot(QUEUE)["completed"]) < 50 or not (tmp_path / "out" / "main.html").exists():
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.2)
        html, seen, deadline = tmp_path / "out" / "main.html", set(), time.time() + 60
        while len(seen) < 3:  # a few more refreshes (each rewrites the page), however busy the machine
            assert time.time() < deadline and proc.poll() is None, "the scheduler stopped refreshing"
            seen.add(html.stat().st_mtime_ns)
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:  # a failed wait above must not leave a scheduler running
            proc.kill()
            proc.wait()
        bus.stop()
    assert proc.returncode == 0, err
    assert '"message": "scheduler stopping (signal SIGTERM)"' in err
    assert '"message": "scheduler stopped"' in err
    outcomes = [(r["job"], r["outcome"]) for r in job_runs(db)]
    assert outcomes.count(("refresh", "ok")) >= 2
    with DuckDBWarehouse(db) as wh:
        assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 50
