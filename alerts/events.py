"""Alert events: open when a rule's condition starts, close when it ends or clears, one message each.

:func:`check` evaluates the rules, compares what they see with the stored events and writes the
changes in one transaction:

* a condition with no event yet opens one (``alert_events``; its id is a hash of the rule's name
  and the condition's subject, so the same excursion is never a second event) and sends the
  *open* message to the rule's targets. A condition already over when first seen (an excursion
  between two checks) opens and closes at once, and is still announced once;
* an open event whose condition has ended, or is no longer there (cleared), closes; a *close*
  message is sent only if the rule has ``notify_close``;
* an open event gets a *reminder* after the rule's ``remind_minutes`` since its last message;
* an *open* message that failed every attempt is tried again by later checks (after
  :data:`RETRY_AFTER`, at most :data:`MAX_SENDS` times). Once a target has failed every attempt,
  its further messages in the same check are recorded as not sent rather than each waited on.

Each message to each target is a row of ``alert_deliveries``: when, how many attempts, whether it
got through, the error. Delivery happens after the events are committed and never raises.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass, field

import pyarrow as pa

from alerts.conditions import Condition, evaluate
from alerts.delivery import Message, Notifier, Outcome, when
from alerts.rules import Rule, check_targets
from core.config import Settings
from core.errors import ElexonError, WarehouseUnavailable
from warehouse.base import Batch, Delete, Warehouse
from warehouse.schema import Column, Table
from warehouse.sqltemplates import render

log = logging.getLogger(__name__)

RETRY_AFTER = dt.timedelta(minutes=5)
MAX_SENDS = 5

EVENTS = Table(
    "alert_events",
    (
        Column("event_id", "STRING", "hash of rule and subject: one event per thing that happened"),
        Column("rule", "STRING", "the rule's name in [[alerts.rules]]"),
        Column("kind", "STRING"),
        Column("subject", "STRING", "what the event is about (an excursion's start, an outage revision, a dataset)"),
        Column("state", "STRING", "open | closed"),
        Column("headline", "STRING", "what happened, as sent"),
        Column("details", "STRING"),
        Column("value", "FLOAT64", "the value that crossed the threshold (the worst seen)"),
        Column("unit", "STRING"),
        Column("threshold", "STRING", "the rule's condition in words"),
        Column("started_at", "TIMESTAMP", "when the condition began (data time)"),
        Column("ended_at", "TIMESTAMP", "when it ended (data time), if it did"),
        Column("opened_at", "TIMESTAMP", "when a check first saw it"),
        Column("closed_at", "TIMESTAMP", "when a check closed it"),
        Column("close_reason", "STRING", "ended (the data shows its end) | cleared (no longer seen)"),
        Column("as_of", "TIMESTAMP", "the as-of time of the check that opened it: a check replaying an earlier "
                                     "time (alerts check --as-of) never closes it"),
    ),
    "One row per alert event (python run.py alerts list)",
)

DELIVERIES = Table(
    "alert_deliveries",
    (
        Column("event_id", "STRING"),
        Column("rule", "STRING"),
        Column("target", "STRING", "the target's name in [alerts.targets] (never its URL)"),
        Column("message", "STRING", "open | close | reminder | retry | test"),
        Column("sent_at", "TIMESTAMP"),
        Column("attempts", "INT64", "tries within this send (exponential backoff between them)"),
        Column("ok", "BOOL"),
        Column("error", "STRING", "what the target or apprise said, secrets redacted"),
        Column("title", "STRING"),
        Column("body", "STRING"),
    ),
    "One row per message sent (or tried) to one alert target",
    partition_by="sent_at",
)


def ensure_alert_schema(wh: Warehouse) -> None:
    wh.ensure_tables([EVENTS, DELIVERIES])


@dataclass
class Sent:
    event_id: str
    rule: str
    target: str
    message: str
    title: str
    ok: bool
    attempts: int
    error: str | None


@dataclass
class CheckResult:
    as_of: dt.datetime
    rules: int = 0
    opened: list[dict] = field(default_factory=list)
    closed: list[dict] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # rules that could not be evaluated (events left as they are)
    skipped: list[str] = field(default_factory=list)  # rules whose data is not loaded

    def lines(self) -> list[str]:
        out = [f"{self.rules} rule(s) checked at {self.as_of:%Y-%m-%d %H:%M:%S} UTC: {len(self.opened)} event(s) opened, "
               f"{len(self.closed)} closed, {sum(s.ok for s in self.sent)} message(s) delivered"
               + (f", {sum(not s.ok for s in self.sent)} failed" if any(not s.ok for s in self.sent) else "")]
        out += [f"  OPEN   {e['rule']}: {e['headline']}" for e in self.opened if e["state"] == "open"]
        out += [f"  FIRED  {e['rule']}: {e['headline']} (already over)" for e in self.opened if e["state"] == "closed"]
        out += [f"  CLOSED {e['rule']}: {e['headline']} ({e['close_reason']})" for e in self.closed]
        out += [f"  {'sent' if s.ok else 'FAILED'} {s.message} of {s.rule} to {s.target}"
                + (f" after {s.attempts} attempts: {s.error}" if not s.ok else "") for s in self.sent]
        out += [f"  rule {e}" for e in self.errors]
        out += [f"  {s}" for s in self.skipped]
        return out


def event_id(rule: str, subject: str) -> str:
    return hashlib.sha1(f"{rule}\0{subject}".encode()).hexdigest()[:20]


_ONE_CHECK_AT_A_TIME = threading.Lock()  # the worker's monitor and the scheduler's job share a process


def check(wh: Warehouse, settings: Settings, *, as_of: dt.datetime | None = None,
          kinds: Collection[str] | None = None, notifier: Notifier | None = None,
          now: dt.datetime | None = None) -> CheckResult:
    """Evaluate the rules (those of ``kinds``, else all) at ``as_of`` (default now), record the events
    that opened and closed, and deliver their messages. Checks in one process take turns, so two
    never open the same event."""
    with _ONE_CHECK_AT_A_TIME:
        return _check(wh, settings, as_of, kinds, notifier, now)


def _check(wh: Warehouse, settings: Settings, as_of: dt.datetime | None, kinds: Collection[str] | None,
           notifier: Notifier | None, now: dt.datetime | None) -> CheckResult:
    alerts = settings.alerts
    now = now or dt.datetime.now(dt.timezone.utc)
    as_of = as_of or now
    rules = [r for r in alerts.rules if kinds is None or r.kind in kinds]
    result = CheckResult(as_of, len(rules))
    if not rules:
        return result
    check_targets(alerts)
    ensure_alert_schema(wh)
    names = [r.name for r in rules]
    open_events = wh.query_rows(f"SELECT * FROM {wh.ref(EVENTS.name)} WHERE state = 'open' AND {wh.in_list('rule', 'names')}",
                        {"names": names})
    writes: list[dict] = []
    messages: list[tuple[dict, Rule, str]] = []
    for rule in rules:
        try:
            conditions = evaluate(wh, rule, as_of, settings)
        except WarehouseUnavailable:
            raise
        except ElexonError as exc:
            result.errors.append(f"{rule.name} ({rule.kind}) could not be evaluated: {exc}")
            continue
        if conditions is None:
            result.skipped.append(f"rule {rule.name}: the data a {rule.kind} rule reads is not loaded")
            continue
        by_id = {event_id(rule.name, c.subject): c for c in conditions}
        known = {e["event_id"]: e for e in wh.query_rows(
            f"SELECT event_id, state FROM {wh.ref(EVENTS.name)} WHERE {wh.in_list('event_id', 'ids')}",
            {"ids": list(by_id)})} if by_id else {}
        for eid, c in by_id.items():
            if eid not in known:
                row = _event_row(eid, rule, c, now, as_of)
                writes.append(row)
                result.opened.append(row)
                messages.append((row, rule, "open"))
                if row["state"] == "closed" and rule.notify_close:
                    messages.append((row, rule, "close"))
        for e in open_events:
            if e["rule"] != rule.name:
                continue
            c = by_id.get(e["event_id"])
            if (c is not None and c.ended_at is None) or (e["as_of"] is not None and as_of < e["as_of"]):
                continue
            closed = {**e, "state": "closed", "closed_at": now, "close_reason": "ended" if c else "cleared"}
            if c is not None:  # its final shape: how long it lasted, its worst value
                closed.update(ended_at=c.ended_at, headline=c.headline, value=c.value, details=c.details)
            writes.append(closed)
            result.closed.append(closed)
            if rule.notify_close:
                messages.append((closed, rule, "close"))
    if writes:
        wh.write([Batch(EVENTS.name, EVENTS.conform(pa.Table.from_pylist(writes)))],
                 deletes=[Delete(EVENTS.name, "event_id", row["event_id"]) for row in writes])
    written = {row["event_id"] for row in writes}
    still_open = [e for e in open_events if e["event_id"] not in written and e["rule"] in names]
    messages += _due_again(wh, still_open, {r.name: r for r in rules}, now)
    if messages:
        result.sent = deliver(wh, settings, messages, notifier, now)
    return result


def _event_row(eid: str, rule: Rule, c: Condition, now: dt.datetime, as_of: dt.datetime) -> dict:
    return {"event_id": eid, "rule": rule.name, "kind": rule.kind, "subject": c.subject,
            "state": "closed" if c.ended_at else "open", "headline": c.headline, "details": c.details,
            "value": c.value, "unit": c.unit, "threshold": rule.threshold_text(), "started_at": c.started_at,
            "ended_at": c.ended_at, "opened_at": now, "closed_at": now if c.ended_at else None,
            "close_reason": "ended" if c.ended_at else None, "as_of": as_of}


def _due_again(wh: Warehouse, events: list[dict], rules: dict[str, Rule], now: dt.datetime) -> list[tuple[dict, Rule, str]]:
    """Reminders for open events, and open messages that never got through."""
    if not events:
        return []
    sends = {(r["event_id"], r["target"]): r for r in wh.query_rows(f"""
        SELECT event_id, target, MAX(CASE WHEN ok THEN sent_at END) AS last_ok, MAX(sent_at) AS last_try,
               COUNT(*) AS tries
        FROM {wh.ref(DELIVERIES.name)} WHERE {wh.in_list('event_id', 'ids')} GROUP BY event_id, target""",
        {"ids": [e["event_id"] for e in events]})}
    due = []
    for e in events:
        rule = rules[e["rule"]]
        for target in rule.targets:
            s = sends.get((e["event_id"], target))
            if s is None or (s["last_ok"] is None and s["tries"] < MAX_SENDS and now - s["last_try"] >= RETRY_AFTER):
                due.append((e, rule, "retry", target))
            elif (rule.remind_minutes and s["last_ok"] is not None
                  and now - s["last_ok"] >= dt.timedelta(minutes=rule.remind_minutes)):
                due.append((e, rule, "reminder", target))
    return due


def deliver(wh: Warehouse, settings: Settings, messages: list[tuple], notifier: Notifier | None,
            now: dt.datetime) -> list[Sent]:
    """Send each (event, rule, kind[, target]) to its rule's targets (or the one given); record every send."""
    alerts = settings.alerts
    notifier = notifier or Notifier(alerts.targets, attempts=alerts.retry_attempts)
    sent, rows = [], []
    down: set[str] = set()  # targets that failed every attempt: not waited on again in this check
    for item in messages:
        event, rule, kind = item[:3]
        targets = [item[3]] if len(item) > 3 else list(rule.targets)
        message = compose(event, rule, kind, alerts.dashboard_url)
        for target in targets:
            if target in down:
                outcome = Outcome(False, 0, f"not sent: {target} failed every attempt earlier in this check; "
                                            "a later check tries again")
            else:
                outcome = notifier.send(target, message)
                if not outcome.ok and outcome.attempts:
                    down.add(target)
            sent.append(Sent(event["event_id"], rule.name, target, kind, message.title, outcome.ok, outcome.attempts,
                             outcome.error))
            rows.append(_delivery_row(event["event_id"], rule.name, target, kind, message, outcome, now))
    if rows:
        try:
            wh.write({DELIVERIES.name: DELIVERIES.conform(pa.Table.from_pylist(rows))})
        except ElexonError as exc:  # the messages went out; only their record is missing
            log.error("could not record %d alert deliveries in %s: %s", len(rows), DELIVERIES.name, exc)
    return sent


