"""What each rule kind sees in the warehouse at a moment: a list of :class:`Condition`.

A condition is one thing the rule is about (an excursion, a run of high-price periods, an outage
revision, a silent dataset), named by a ``subject`` that is stable across checks, so the same
excursion seen by the next check is the same event. ``ended_at`` is set once the condition is
over (an excursion that returned to the band); a condition that is no longer returned at all has
cleared (a forecast revised, an outage ended, a warning older than the rule's window).

Episode rules (frequency, price above/below) are found over a window of data, not just the latest
value, so an excursion that starts and ends between two checks still fires once.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from typing import Any

from alerts.rules import MESSAGE_CADENCE, Rule
from core.config import Settings
from core.settlement import iso_utc
from ingest.iris.datasets import SPECS, DatasetTables, table_name
from warehouse.base import Warehouse
from warehouse.sqltemplates import render

PERIOD = dt.timedelta(minutes=30)


@dataclass
class Condition:
    subject: str  # stable name of what the event is about, unique within the rule
    started_at: dt.datetime  # when it began (data time, UTC)
    headline: str  # one line: what happened
    value: float | None = None
    unit: str = ""
    ended_at: dt.datetime | None = None  # None while it lasts
    details: str = ""


def evaluate(wh: Warehouse, rule: Rule, as_of: dt.datetime, settings: Settings) -> list[Condition] | None:
    """The rule's conditions at ``as_of``; None when the data it reads is not in the warehouse."""
    return _KINDS[rule.kind](wh, rule, as_of, settings)


def _query(wh: Warehouse, template: str, params: dict[str, Any], **context: Any) -> list[dict]:
    tables = DatasetTables({code: table_name(code) for code in SPECS})
    return wh.query_rows(render(f"alerts/{template}.sql.j2", wh, tables=tables, **context), params)


def _exists(wh: Warehouse, *tables: str) -> bool:
    return all(wh.table_columns(t) is not None for t in tables)


