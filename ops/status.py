"""``run.py status``: what is in the warehouse, how fresh it is, and what needs attention.

IRIS, per dataset: when the last message arrived (Service Bus enqueued time, or a dropped file's
arrival time: never the time we loaded it), messages that arrived in the last hour, rows loaded in
the last hour, duplicates, corrections and quarantined records in the last 24 hours, and the newest
event time in the table. Warnings, for Service Bus and file drops alike: the client secret expires
within 30 days; the last message arrived longer ago than the queue's 3-day time-to-live (messages
have expired unread: fill the gap from the API); no message for an hour (is the worker, or
Elexon's client writing the file drop, running?). Warehouse outages the IRIS worker held through in
the last 7 days, and what they mean. P114: files loaded per run, the latest settlement date of each
run, and recent load failures. Scheduler: the last run of each job, and a warning when it failed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from ingest.iris.datasets import SPECS, DatasetShape, table_name
from ingest.iris.tables import BATCHES, LEDGER, OUTAGES, QUARANTINE
from ingest.p114.tables import LOAD_ERRORS, MANIFEST
from warehouse.base import Warehouse

QUEUE_TTL = dt.timedelta(days=3)
SECRET_WARNING = dt.timedelta(days=30)
SILENCE_WARNING = dt.timedelta(hours=1)
JOB_HISTORY = dt.timedelta(days=14)  # status reads the scheduler's runs of the last two weeks


@dataclass
class Status:
    now: dt.datetime
    iris: list[dict] = field(default_factory=list)
    p114: list[dict] = field(default_factory=list)
    p114_errors_7d: int = 0
    jobs: list[dict] = field(default_factory=list)
    outages: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect_status(wh: Warehouse, *, secret_expires: dt.date | None = None, now: dt.datetime | None = None) -> Status:
    now = now or dt.datetime.now(dt.timezone.utc)
    status = Status(now)
    _iris(wh, status)
    _p114(wh, status)
    _jobs(wh, status)
    _alerts(wh, status)
    _foreign(wh, status)
    if secret_expires is not None:
        left = secret_expires - now.date()
        if left <= dt.timedelta(0):
            status.warnings.append(f"the IRIS client secret expired on {secret_expires}: renew it at "
                                   "https://bmrs.elexon.co.uk/iris and set IRIS_CLIENT_SECRET")
        elif left <= SECRET_WARNING:
            status.warnings.append(f"the IRIS client secret expires on {secret_expires} (in {left.days} days): "
                                   "renew it at https://bmrs.elexon.co.uk/iris")
    return status


def _alerts(wh: Warehouse, status: Status) -> None:
    """Open alert events (a note) and messages that failed to reach their target in the last 24 h (a warning)."""
    if wh.table_columns("alert_events") is None or wh.table_columns("alert_deliveries") is None:
        return
    open_events = wh.scalar(f"SELECT COUNT(*) FROM {wh.ref('alert_events')} WHERE state = 'open'")
    if open_events:
        status.notes.append(f"alerts: {open_events} open event(s): python run.py alerts list --open")
    failed = wh.query_rows(
        f"SELECT target, COUNT(*) AS n FROM {wh.ref('alert_deliveries')} WHERE sent_at >= @day AND NOT ok "
        "GROUP BY target ORDER BY target", {"day": status.now - dt.timedelta(days=1)})
    if failed:
        status.warnings.append("alert messages failed in the last 24 h: " + ", ".join(
            f"{r['n']} to {r['target']}" for r in failed) + " (python run.py alerts test TARGET)")


def _foreign(wh: Warehouse, status: Status) -> None:
    """Tables with the project's names that it did not make (the user's own): loading into them is refused."""
    from ingest.iris.tables import API_WINDOWS, BOOKKEEPING, META
    from ingest.legacy import LEGACY_IMPORTS
    from ingest.p114.tables import ALL_TABLES
    from ops.scheduler import JOB_RUNS
    from reporting.assets import ASSET_LIST
    from reporting.reference import BMU_REFERENCE, CONFIG_VLP_UNITS

    lineage = {c.name: c.type for c in META[:3]}
    tables = {t.name: t for t in (*ALL_TABLES, *BOOKKEEPING, API_WINDOWS, LEGACY_IMPORTS, JOB_RUNS, ASSET_LIST,
                                  BMU_REFERENCE, CONFIG_VLP_UNITS)}
    tables |= {table_name(code): lineage for code in SPECS}
    found = [wh.physical(name) for name in wh.registry.foreign(tables)]
    if found:
        status.warnings.append(f"{', '.join(found)}: table(s) with the project's names that it did not create (your "
                               "own?); it leaves them untouched and refuses to load into them: give the project's "
                               "tables a prefix ([warehouse] table_prefix) or another dataset or DuckDB file "
                               "(README: Already have BigQuery tables?)")
    if wh.table_prefix:
        status.notes.append(f"the project's tables and views are called {wh.table_prefix}NAME ([warehouse] table_prefix)")


def _iris(wh: Warehouse, status: Status) -> None:
    if wh.table_columns(BATCHES.name) is None:
        return
    hour, day = status.now - dt.timedelta(hours=1), status.now - dt.timedelta(days=1)
    wh.ensure_tables([BATCHES, OUTAGES])  # columns added since the tables were made
    rows = wh.query_rows(
        f"""
        SELECT dataset,
               MAX(last_enqueued_at) AS last_message,
               SUM(CASE WHEN committed_at >= @hour THEN inserted ELSE 0 END) AS rows_1h,
               SUM(CASE WHEN committed_at >= @day THEN COALESCE(duplicate_rows, 0) + COALESCE(duplicate_messages, 0)
                   ELSE 0 END) AS duplicates_24h,
               SUM(CASE WHEN committed_at >= @day THEN COALESCE(corrections, 0) ELSE 0 END) AS corrections_24h,
               SUM(CASE WHEN committed_at >= @day THEN quarantined ELSE 0 END) AS quarantined_24h,
               STRING_AGG(DISTINCT source, ',') AS sources
        FROM {wh.ref(BATCHES.name)}
        GROUP BY dataset
        ORDER BY dataset
        """,
        {"hour": hour, "day": day},
    )
    arrivals = {  # messages by arrival (enqueued) time, not by when they were loaded
        r["dataset"]: r["n"] for r in wh.query_rows(
            f"SELECT dataset, COUNT(*) AS n FROM {wh.ref(LEDGER.name)} "
            "WHERE enqueued_date >= @hour_date AND enqueued_at >= @hour GROUP BY dataset",
            {"hour": hour, "hour_date": hour.date()})
    }
    quarantined = {
        r["dataset"]: r["n"]
        for r in wh.query_rows(f"SELECT dataset, COUNT(*) AS n FROM {wh.ref(QUARANTINE.name)} GROUP BY dataset")
    }
    last: dict[str, dt.datetime] = {}  # source (iris | file) → last arrival
    for row in rows:
        code = row["dataset"]
        row["messages_1h"] = arrivals.get(code, 0)
        row["quarantined_total"] = quarantined.get(code, 0)
        row["newest_data"] = _newest(wh, code) if code else None
        status.iris.append(row)
        for source in ("iris", "file"):
            if source in (row["sources"] or "").split(",") and row["last_message"] is not None:
                last[source] = max(last.get(source, row["last_message"]), row["last_message"])
    for source, at in last.items():
        what = "IRIS message (Service Bus)" if source == "iris" else "file in the IRIS file drop"
        runner = ("the IRIS worker (python run.py schedule, or python run.py ingest iris)" if source == "iris"
                  else "Elexon's IRIS client writing the file drop, and the replay (ingest iris --from-dir)")
        age = status.now - at
        if age > QUEUE_TTL:
            status.warnings.append(
                f"the last {what} arrived {_age(age)} ago, longer than the queue's 3-day time-to-live: messages "
                "have expired unread; fill the gap with python run.py backfill iris DATASET START END")
        elif age > SILENCE_WARNING:
            status.warnings.append(f"no {what} for {_age(age)}: is {runner} running?")
    _outages(wh, status)


def _outages(wh: Warehouse, status: Status) -> None:
    status.outages = wh.query_rows(
        f"SELECT started_at, ROUND(seconds, 1) AS seconds, attempts, messages_held, locks_lost, error "
        f"FROM {wh.ref(OUTAGES.name)} WHERE started_at >= @since ORDER BY started_at DESC",
        {"since": status.now - dt.timedelta(days=7)})
    if not status.outages:
        return
    status.notes.append(
        "While the warehouse is unavailable the IRIS worker holds its batch (locks renewed, nothing dead-lettered "
        "or quarantined) and takes no new messages; they wait on the queue for its 3-day time-to-live. An outage "
        "longer than that loses the oldest waiting messages: fill them with python run.py backfill iris.")
    longest = max(o["seconds"] or 0 for o in status.outages)
    if longest > QUEUE_TTL.total_seconds() / 3:
        status.warnings.append(f"a warehouse outage of {_age(dt.timedelta(seconds=longest))} in the last 7 days: "
                               "check for IRIS gaps (python run.py report completeness)")


def _newest(wh: Warehouse, code: str):
    shape = DatasetShape(code, SPECS.get(code))
    columns = wh.table_columns(table_name(code)) or {}
    shape.columns = dict(columns)
    column = shape.event_time
    if not column or column not in columns:
        return None
    return wh.scalar(f"SELECT MAX({column}) FROM {wh.ref(table_name(code))}")


def _p114(wh: Warehouse, status: Status) -> None:
    columns = wh.table_columns(MANIFEST.name)
    if columns is None:
        return
    # a manifest written before layouts were recorded has only the version
    layout = "COALESCE(layout, flow_version)" if "layout" in columns else "flow_version"
    status.p114 = wh.query_rows(
        f"""
        SELECT settlement_run, COUNT(*) AS files, MIN(settlement_date) AS first_date,
               MAX(settlement_date) AS latest_date, SUM(records) AS records,
               STRING_AGG(DISTINCT {layout}, ', ' ORDER BY {layout}) AS layouts,
               MAX(loaded_at) AS last_loaded
        FROM {wh.ref(MANIFEST.name)}
        GROUP BY settlement_run
        """
    )
    order = {run: i for i, run in enumerate(("II", "SF", "R1", "R2", "R3", "RF", "DF"))}
    status.p114.sort(key=lambda r: order.get(r["settlement_run"], 99))
    status.p114_errors_7d = wh.scalar(
        f"SELECT COUNT(DISTINCT file_name) FROM {wh.ref(LOAD_ERRORS.name)} WHERE failed_at >= @since",
        {"since": status.now - dt.timedelta(days=7)},
    ) or 0
    if status.p114_errors_7d:
        status.warnings.append(f"{status.p114_errors_7d} P114 file(s) failed to load in the last 7 days "
                               f"(see {LOAD_ERRORS.name})")


def _jobs(wh: Warehouse, status: Status) -> None:
    from ops.scheduler import JOB_RUNS

    if wh.table_columns(JOB_RUNS.name) is None:
        return
    status.jobs = wh.query_rows(
        f"""
        SELECT job, started_at AS last_run, ROUND(seconds, 1) AS seconds, outcome, detail
        FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY job ORDER BY started_at DESC) AS latest
              FROM {wh.ref(JOB_RUNS.name)} WHERE started_at >= @since) AS runs
        WHERE latest = 1
        ORDER BY job
        """,
        {"since": status.now - JOB_HISTORY},
    )
    for job in status.jobs:
        if job["outcome"] == "failed":
            status.warnings.append(f"scheduled job {job['job']} failed at {job['last_run']:%Y-%m-%d %H:%M} UTC: "
                                   f"{(job['detail'] or '')[:200]}")


def _age(delta: dt.timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} hours" if hours < 48 else f"{hours / 24:.1f} days"