def _delivery_row(event_id: str | None, rule: str | None, target: str, kind: str, message: Message,
                  outcome: Outcome, now: dt.datetime) -> dict:
    return {"event_id": event_id, "rule": rule, "target": target, "message": kind, "sent_at": now,
            "attempts": outcome.attempts, "ok": outcome.ok, "error": outcome.error, "title": message.title,
            "body": message.body}


def compose(event: dict, rule: Rule, kind: str, dashboard_url: str | None) -> Message:
    """The message: what happened, the value, the threshold, the times in UTC and Europe/London, a link."""
    closing = kind == "close"
    prefix = {"open": "ALERT", "retry": "ALERT", "reminder": "STILL OPEN", "close": "CLEARED"}[kind]
    title = f"{prefix} {rule.name}: {event['headline']}"
    if len(title) > 240:
        title = title[:237] + "..."
    value = f"{event['value']:,.4g} {event['unit'] or ''}".strip() if event.get("value") is not None else "-"
    lines = [
        event["headline"] if not closing else f"Over: {event['headline']}",
        f"Value: {value}",
        f"Threshold: {event['threshold']}",
        f"Since: {when(event['started_at'])}",
    ]
    if event.get("ended_at") is not None:
        lines.append(f"Ended: {when(event['ended_at'])}")
    if closing:
        lines.append("Closed: " + ("the data shows it ended" if event.get("close_reason") == "ended"
                                   else "no longer seen in the data (cleared, revised or out of the rule's window)"))
    if event.get("details"):
        lines.append(event["details"])
    lines.append(f"Rule: {rule.name} ({rule.kind}); event {event['event_id']}")
    if dashboard_url:
        lines.append(f"Dashboard: {dashboard_url}")
    return Message(title, "\n".join(lines), "success" if closing else "warning")