# ---------------------------------------------------------------------------------------- market
def _frequency(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    if not _exists(wh, "bmrs_freq"):
        return None
    rows = _query(wh, "frequency", {"low": float(rule.low), "high": float(rule.high),
                                    "min_seconds": float(rule.min_seconds), "max_gap_s": 60,
                                    "since": as_of - dt.timedelta(minutes=rule.window_minutes), "as_of": as_of})
    out = []
    for r in rows:
        below = r["lowest_hz"] < rule.low
        worst = r["lowest_hz"] if below else r["highest_hz"]
        side = f"below {rule.low:g} Hz" if below else f"above {rule.high:g} Hz"
        lasted = f"for {r['seconds']} s" + (" and continuing" if r["ended_at"] is None else "")
        out.append(Condition(
            subject=f"excursion from {iso_utc(r['started_at'])}", started_at=r["started_at"], ended_at=r["ended_at"],
            headline=f"system frequency {side}: {worst:.3f} Hz, outside {rule.low:g}-{rule.high:g} Hz {lasted}",
            value=worst, unit="Hz", details=f"{r['readings']} readings outside the band; last at {iso_utc(r['last_outside'])}"))
    return out


def _price(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    table = "bmrs_disebsp" if rule.source == "system" else "bmrs_mid"
    if not _exists(wh, table):
        return None
    rows = _query(wh, "price", {"since": as_of - dt.timedelta(minutes=rule.window_minutes), "as_of": as_of},
                  source=rule.source)
    name = "system price" if rule.source == "system" else "MID price"
    out: list[Condition] = []
    newest = rows[-1]["start_time"] if rows else None
    for label, test, level in (("above", lambda p: p > rule.above, rule.above),
                               ("below", lambda p: p < rule.below, rule.below)):
        if level is None:
            continue
        run: list[dict] = []
        for r in [*rows, None]:  # consecutive periods meeting the test form one episode
            if r is not None and test(r["price"]) and (not run or r["start_time"] - run[-1]["start_time"] <= PERIOD):
                run.append(r)
                continue
            if run:
                worst = max(x["price"] for x in run) if label == "above" else min(x["price"] for x in run)
                last = run[-1]
                ongoing = last["start_time"] == newest
                out.append(Condition(
                    subject=f"{label} {level:g} from {iso_utc(run[0]['start_time'])}", started_at=run[0]["start_time"],
                    ended_at=None if ongoing else last["start_time"] + PERIOD,
                    headline=f"{name} {label} £{level:g}/MWh: £{worst:,.2f}/MWh in {len(run)} period(s) from "
                             f"{_period(run[0])}" + (" and continuing" if ongoing else ""),
                    value=worst, unit="£/MWh"))
            run = [r] if r is not None and test(r["price"]) else []
    if rule.jump is not None:
        for r in rows:
            if (r["previous_price"] is None or r["previous_start"] is None
                    or r["start_time"] - r["previous_start"] != PERIOD):
                continue
            change = r["price"] - r["previous_price"]
            if abs(change) >= rule.jump:
                out.append(Condition(
                    subject=f"jump at {iso_utc(r['start_time'])}", started_at=r["start_time"],
                    ended_at=r["start_time"] + PERIOD if r["start_time"] + PERIOD <= as_of else None,
                    headline=f"{name} {'rose' if change > 0 else 'fell'} £{abs(change):,.2f}/MWh in one period: "
                             f"£{r['previous_price']:,.2f} → £{r['price']:,.2f}/MWh at {_period(r)}",
                    value=change, unit="£/MWh"))
    return out


def _period(r: dict) -> str:
    return f"{r['settlement_date']} period {r['settlement_period']}"


def _forecast(table: str, column: str, national: bool, unit: str, test, severity, level_text):
    """A forecast rule: ``test(rule, value)`` picks the periods; the worst is the most ``severity(value)``."""
    def kind(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
        if not _exists(wh, table):
            return None
        rows = _query(wh, "forecast", {"as_of": as_of, "period_start": as_of - PERIOD},
                      table=table, column=column, national=national)
        by_date: dict[Any, list[dict]] = {}
        for r in rows:
            if test(rule, r["value"]):
                by_date.setdefault(r["settlement_date"], []).append(r)
        out = []
        for day, periods in by_date.items():
            worst = max(periods, key=lambda r: severity(r["value"]))
            first, last = periods[0], periods[-1]
            amount = f"{worst['value']:,.0f} MW" if unit == "MW" else f"{worst['value']:.3g}"
            out.append(Condition(
                subject=f"forecast for {day}", started_at=first["start_time"],
                headline=f"{level_text(rule)} forecast for {day}: {amount} in period "
                         f"{worst['settlement_period']} ({len(periods)} period(s), {first['settlement_period']}-"
                         f"{last['settlement_period']})",
                value=float(worst["value"]), unit=unit,
                details=f"latest forecast published {iso_utc(max(p['publish_time'] for p in periods))}"))
        return out
    return kind


# ---------------------------------------------------------------------------------------- events
def _syswarn(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    columns = wh.table_columns("bmrs_syswarn")
    if columns is None:
        return None
    rows = _query(wh, "syswarn", {"since": as_of - dt.timedelta(minutes=rule.window_minutes), "as_of": as_of},
                  has_type="warning_type" in columns)
    types = [t.upper() for t in rule.types]
    out = []
    for r in rows:
        text, kind = r["warning_text"] or "", (r["warning_type"] or "").upper()
        if types and not any(kind == t or t in text.upper() for t in types):  # IRIS rows may carry no type
            continue
        if rule.contains and rule.contains.lower() not in text.lower():
            continue
        digest = hashlib.sha1(text.encode()).hexdigest()[:8]
        out.append(Condition(subject=f"warning {iso_utc(r['publish_time'])} {digest}", started_at=r["publish_time"],
                             headline=f"system warning{f' ({kind})' if kind else ''}: {text[:300]}"))
    return out


def _outage(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    if not _exists(wh, "bmrs_remit"):
        return None
    rows = _query(wh, "outage", {"as_of": as_of, "min_mw": float(rule.min_mw)})
    units, fuels = set(rule.units), {f.upper() for f in rule.fuels}
    out = []
    for r in rows:
        if units and not units & {r["asset_id"], r["affected_unit"]}:
            continue
        if fuels and (r["fuel_type"] or "").upper() not in fuels:
            continue
        unit = r["affected_unit"] or r["asset_id"] or "?"
        end = f" until {iso_utc(r['event_end_time'])}" if r["event_end_time"] else ", no end given"
        revised = f" (revision {r['revision_number']})" if (r["revision_number"] or 0) > 1 else ""
        out.append(Condition(
            subject=f"{r['mrid']} revision {r['revision_number']}", started_at=r["event_start_time"] or r["publish_time"],
            headline=f"unplanned outage{revised} of {unit} ({r['fuel_type'] or 'fuel not given'}): "
                     f"{r['unavailable_mw']:,.0f} MW unavailable from {iso_utc(r['event_start_time'])}{end}",
            value=float(r["unavailable_mw"]), unit="MW",
            details=f"REMIT {r['mrid']}; normal {r['normal_capacity']} MW, available {r['available_capacity']} MW"
                    + (f"; cause: {r['cause']}" if r["cause"] else "")))
    return out


def _acceptance(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    if not _exists(wh, "bmrs_boalf"):
        return None
    units = list(rule.units)
    if not units:  # the assets: the settings' list and any imported (python run.py assets import)
        units = [a.bm_unit_id for a in settings.reporting.assets]
        if _exists(wh, "assets"):
            units += [r["bm_unit_id"] for r in wh.query_rows(f"SELECT bm_unit_id FROM {wh.ref('assets')}")]
    if not units:
        return []
    rows = _query(wh, "acceptance", {"since": as_of - dt.timedelta(minutes=rule.window_minutes), "as_of": as_of,
                                     "units": sorted(set(units))})
    out = []
    for r in rows:
        ongoing = r["time_to"] is None or r["time_to"] > as_of
        out.append(Condition(
            subject=f"{r['bm_unit']} acceptance {r['acceptance_number']}", started_at=r["time_from"],
            ended_at=None if ongoing else r["time_to"],
            headline=f"{r['bm_unit']} accepted (acceptance {r['acceptance_number']}"
                     f"{', system flagged' if r['so_flag'] else ''}): {r['lowest_mw']:g} to {r['highest_mw']:g} MW, "
                     f"{iso_utc(r['time_from'])} to {iso_utc(r['time_to'])}",
            value=float(r["highest_mw"]), unit="MW", details=f"issued {iso_utc(r['acceptance_time'])}"))
    return out


# ---------------------------------------------------------------------------------------- health
def _silence(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    if not _exists(wh, "iris_batches"):
        return None
    since = as_of - dt.timedelta(days=7)
    last = {r["dataset"]: r for r in _query(wh, "silence", {"as_of": as_of, "since": since})}
    datasets = rule.datasets or sorted(code for code in last if code in MESSAGE_CADENCE)
    out = []
    for code in datasets:
        cadence = (dt.timedelta(minutes=rule.cadence_minutes) if rule.cadence_minutes is not None
                   else MESSAGE_CADENCE[code])
        limit = cadence * rule.factor
        arrived = last.get(code, {}).get("last_arrival")
        if arrived is not None and as_of - arrived <= limit:
            continue
        silent = as_of - (arrived or since)
        where = {"iris": "Service Bus", "file": "the file drop", "api": "the Insights API"}
        sources = ", ".join(where.get(s, s) for s in (last.get(code, {}).get("sources") or "").split(",") if s)
        out.append(Condition(
            subject=code, started_at=(arrived or since) + limit,
            headline=f"no {code} message for {_duration(silent)} "
                     f"(limit {limit.total_seconds() / 60:g} = {rule.factor:g} x {cadence.total_seconds() / 60:g} min)",
            value=round(silent.total_seconds() / 60, 1), unit="min",
            details=(f"last arrival {iso_utc(arrived)} via {sources}" if arrived else "no arrival in the last 7 days")))
    return out


def _duration(d: dt.timedelta) -> str:
    minutes = d.total_seconds() / 60
    if minutes < 120:
        return f"{minutes:.0f} minutes"
    return f"{minutes / 60:.1f} hours" if minutes < 48 * 60 else f"{minutes / 1440:.1f} days"


def _secret_expiry(wh, rule: Rule, as_of, settings: Settings) -> list[Condition] | None:
    expires = settings.iris.get("secret_expires")
    if expires is None:
        return None
    left = (expires - as_of.date()).days
    if left > rule.days:
        return []
    return [Condition(subject=f"expires {expires}", started_at=as_of, value=float(left), unit="days",
                      headline=(f"the IRIS client secret expired on {expires}" if left < 0 else
                                f"the IRIS client secret expires on {expires} (in {left} days)")
                      + ": renew it at https://bmrs.elexon.co.uk/iris and set IRIS_CLIENT_SECRET / IRIS_SECRET_EXPIRES")]


def _p114_overdue(wh, rule: Rule, as_of, settings: Settings) -> list[Condition] | None:
    """One event per run: the settlement dates (of the last ``days``, from the first date loaded) for
    which the run is due by the working-day timetable and neither loaded nor superseded."""
    from ingest.p114.tables import MANIFEST
    from reporting.reports import ReportOptions, run_report

    if not _exists(wh, MANIFEST.name):
        return None
    today = as_of.date()
    first = wh.scalar(f"SELECT MIN(settlement_date) FROM {wh.ref(MANIFEST.name)}")
    if first is None:
        return []
    start = max(first, today - dt.timedelta(days=rule.days))
    if start >= today:
        return []
    options = ReportOptions(date_from=start, date_to=today - dt.timedelta(days=1), today=today, now=as_of,
                            run_due_working_days=settings.reporting.run_due_working_days)
    table = run_report(wh, "completeness", options, only={"p114"}).sections["p114"]
    dates: dict[str, list] = {}
    for r in table.select(["settlement_date", "overdue_runs"]).to_pylist():
        for run in filter(None, (r["overdue_runs"] or "").split(",")):
            if not rule.runs or run in rule.runs:
                dates.setdefault(run, []).append(r["settlement_date"])
    out = []
    for run, days in dates.items():
        days.sort()
        span = f"{days[0]}" if len(days) == 1 else f"{len(days)} settlement dates, {days[0]} to {days[-1]}"
        out.append(Condition(subject=f"{run} overdue", started_at=as_of, value=float(len(days)), unit="dates",
                             headline=f"P114 run {run} is overdue for {span}",
                             details="due by the settlement timetable ([reporting] run_due_working_days) and not "
                                     "loaded: is the daily Portal fetch (p114_fetch) running?"))
    return out


def _job_failed(wh, rule: Rule, as_of, settings) -> list[Condition] | None:
    if not _exists(wh, "ops_job_runs"):
        return None
    out = []
    for r in _query(wh, "job_failed", {"as_of": as_of}):
        if r["outcome"] != "failed" or (rule.jobs and r["job"] not in rule.jobs):
            continue
        out.append(Condition(subject=r["job"], started_at=r["started_at"],
                             headline=f"scheduled job {r['job']} failed at {iso_utc(r['started_at'])}: "
                                      f"{(r['detail'] or '')[:300]}"))
    return out


_KINDS = {
    "frequency": _frequency,
    "price": _price,
    "margin": _forecast("bmrs_melngc", "margin", True, "MW", lambda rule, v: v < rule.below, lambda v: -v,
                        lambda rule: f"national margin below {rule.below:g} MW"),
    "imbalance": _forecast("bmrs_imbalngc", "imbalance", True, "MW", lambda rule, v: abs(v) > rule.beyond, abs,
                           lambda rule: f"national imbalance beyond ±{rule.beyond:g} MW"),
    "lolp": _forecast("bmrs_lolpdrm", "loss_of_load_probability", False, "", lambda rule, v: v > rule.above,
                      lambda v: v, lambda rule: f"loss-of-load probability above {rule.above:g}"),
    "syswarn": _syswarn,
    "outage": _outage,
    "acceptance": _acceptance,
    "silence": _silence,
    "secret_expiry": _secret_expiry,
    "p114_overdue": _p114_overdue,
    "job_failed": _job_failed,
}
