"""``run.py schedule``: one long-running process that keeps the warehouse and dashboards current.

Jobs (from ``[schedule]`` in the settings; times are Europe/London):

* **iris**: the IRIS Service Bus worker, in a thread, restarted if it ever stops (it reconnects
  by itself after network or broker trouble; a restart is for anything else);
* **refresh**: run each dashboard's reports and write it (Google Sheets or the local files),
  every ``refresh_minutes``, and once at start;
* **p114_fetch**: daily, list the Elexon Portal's new publication dates and load every S0142 file
  of the last ``p114_lookback_days`` settlement dates not loaded yet (all runs, II to DF);
* **gap_fill**: daily, re-read the last ``gap_fill_days`` UTC days of each dataset from the
  Insights API; natural keys make it insert only what IRIS missed;
* **alerts**: every ``[alerts] check_minutes``, evaluate every alert rule (data health, P114,
  failed jobs as well as the market rules); the IRIS worker also pokes a check of the data rules
  after each committed batch (``alerts.monitor``: its own thread, never holding up ingestion).

Each job runs in its own thread, so a slow or failing job never stops the others; a job still
running when it comes due again is skipped, not doubled. The jobs share one warehouse object (a
DuckDB file takes one writer, so its operations take turns; it is released between units of work
so ``status`` from another terminal gets in). Every run is logged with its duration and outcome and recorded in ``ops_job_runs``
(``status`` shows the last of each). SIGTERM or Ctrl-C stops it: no new runs start, the IRIS
worker finishes the batch in hand, running jobs get ``shutdown_s`` to finish.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import schedule

from core.config import Settings
from core.settlement import RUN_PRECEDENCE
from warehouse import Warehouse, connect
from warehouse.schema import Column, Table

log = logging.getLogger(__name__)
LONDON = "Europe/London"

JOB_RUNS = Table(
    "ops_job_runs",
    (
        Column("job", "STRING", "iris, refresh, p114_fetch, gap_fill, alerts"),
        Column("started_at", "TIMESTAMP"),
        Column("finished_at", "TIMESTAMP"),
        Column("seconds", "FLOAT64"),
        Column("outcome", "STRING", "ok, failed, skipped"),
        Column("detail", "STRING", "what the run did, or the error"),
        Column("host", "STRING", "the machine that ran it"),
    ),
    "one row per scheduled job run (run.py schedule)",
    partition_by="started_at",
)


class JobSkipped(Exception):
    """A job that had nothing it could do (e.g. no Portal key); recorded as 'skipped'."""


@dataclass
class JobRun:
    job: str
    started_at: dt.datetime
    seconds: float = 0.0
    outcome: str = "ok"
    detail: str = ""


@dataclass
class Scheduler:
    """Runs the jobs of :class:`~core.config.ScheduleSettings` until :meth:`stop`."""

    settings: Settings
    warehouse_url: str
    shutdown_s: float = 60.0
    tick_s: float = 1.0
    connect_warehouse: Callable[[], Warehouse] | None = None
    jobs: dict[str, Callable[[Warehouse], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._running: dict[str, threading.Thread] = {}
        self._lock = threading.RLock()
        self._worker = None
        self._worker_thread: threading.Thread | None = None
        self._monitor = None  # alert checks after each IRIS batch (alerts.monitor)
        self._iris_problem: str | None = None
        self.plan = schedule.Scheduler()
        self._wh: Warehouse | None = None
        self._table_ready = False

    def warehouse(self) -> Warehouse:
        """The warehouse every job uses (opened on first use)."""
        with self._lock:
            if self._wh is None:
                self._wh = (self.connect_warehouse() if self.connect_warehouse
                            else connect(self.warehouse_url, self.settings.bigquery.options(),
                                         table_prefix=self.settings.table_prefix))
            return self._wh

    # ------------------------------------------------------------------ plan
    def build(self) -> "Scheduler":
        """Register the configured jobs (more can be added to ``jobs`` and ``plan`` before :meth:`run`)."""
        s = self.settings.schedule
        if s.refresh_minutes > 0:
            self.add("refresh", self._refresh, lambda p: p.every(max(1, round(s.refresh_minutes * 60))).seconds)
        if s.p114_fetch_at:
            self.add("p114_fetch", self._p114_fetch, lambda p: p.every().day.at(s.p114_fetch_at, LONDON))
        if s.gap_fill_at and s.gap_fill_datasets:
            self.add("gap_fill", self._gap_fill, lambda p: p.every().day.at(s.gap_fill_at, LONDON))
        if self.settings.alerts.rules:
            from alerts.rules import check_targets

            check_targets(self.settings.alerts)  # a target apprise cannot use stops the start, not the first alert
            minutes = self.settings.alerts.check_minutes
            self.add("alerts", self._alerts, lambda p: p.every(max(1, round(minutes * 60))).seconds)
        return self

    def add(self, name: str, fn: Callable[[Warehouse], str], when: Callable[[schedule.Scheduler], schedule.Job]) -> None:
        """Schedule ``fn(warehouse) -> detail`` as job ``name`` at ``when(plan)``."""
        self.jobs[name] = fn
        when(self.plan).do(self.start_job, name).tag(name)

    def describe(self) -> list[str]:
        lines = []
        for job in self.plan.get_jobs():
            name = next(iter(job.tags))
            if job.at_time:
                when = f"daily at {job.at_time:%H:%M} {LONDON}"
            elif job.unit == "seconds" and job.interval % 60 == 0:
                when = f"every {job.interval // 60} minutes"
            else:
                when = f"every {job.interval} {job.unit}"
            lines.append(f"{name}: {when}; next {job.next_run:%Y-%m-%d %H:%M} (this machine's time)")
        if self.settings.schedule.iris_worker:
            lines.append("iris: the IRIS worker, kept running" if self._iris_problem is None
                         else f"iris: not running ({self._iris_problem})")
        return lines

    # ------------------------------------------------------------------ run
    def run(self, install_signals: bool = True) -> None:
        """Run until :meth:`stop` (or SIGTERM/SIGINT when ``install_signals``)."""
        if install_signals:
            import signal

            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, frame: self.stop(f"signal {signal.Signals(signum).name}"))
        self._ensure_table()
        if self.settings.schedule.iris_worker:
            self._keep_iris_alive()
        for line in self.describe():
            log.info("scheduled %s", line)
        if "refresh" in self.jobs:
            self.start_job("refresh")  # dashboards current from the start
        while not self._stop.is_set():
            self.plan.run_pending()
            if self.settings.schedule.iris_worker:
                self._keep_iris_alive()
            self._stop.wait(self.tick_s)
        self._shutdown()

    def stop(self, why: str = "stop requested") -> None:
        if not self._stop.is_set():
            log.info("scheduler stopping (%s)", why)
        self._stop.set()
        if self._worker is not None:
            self._worker.stop()

    def start_job(self, name: str) -> None:
        """Start job ``name`` in its own thread unless it is still running."""
        with self._lock:
            running = self._running.get(name)
            if running is not None and running.is_alive():
                log.warning("job %s: the previous run is still going; this run is skipped", name)
                self._record(JobRun(name, _now(), outcome="skipped", detail="previous run still going"))
                return
            thread = threading.Thread(target=self._run_job, args=(name,), name=f"job-{name}", daemon=True)
            self._running[name] = thread
            thread.start()

    def run_job(self, name: str) -> JobRun:
        """Run job ``name`` now, in this thread (for tests and one-off runs)."""
        return self._run_job(name)

    def _run_job(self, name: str) -> JobRun:
        run = JobRun(name, _now())
        started = time.perf_counter()
        wh = None
        try:
            wh = self.warehouse()
            run.detail = self.jobs[name](wh) or ""
        except JobSkipped as exc:
            run.outcome, run.detail = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 - one job's failure is recorded, never fatal
            run.outcome, run.detail = "failed", f"{type(exc).__name__}: {exc}"
            log.debug("job %s failed:\n%s", name, traceback.format_exc())
        finally:
            if wh is not None:
                wh.idle()
        run.seconds = time.perf_counter() - started
        level = logging.ERROR if run.outcome == "failed" else logging.INFO
        log.log(level, "job %s %s in %.1f s%s", name, run.outcome, run.seconds, f": {run.detail}" if run.detail else "")
        self._record(run)
        return run

    def _record(self, run: JobRun) -> None:
        try:
            wh = self.warehouse()
            if not self._table_ready:
                wh.ensure_tables([JOB_RUNS])
                self._table_ready = True
            wh.write({JOB_RUNS.name: JOB_RUNS.conform(pa.Table.from_pylist([{
                "job": run.job, "started_at": run.started_at, "finished_at": _now(), "seconds": run.seconds,
                "outcome": run.outcome, "detail": run.detail[:2000], "host": os.uname().nodename}]))})
            wh.idle()
        except Exception as exc:  # noqa: BLE001 - the log line above already tells the story
            log.warning("could not record the %s run in %s: %s", run.job, JOB_RUNS.name, exc)

    def _ensure_table(self) -> None:
        try:
            self.warehouse().ensure_tables([JOB_RUNS])
            self._table_ready = True
        except Exception as exc:  # noqa: BLE001 - jobs report their own warehouse errors
            log.error("cannot prepare %s in the warehouse (%s); jobs will still be tried", JOB_RUNS.name, exc)

    def _shutdown(self) -> None:
        deadline = time.monotonic() + self.shutdown_s
        threads = [t for t in [*self._running.values(), self._worker_thread] if t is not None and t.is_alive()]
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._monitor is not None:  # after the worker: its last batch is checked too
            self._monitor.stop(max(1.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if self._wh is not None and not left:
            self._wh.close()
        if left:
            log.warning("scheduler stopped with %s still running after %.0f s (their transactions roll back)",
                        ", ".join(left), self.shutdown_s)
        else:
            log.info("scheduler stopped")

    # ------------------------------------------------------------------ jobs
    def _keep_iris_alive(self) -> None:
        if self._stop.is_set() or (self._worker_thread is not None and self._worker_thread.is_alive()):
            return
        from ingest.iris.config import IrisConfigError, IrisSettings
        from ingest.iris.load import IrisLoader
        from ingest.iris.servicebus import IrisWorker

        if self._worker_thread is not None:
            log.error("the IRIS worker stopped unexpectedly; restarting it")
            self._record(JobRun("iris", _now(), outcome="failed", detail="worker stopped unexpectedly; restarted"))
        try:
            iris = IrisSettings.load(configured=self.settings.iris, environ=self.settings.iris_environment)
        except IrisConfigError as exc:
            if self._iris_problem is None:
                log.warning("IRIS worker not started: %s", exc)
                self._record(JobRun("iris", _now(), outcome="skipped", detail=str(exc)))
            self._iris_problem = str(exc)
            self._worker_thread = None
            return
        self._iris_problem = None
        batch = int(self.settings.iris.get("batch_size", 500))
        if self._monitor is None:
            from alerts.monitor import AlertMonitor

            self._monitor = AlertMonitor(self.warehouse(), self.settings).start()
        worker = IrisWorker(IrisLoader(self.warehouse()), iris, batch_size=batch, after_commit=self._monitor.poke)
        self._worker = worker

        def work() -> None:
            try:
                summary = worker.run()
                log.info("IRIS worker stopped: %s", "; ".join(line.strip() for line in summary.lines()))
            except Exception:  # noqa: BLE001 - logged; the scheduler restarts it
                log.exception("the IRIS worker failed")

        self._worker_thread = threading.Thread(target=work, name="iris-worker", daemon=True)
        self._worker_thread.start()
        log.info("IRIS worker started on queue %s", iris.queue_name)

    def _alerts(self, wh: Warehouse) -> str:
        from alerts.events import check
        from alerts.rules import IRIS_KINDS, KINDS

        # with iris_worker = false the worker runs as its own service (python run.py ingest iris) and checks
        # the market rules after each batch; two processes checking them could announce an event twice
        kinds = None if self.settings.schedule.iris_worker else set(KINDS) - IRIS_KINDS
        result = check(wh, self.settings, kinds=kinds)
        for line in result.lines()[1:]:
            log.info("alerts: %s", line.strip())
        failed = [s for s in result.sent if not s.ok]
        if result.errors or failed:
            raise RuntimeError("; ".join(result.errors + [f"{s.message} of {s.rule} to {s.target}: {s.error}"
                                                          for s in failed]))
        return result.lines()[0]

    def _refresh(self, wh: Warehouse) -> str:
        from reporting.refresh import refresh

        done = []
        for board in self.settings.schedule.dashboards:
            result = refresh(wh, self.settings, board)
            for warning in result.warnings:
                log.warning("dashboard %s: %s", board, warning)
            done.append(result.lines()[0])
        return "; ".join(done)

    def _p114_fetch(self, wh: Warehouse) -> str:
        from ingest.p114.backfill import run_backfill
        from ingest.p114.portal import PortalClient

        elexon = self.settings.elexon
        if not elexon.portal_key:
            raise JobSkipped("ELEXON_PORTAL_KEY is not set: no Portal fetch")
        today = dt.date.today()
        p114 = self.settings.p114
        client = PortalClient(elexon.portal_key, elexon.portal_url)
        summary = run_backfill(wh, today - dt.timedelta(days=self.settings.schedule.p114_lookback_days),
                               today - dt.timedelta(days=1), runs=p114.get("runs") or RUN_PRECEDENCE, source="portal", client=client, cache_dir=p114.get("cache_dir", "data/p114/raw"))
        detail = (f"{len(summary.loaded)} file(s) loaded ({summary.records:,} records), "
                  f"{summary.already_loaded} already loaded")
        if summary.failed:
            raise RuntimeError(f"{detail}; {len(summary.failed)} failed: "
                               + "; ".join(f"{r.file_name}: {r.error}" for r in summary.failed[:3]))
        return detail

    def _gap_fill(self, wh: Warehouse) -> str:
        from ingest.iris.api import InsightsClient, fill_gap
        from ingest.iris.load import IrisLoader

        end = dt.datetime.combine(dt.date.today(), dt.time(), tzinfo=dt.timezone.utc)
        start = end - dt.timedelta(days=self.settings.schedule.gap_fill_days)
        loader, client = IrisLoader(wh), InsightsClient(self.settings.elexon.insights_url)
        filled, failed = [], []
        for code in self.settings.schedule.gap_fill_datasets:
            try:  # one dataset's failure does not stop the others
                summary = fill_gap(loader, code, start, end, client=client)
                filled.append(f"{code} +{summary.inserted}")
            except Exception as exc:  # noqa: BLE001
                failed.append(f"{code}: {exc}")
        detail = f"{start:%Y-%m-%d}..{end:%Y-%m-%d}: " + ", ".join(filled)
        if failed:
            raise RuntimeError(f"{detail}; failed: {'; '.join(failed)}")
        return detail


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)