def list_events(wh: Warehouse, *, only_open: bool = False, days: int = 7,
                now: dt.datetime | None = None) -> list[dict]:
    """Events opened in the last ``days`` days and every open one (only open ones with ``only_open``),
    newest first, with how many messages got through and failed."""
    if wh.table_columns(EVENTS.name) is None:
        return []
    ensure_alert_schema(wh)
    since = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)
    return wh.query_rows(render("reports/_alert_events.sql.j2", wh, only_open=only_open), {"since": since})


def send_test(wh: Warehouse, settings: Settings, target: str, notifier: Notifier | None = None):
    """Send a test message to ``target`` and record it in ``alert_deliveries``."""
    from core.errors import AlertError

    alerts = settings.alerts
    if target not in alerts.targets:
        raise AlertError(f"no target {target!r} in [alerts.targets] (defined: {', '.join(alerts.targets) or 'none'})")
    check_targets(alerts)
    now = dt.datetime.now(dt.timezone.utc)
    notifier = notifier or Notifier(alerts.targets, attempts=alerts.retry_attempts)
    lines = ["A test message from the Elexon pipeline (python run.py alerts test): this target works.",
             f"Sent: {when(now)}", "Rules sending here: "
             + (", ".join(r.name for r in alerts.rules if target in r.targets) or "none yet")]
    if alerts.dashboard_url:
        lines.append(f"Dashboard: {alerts.dashboard_url}")
    message = Message(f"TEST alert target {target}", "\n".join(lines), "info")
    outcome = notifier.send(target, message)
    ensure_alert_schema(wh)
    wh.write({DELIVERIES.name: DELIVERIES.conform(pa.Table.from_pylist([
        _delivery_row(None, None, target, "test", message, outcome, now)]))})
    return outcome
