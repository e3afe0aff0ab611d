"""Alerts: every rule kind fires once on hand-built data, does not repeat, and closes when it clears;
messages go through the real apprise library to a local JSON webhook and a local SMTP server."""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pytest

from alerts.delivery import Notifier
from alerts.events import DELIVERIES, EVENTS, check, list_events, send_test
from core.config import load_settings
from core.errors import SettingsError
from ingest.iris.files import replay_directory
from ingest.iris.load import IrisLoader
from tests.peers.notify import Mailbox, Webhook

T0 = dt.datetime(2026, 5, 6, 12, 0, tzinfo=dt.timezone.utc)  # the checks' "now" (13:00 BST)


def z(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def sp(t: dt.datetime) -> tuple[str, int]:
    """Settlement date and period of a UTC time on a BST day (period 1 starts 23:00 UTC the day before)."""
    local = t + dt.timedelta(hours=1)
    return local.date().isoformat(), local.hour * 2 + local.minute // 30 + 1


def drop(root: Path, dataset: str, rows: list[dict], arrived: dt.datetime | None = None) -> None:
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dataset}_{uuid.uuid4().hex[:10]}.json"
    path.write_text(json.dumps(rows))
    if arrived is not None:
        os.utime(path, (arrived.timestamp(), arrived.timestamp()))


def load(wh, root: Path) -> None:
    replay_directory(IrisLoader(wh), root, remove=True)


def settings_for(tmp_path: Path, rules: list[dict], targets: dict[str, str], extra: str = "", environ=None):
    lines = [extra, "[alerts]", 'dashboard_url = "https://example.com/dash"', "[alerts.targets]"]
    lines += [f"{name} = {json.dumps(url)}" for name, url in targets.items()]
    for rule in rules:
        lines.append("[[alerts.rules]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in rule.items()]
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"settings-{uuid.uuid4().hex[:6]}.toml"
    path.write_text("\n".join(lines) + "\n")
    return load_settings(path, environ=environ or {})


@pytest.fixture
def hook():
    server = Webhook().start()
    yield server
    server.stop()


def fast(settings) -> Notifier:
    return Notifier(settings.alerts.targets, attempts=3, wait_s=0.01)


# ---------------------------------------------------------------------------------------- the cases
def freq(root, start, end, hz):
    t, rows = start, []
    while t <= end:
        rows.append({"dataset": "FREQ", "measurementTime": z(t), "frequency": hz(t)})
        t += dt.timedelta(seconds=15)
    drop(root, "FREQ", rows)


def price_rows(prices: list[float], last_start: dt.datetime, created=T0):
    rows = []
    for i, price in enumerate(prices):
        start = last_start - dt.timedelta(minutes=30 * (len(prices) - 1 - i))
        day, period = sp(start)
        rows.append({"dataset": "DISEBSP", "settlementDate": day, "settlementPeriod": period, "startTime": z(start),
                     "createdDateTime": z(created), "systemSellPrice": price, "systemBuyPrice": price,
                     "netImbalanceVolume": 100.0})
    return rows


def forecast(code, field, values, published, national=True):
    rows = []
    for i, v in enumerate(values):
        start = T0 + dt.timedelta(minutes=30 * (i + 1))
        day, period = sp(start)
        row = {"dataset": code, "publishTime": z(published), "startTime": z(start), "settlementDate": day,
               "settlementPeriod": period, field: v}
        row.update({"boundary": "N"} if national else {"publishingPeriodCommencingTime": z(published)})
        rows.append(row)
    return rows


def remit(mrid, revision, status="Active", kind="Unplanned", unavailable=500.0, unit="T_BIGGEN-1", published=T0):
    return {"dataset": "REMIT", "mrid": mrid, "revisionNumber": revision, "publishTime": z(published - dt.timedelta(minutes=5)),
            "createdTime": z(published - dt.timedelta(minutes=6)), "messageType": "UnavailabilitiesOfElectricityFacilities",
            "eventType": "Production unavailability", "unavailabilityType": kind, "participantId": "P1",
            "assetId": unit, "affectedUnit": unit, "fuelType": "CCGT", "normalCapacity": 800.0,
            "availableCapacity": 800.0 - unavailable, "unavailableCapacity": unavailable, "eventStatus": status,
            "eventStartTime": z(T0 - dt.timedelta(hours=1)), "eventEndTime": z(T0 + dt.timedelta(hours=5)),
            "cause": "Turbine trip"}


def boalf(unit, number, accepted, time_from, time_to, level=40):
    day, period = sp(time_from)
    return {"dataset": "BOALF", "settlementDate": day, "settlementPeriodFrom": period, "settlementPeriodTo": period,
            "timeFrom": z(time_from), "timeTo": z(time_to), "levelFrom": level, "levelTo": level,
            "acceptanceNumber": number, "acceptanceTime": z(accepted), "deemedBoFlag": False, "soFlag": False,
            "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False, "nationalGridBmUnit": unit, "bmUnit": unit}


@dataclass
class Case:
    rule: dict
    fire: Callable  # (root, wh) -> None: data that makes the rule fire at T0
    clear: Callable  # (root, wh) -> the as-of time at which the condition has cleared
    headline: str  # a piece of the open message


def _freq_fire(root, wh):
    freq(root, T0 - dt.timedelta(minutes=10), T0 - dt.timedelta(seconds=75), lambda t: 50.01)
    freq(root, T0 - dt.timedelta(seconds=60), T0, lambda t: 49.71)  # 60 s outside and continuing


def _freq_clear(root, wh):
    freq(root, T0 + dt.timedelta(seconds=15), T0 + dt.timedelta(minutes=1), lambda t: 49.95)
    return T0 + dt.timedelta(minutes=1)


def _price_clear(root, wh):
    drop(root, "DISEBSP", price_rows([80.0], T0 + dt.timedelta(minutes=30)))
    return T0 + dt.timedelta(minutes=30)


def _forecast_case(code, field, firing, calm, rule):
    def fire(root, wh):
        drop(root, code, forecast(code, field, firing, T0 - dt.timedelta(minutes=10), national=code != "LOLPDRM"))

    def clear(root, wh):
        drop(root, code, forecast(code, field, calm, T0 + dt.timedelta(minutes=5), national=code != "LOLPDRM"))
        return T0 + dt.timedelta(minutes=10)

    return fire, clear


def _silence_fire(root, wh):
    drop(root, "FREQ", [{"dataset": "FREQ", "measurementTime": z(T0 - dt.timedelta(minutes=10)), "frequency": 50.0}],
         arrived=T0 - dt.timedelta(minutes=10))


def _silence_clear(root, wh):
    drop(root, "FREQ", [{"dataset": "FREQ", "measurementTime": z(T0 + dt.timedelta(minutes=1)), "frequency": 50.0}],
         arrived=T0 + dt.timedelta(minutes=1))
    return T0 + dt.timedelta(minutes=2)


CASES = {
    "frequency": Case({"kind": "frequency", "low": 49.8, "high": 50.2, "min_seconds": 30}, _freq_fire, _freq_clear,
                      "system frequency below 49.8 Hz: 49.710 Hz"),
    "price": Case({"kind": "price", "above": 1000},
                  lambda root, wh: drop(root, "DISEBSP", price_rows([50.0, 60.0, 1200.0, 1500.0], T0)), _price_clear,
                  "system price above £1000/MWh: £1,500.00/MWh in 2 period(s)"),
    "margin": Case({"kind": "margin", "below": 1000},
                   *_forecast_case("MELNGC", "margin", [2500, 500, 700], [2500, 2600, 2700], None),
                   "national margin below 1000 MW forecast for 2026-05-06: 500 MW in period"),
    "imbalance": Case({"kind": "imbalance", "beyond": 2000},
                      *_forecast_case("IMBALNGC", "imbalance", [100, -2500], [100, -300], None),
                      "national imbalance beyond ±2000 MW forecast for 2026-05-06: -2,500 MW in period 29"),
    "lolp": Case({"kind": "lolp", "above": 0.1},
                 *_forecast_case("LOLPDRM", "lossOfLoadProbability", [0.0, 0.2], [0.0, 0.0], None),
                 "loss-of-load probability above 0.1 forecast for 2026-05-06: 0.2 in period"),
    "syswarn": Case(
        {"kind": "syswarn", "types": ["ELECTRICITY MARGIN NOTICE"]},
        lambda root, wh: drop(root, "SYSWARN", [
            {"dataset": "SYSWARN", "publishTime": z(T0 - dt.timedelta(minutes=10)),
             "warningText": "ELECTRICITY MARGIN NOTICE from 16:00 to 19:00 hrs on 06/05/2026, shortfall 671 MW"},
            {"dataset": "SYSWARN", "publishTime": z(T0 - dt.timedelta(minutes=9)),
             "warningText": "IT SYSTEMS OUTAGE: the BMRS is degraded"}]),
        lambda root, wh: T0 + dt.timedelta(minutes=51),  # older than the 60-minute window
        "system warning: ELECTRICITY MARGIN NOTICE from 16:00"),
    "outage": Case(
        {"kind": "outage", "min_mw": 100},
        lambda root, wh: drop(root, "REMIT", [remit("M-1", 1), remit("M-2", 1, kind="Planned"),
                                              remit("M-3", 1, unavailable=50.0, unit="T_SMALL-1")]),
        lambda root, wh: (drop(root, "REMIT", [remit("M-1", 2, status="Dismissed")]), T0)[1],
        "unplanned outage of T_BIGGEN-1 (CCGT): 500 MW unavailable"),
    "acceptance": Case(
        {"kind": "acceptance", "units": ["2__TEST001"]},
        lambda root, wh: drop(root, "BOALF", [
            boalf("2__TEST001", 77, T0 - dt.timedelta(minutes=5), T0 - dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=20)),
            boalf("2__OTHER01", 78, T0 - dt.timedelta(minutes=5), T0 - dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=20))]),
        lambda root, wh: T0 + dt.timedelta(minutes=21),
        "2__TEST001 accepted (acceptance 77): 40 to 40 MW"),
    "silence": Case({"kind": "silence", "datasets": ["FREQ"], "factor": 3}, _silence_fire, _silence_clear,
                    "no FREQ message for 10 minutes (limit 6 = 3 x 2 min)"),
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_each_rule_kind_fires_once_does_not_repeat_and_closes_when_it_clears(kind, tmp_path, wh, hook):
    case = CASES[kind]
    settings = settings_for(tmp_path, [{"name": f"{kind}-rule", **case.rule, "notify_close": True}], {"desk": hook.url})
    root = tmp_path / "drop"
    case.fire(root, wh)
    load(wh, root)

    first = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [e["state"] for e in first.opened] == ["open"], first.lines()
    assert case.headline in first.opened[0]["headline"]
    assert len(hook.posts) == 1 and hook.posts[0]["title"].startswith(f"ALERT {kind}-rule: ")

    again = check(wh, settings, as_of=T0, now=T0 + dt.timedelta(minutes=1), notifier=fast(settings))
    assert again.opened == [] and again.closed == [] and len(hook.posts) == 1

    as_of = case.clear(root, wh)
    load(wh, root)
    cleared = check(wh, settings, as_of=as_of, now=as_of, notifier=fast(settings))
    assert [e["rule"] for e in cleared.closed] == [f"{kind}-rule"], cleared.lines()
    assert cleared.opened == [] or kind == "outage"
    assert hook.posts[-1]["title"].startswith(f"CLEARED {kind}-rule: ")
    assert list_events(wh, only_open=True, now=as_of) == []
    stored = wh.query_rows(f"SELECT state, close_reason FROM {EVENTS.name}")
    assert [r["state"] for r in stored] == ["closed"]


def test_a_revised_outage_is_a_new_event_and_the_old_revision_closes(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "outages", "kind": "outage", "min_mw": 100}], {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "REMIT", [remit("M-1", 1)])
    load(wh, root)
    check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    drop(root, "REMIT", [remit("M-1", 2, unavailable=600.0, published=T0 + dt.timedelta(minutes=10))])
    load(wh, root)
    later = T0 + dt.timedelta(minutes=10)
    result = check(wh, settings, as_of=later, now=later, notifier=fast(settings))
    assert [e["subject"] for e in result.opened] == ["M-1 revision 2"]
    assert "unplanned outage (revision 2) of T_BIGGEN-1 (CCGT): 600 MW" in result.opened[0]["headline"]
    assert [(e["subject"], e["close_reason"]) for e in result.closed] == [("M-1 revision 1", "cleared")]
    assert [p["title"].split(":")[0] for p in hook.posts] == ["ALERT outages", "ALERT outages"]


def test_an_excursion_between_two_checks_fires_once_already_closed(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency", "min_seconds": 30}], {"desk": hook.url})
    root = tmp_path / "drop"
    # 45 s above 50.2 Hz ten minutes ago, then back in band; a 15 s blip below does not count
    freq(root, T0 - dt.timedelta(minutes=15), T0, lambda t: 50.31 if dt.timedelta(minutes=9, seconds=15) <= T0 - t
         <= dt.timedelta(minutes=10) else 49.75 if T0 - t == dt.timedelta(minutes=3) else 50.0)
    load(wh, root)
    result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [(e["state"], e["close_reason"]) for e in result.opened] == [("closed", "ended")]
    assert result.opened[0]["headline"] == "system frequency above 50.2 Hz: 50.310 Hz, outside 49.8-50.2 Hz for 45 s"
    assert len(hook.posts) == 1
    assert check(wh, settings, as_of=T0, now=T0, notifier=fast(settings)).opened == []


def test_a_price_jump_between_consecutive_periods_fires_once(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "jump", "kind": "price", "jump": 200}], {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([50.0, 60.0, 400.0, 390.0], T0))
    load(wh, root)
    result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert len(result.opened) == 1
    assert "system price rose £340.00/MWh in one period: £60.00 → £400.00/MWh" in result.opened[0]["headline"]
    assert check(wh, settings, as_of=T0, now=T0, notifier=fast(settings)).opened == []


def test_a_corrected_price_replaces_the_first_and_does_not_fire_twice(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000}], {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([50.0, 1200.0], T0))
    load(wh, root)
    check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    # Elexon re-issues the period after a settlement run: the same spike, a corrected value
    drop(root, "DISEBSP", price_rows([1250.0], T0, created=T0 + dt.timedelta(minutes=5)))
    load(wh, root)
    assert check(wh, settings, as_of=T0, now=T0, notifier=fast(settings)).opened == []
    assert len(hook.posts) == 1


# ---------------------------------------------------------------------------------------- health rules
def test_a_failed_scheduled_job_opens_an_event_that_its_next_good_run_closes(tmp_path, wh, hook):
    from ops.scheduler import JOB_RUNS

    settings = settings_for(tmp_path, [{"name": "jobs", "kind": "job_failed", "notify_close": True}], {"desk": hook.url})
    wh.ensure_tables([JOB_RUNS])

    def run(job, at, outcome, detail=""):
        wh.write({JOB_RUNS.name: JOB_RUNS.conform(pa.Table.from_pylist([
            {"job": job, "started_at": at, "finished_at": at, "seconds": 1.0, "outcome": outcome, "detail": detail}]))})

    run("refresh", T0 - dt.timedelta(hours=2), "ok")
    run("refresh", T0 - dt.timedelta(hours=1), "failed", "SheetsError: the spreadsheet was not found")
    run("p114_fetch", T0 - dt.timedelta(hours=1), "skipped", "no Portal key")
    first = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [e["headline"] for e in first.opened] == [
        "scheduled job refresh failed at 2026-05-06T11:00:00Z: SheetsError: the spreadsheet was not found"]
    run("refresh", T0 - dt.timedelta(minutes=30), "failed", "again")
    assert check(wh, settings, as_of=T0, now=T0, notifier=fast(settings)).opened == []  # one event per failing spell
    run("refresh", T0 + dt.timedelta(minutes=1), "ok")
    later = T0 + dt.timedelta(minutes=2)
    assert [e["subject"] for e in check(wh, settings, as_of=later, now=later, notifier=fast(settings)).closed] == ["refresh"]
    assert [p["title"].split(":")[0] for p in hook.posts] == ["ALERT jobs", "CLEARED jobs"]


def test_the_iris_secret_expiring_soon_opens_one_event(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "secret", "kind": "secret_expiry", "days": 30}], {"desk": hook.url},
                            extra="[iris]\nsecret_expires = 2026-05-16\n")
    first = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [e["headline"].split(":")[0] for e in first.opened] == [
        "the IRIS client secret expires on 2026-05-16 (in 10 days)"]
    assert check(wh, settings, as_of=T0 + dt.timedelta(days=1), notifier=fast(settings)).opened == []
    assert len(hook.posts) == 1


def test_an_overdue_p114_run_opens_an_event_that_loading_it_closes(tmp_path, wh, hook):
    from ingest.p114.load import load_file
    from tests.conftest import s0142_lines, write_lines

    day = dt.date(2026, 4, 1)  # SF is due 16 working days later: 27 April (Easter's bank holidays skipped)
    as_of = dt.datetime(2026, 4, 28, 12, tzinfo=dt.timezone.utc)
    settings = settings_for(tmp_path, [{"name": "p114", "kind": "p114_overdue", "days": 40, "runs": ["SF"]}],
                            {"desk": hook.url})
    lines, created = s0142_lines(day, "II")
    load_file(wh, write_lines(tmp_path, lines, day, "II", created))
    assert check(wh, settings, as_of=as_of - dt.timedelta(days=1), notifier=fast(settings)).opened == []
    first = check(wh, settings, as_of=as_of, now=as_of, notifier=fast(settings))
    assert [e["headline"] for e in first.opened] == ["P114 run SF is overdue for 2026-04-01"]
    lines, created = s0142_lines(day, "SF")
    load_file(wh, write_lines(tmp_path, lines, day, "SF", created))
    assert [e["subject"] for e in check(wh, settings, as_of=as_of, now=as_of, notifier=fast(settings)).closed] == [
        "SF overdue"]


# ---------------------------------------------------------------------------------------- delivery
def test_a_target_that_returns_500_is_retried_and_every_send_is_recorded(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000, "targets": ["desk"]}],
                            {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([1200.0], T0))
    load(wh, root)
    hook.fail_next = 2  # two 500s, then it takes the message
    result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [(s.ok, s.attempts) for s in result.sent] == [(True, 3)]
    assert hook.requests == 3 and len(hook.posts) == 1
    sends = wh.query_rows(f"SELECT target, message, attempts, ok, error FROM {DELIVERIES.name}")
    assert sends == [{"target": "desk", "message": "open", "attempts": 3, "ok": True, "error": None}]


def test_a_target_down_for_every_attempt_is_recorded_and_tried_again_by_a_later_check(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000}], {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([1200.0], T0))
    load(wh, root)
    hook.always_fail = True
    result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [(s.ok, s.attempts) for s in result.sent] == [(False, 3)]
    assert "500" in result.sent[0].error and hook.url not in result.sent[0].error
    soon = T0 + dt.timedelta(minutes=1)
    assert check(wh, settings, as_of=T0, now=soon, notifier=fast(settings)).sent == []  # backs off between checks
    hook.always_fail = False
    later = T0 + dt.timedelta(minutes=6)
    retried = check(wh, settings, as_of=T0, now=later, notifier=fast(settings))
    assert [(s.message, s.ok) for s in retried.sent] == [("retry", True)] and len(hook.posts) == 1
    rows = wh.query_rows(f"SELECT message, ok FROM {DELIVERIES.name} ORDER BY sent_at")
    assert rows == [{"message": "open", "ok": False}, {"message": "retry", "ok": True}]
    assert list_events(wh, now=later)[0]["failed"] == 1
    from ops.status import collect_status

    status = collect_status(wh, now=later)
    assert "alerts: 1 open event(s): python run.py alerts list --open" in status.notes
    assert "alert messages failed in the last 24 h: 1 to desk (python run.py alerts test TARGET)" in status.warnings


def test_a_target_that_is_down_costs_one_round_of_attempts_per_check_not_one_per_message(tmp_path, wh, hook):
    rules = [{"name": "spike", "kind": "price", "above": 1000}, {"name": "very-high", "kind": "price", "above": 1100},
             {"name": "still-high", "kind": "price", "above": 900}]
    settings = settings_for(tmp_path, rules, {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([1200.0], T0))
    load(wh, root)
    hook.always_fail = True
    result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert [(s.ok, s.attempts) for s in result.sent] == [(False, 3), (False, 0), (False, 0)]
    assert hook.requests == 3  # one round of attempts, not three
    assert result.sent[1].error.startswith("not sent: desk failed every attempt earlier in this check")
    hook.always_fail = False
    retried = check(wh, settings, as_of=T0, now=T0 + dt.timedelta(minutes=6), notifier=fast(settings))
    assert [(s.message, s.ok) for s in retried.sent] == [("retry", True)] * 3 and len(hook.posts) == 3


def test_a_reminder_goes_out_after_the_cool_down_only(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000, "remind_minutes": 60}],
                            {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([1200.0], T0))
    load(wh, root)
    check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert check(wh, settings, as_of=T0, now=T0 + dt.timedelta(minutes=30), notifier=fast(settings)).sent == []
    reminded = check(wh, settings, as_of=T0, now=T0 + dt.timedelta(minutes=61), notifier=fast(settings))
    assert [s.message for s in reminded.sent] == ["reminder"]
    assert hook.posts[-1]["title"].startswith("STILL OPEN spike: ")


def test_the_message_says_what_value_threshold_when_in_utc_and_london_and_links_the_dashboard(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}], {"desk": hook.url})
    root = tmp_path / "drop"
    _freq_fire(root, wh)
    load(wh, root)
    check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    post = hook.posts[0]
    assert post["type"] == "warning"
    assert post["title"] == "ALERT band: system frequency below 49.8 Hz: 49.710 Hz, outside 49.8-50.2 Hz for 60 s and continuing"
    assert post["message"].splitlines()[1:5] == [
        "Value: 49.71 Hz",
        "Threshold: frequency outside 49.8-50.2 Hz for at least 30 s",
        "Since: 2026-05-06 11:59:00 UTC (12:59:00 BST Europe/London)",
        "5 readings outside the band; last at 2026-05-06T12:00:00Z",
    ]
    assert "Dashboard: https://example.com/dash" in post["message"]


def test_email_goes_through_a_local_smtp_server(tmp_path, wh):
    box = Mailbox().start()
    try:
        settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}], {"mail": box.url})
        root = tmp_path / "drop"
        _freq_fire(root, wh)
        load(wh, root)
        result = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
        assert [s.ok for s in result.sent] == [True]
        assert len(box.messages) == 1
        assert box.messages[0]["Subject"].startswith("ALERT band: system frequency below 49.8 Hz")
        assert box.messages[0]["To"] == "desk@example.com"
        assert "Threshold: frequency outside 49.8-50.2 Hz" in box.messages[0].get_body().get_content()
    finally:
        box.stop()


def test_alerts_test_sends_and_records_a_test_message(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}], {"desk": hook.url})
    assert send_test(wh, settings, "desk").ok
    assert hook.posts[0]["title"] == "TEST alert target desk" and "Rules sending here: band" in hook.posts[0]["message"]
    assert wh.query_rows(f"SELECT message, ok FROM {DELIVERIES.name}") == [{"message": "test", "ok": True}]


def test_secrets_in_target_urls_come_from_the_environment_and_are_never_logged_or_stored(tmp_path, wh, hook, caplog):
    token = "s3cr3t-" + uuid.uuid4().hex
    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000}],
                            {"desk": f"json://user:${{HOOK_TOKEN}}@127.0.0.1:{hook.port}/hook"},
                            environ={"HOOK_TOKEN": token})
    assert settings.alerts.targets["desk"] == f"json://user:{token}@127.0.0.1:{hook.port}/hook"
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([1200.0], T0))
    load(wh, root)
    hook.always_fail = True
    caplog.set_level("DEBUG")
    check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    stored = json.dumps(wh.query_rows(f"SELECT * FROM {DELIVERIES.name}"), default=str)
    assert token not in stored and token not in caplog.text
    assert "alert to desk failed after 3 attempt(s)" in caplog.text


# ---------------------------------------------------------------------------------------- settings
@pytest.mark.parametrize("rule,targets,message", [
    ({"name": "x", "kind": "freq"}, {}, "kind must be one of price, margin"),
    ({"name": "x", "kind": "margin"}, {}, "alert rule 'x': kind margin needs below"),
    ({"name": "x", "kind": "frequency", "low": 50.2, "high": 49.8}, {}, "low (50.2) must be below high (49.8)"),
    ({"name": "x", "kind": "frequency", "lowest": 49}, {}, "unknown key(s) lowest for kind frequency"),
    ({"name": "x", "kind": "price"}, {}, "a price rule needs above, below or jump"),
    ({"name": "x", "kind": "price", "above": "1000"}, {}, "above must be a number, got '1000'"),
    ({"name": "x", "kind": "silence", "datasets": ["BOALF"]}, {}, "no known cadence for BOALF: set cadence_minutes"),
    ({"name": "x", "kind": "frequency", "targets": ["slack"]}, {"desk": "json://127.0.0.1/hook"},
     "target(s) slack are not in [alerts.targets] (defined: desk)"),
    ({"name": "x", "kind": "frequency"}, {"desk": "hooks.example.com/abc"}, "[alerts.targets] desk must be an apprise URL"),
    ({"name": "x", "kind": "frequency"}, {"desk": "json://${NOT_SET_HERE}@127.0.0.1/h"},
     "[alerts.targets] desk uses ${NOT_SET_HERE}, which is not set in the environment"),
    ({"name": "bad name!", "kind": "frequency"}, {}, "name must be 1-64 letters"),
])
def test_a_wrong_rule_or_target_is_a_clear_settings_error(tmp_path, rule, targets, message):
    with pytest.raises(SettingsError) as info:
        settings_for(tmp_path, [rule], targets)
    assert message in str(info.value)


def test_a_url_apprise_does_not_accept_stops_the_check_and_the_scheduler_before_anything_fires(tmp_path, wh):
    from alerts.rules import check_targets
    from ops.scheduler import Scheduler

    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}], {"desk": "msteams://abc/def"})
    with pytest.raises(SettingsError, match=r"\[alerts.targets\] desk: apprise does not accept this URL"):
        check_targets(settings.alerts)
    with pytest.raises(SettingsError, match="apprise does not accept"):
        check(wh, settings, as_of=T0)
    with pytest.raises(SettingsError, match="apprise does not accept"):
        Scheduler(settings, wh.url, connect_warehouse=lambda: wh).build()


# ---------------------------------------------------------------------------------------- where rules run
def recent_excursion(root: Path) -> dt.datetime:
    """Readings up to now: the last 60 s below the band (so a check at 'now' sees it ongoing)."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    freq(root, now - dt.timedelta(minutes=5), now - dt.timedelta(seconds=75), lambda t: 50.0)
    freq(root, now - dt.timedelta(seconds=60), now, lambda t: 49.6)
    return now


def test_the_file_drop_worker_checks_the_rules_after_each_commit(tmp_path, hook):
    from click.testing import CliRunner

    from run import cli

    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f'[alerts.targets]\ndesk = "{hook.url}"\n[[alerts.rules]]\nname = "band"\n'
                             'kind = "frequency"\n[[alerts.rules]]\nname = "jobs"\nkind = "job_failed"\n')
    recent_excursion(tmp_path / "drop")
    db = tmp_path / "w.duckdb"
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "--settings", str(settings_file), "ingest",
                                      "iris", "--from-dir", str(tmp_path / "drop"), "--once"])
    assert result.exit_code == 0, result.output
    assert [p["title"][:53] for p in hook.posts] == ["ALERT band: system frequency below 49.8 Hz: 49.600 Hz"]
    from warehouse.duckdb import DuckDBWarehouse

    with DuckDBWarehouse(db) as wh:  # the worker runs the data rules only; job_failed is the scheduler's
        assert wh.query_rows(f"SELECT rule, state FROM {EVENTS.name}") == [{"rule": "band", "state": "open"}]


def test_the_service_bus_worker_pokes_the_monitor_after_commit_without_waiting_for_it(tmp_path, wh, hook):
    """The after-commit hook only sets a flag: a slow webhook never holds up the next batch."""
    import threading
    import time

    from alerts.monitor import AlertMonitor

    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}], {"desk": hook.url})
    monitor = AlertMonitor(wh, settings).start()
    recent_excursion(tmp_path / "drop")
    slow = threading.Event()
    original = hook._server.RequestHandlerClass.do_POST

    def slow_post(handler):
        slow.wait(5)
        original(handler)

    hook._server.RequestHandlerClass.do_POST = slow_post
    started = time.perf_counter()
    replay_directory(IrisLoader(wh), tmp_path / "drop", on_batch=monitor.poke)
    assert time.perf_counter() - started < 2  # the load returned while the message is still on its way
    slow.set()
    monitor.stop()
    assert monitor.checks == 1 and len(hook.posts) == 1


def test_alerts_cli_check_list_and_test(tmp_path, hook):
    from click.testing import CliRunner

    from run import cli

    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(f'[alerts.targets]\ndesk = "{hook.url}"\n[[alerts.rules]]\nname = "spike"\n'
                             'kind = "price"\nabove = 1000\n')
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([50.0, 1200.0], T0))
    db = f"duckdb:///{tmp_path / 'w.duckdb'}"
    base = ["--warehouse", db, "--settings", str(settings_file)]
    runner = CliRunner()
    assert runner.invoke(cli, base + ["ingest", "iris", "--from-dir", str(root), "--once"]).exit_code == 0
    hook.posts.clear()  # the worker's own check ran at today's time: the 2026-05-06 spike is outside its window
    out = runner.invoke(cli, base + ["alerts", "check", "--as-of", "2026-05-06T12:00:00Z"])
    assert out.exit_code == 0, out.output
    assert "1 rule(s) checked at 2026-05-06 12:00:00 UTC: 1 event(s) opened, 0 closed, 1 message(s) delivered" in out.output
    assert "OPEN   spike: system price above £1000/MWh: £1,200.00/MWh in 1 period(s)" in out.output
    assert "sent open of spike to desk" in out.output
    again = runner.invoke(cli, base + ["alerts", "check", "--as-of", "2026-05-06T12:00:00Z"])
    assert "0 event(s) opened" in again.output and len(hook.posts) == 1
    listed = runner.invoke(cli, base + ["alerts", "list", "--open", "--format", "json"])
    rows = json.loads(listed.output)
    assert [(r["rule"], r["state"], r["delivered"], r["failed"]) for r in rows] == [("spike", "open", 1, 0)]
    tested = runner.invoke(cli, base + ["alerts", "test", "desk"])
    assert tested.exit_code == 0 and "test message delivered to desk" in tested.output
    hook.always_fail = True
    failed = runner.invoke(cli, base + ["alerts", "test", "desk"])
    assert failed.exit_code == 1 and "error: test message to desk failed after 3 attempt(s)" in failed.output
    unknown = runner.invoke(cli, base + ["alerts", "test", "slack"])
    assert "no target 'slack' in [alerts.targets] (defined: desk)" in unknown.output


def test_the_scheduler_checks_every_rule_on_its_tick(tmp_path, wh, hook):
    from ops.scheduler import JOB_RUNS, Scheduler

    settings = settings_for(tmp_path, [{"name": "jobs", "kind": "job_failed"}], {"desk": hook.url},
                            extra="[schedule]\niris_worker = false\nrefresh_minutes = 0\np114_fetch_at = \"off\"\n"
                                  "gap_fill_at = \"off\"\n")
    wh.ensure_tables([JOB_RUNS])
    now = dt.datetime.now(dt.timezone.utc)
    wh.write({JOB_RUNS.name: JOB_RUNS.conform(pa.Table.from_pylist([
        {"job": "gap_fill", "started_at": now - dt.timedelta(minutes=5), "outcome": "failed", "detail": "boom"}]))})
    scheduler = Scheduler(settings, wh.url, connect_warehouse=lambda: wh).build()
    assert "alerts" in scheduler.jobs and any(line.startswith("alerts: every 5 minutes") for line in scheduler.describe())
    run = scheduler.run_job("alerts")
    assert run.outcome == "ok", run.detail
    assert [p["title"] for p in hook.posts] == ["ALERT jobs: scheduled job gap_fill failed at "
                                                f"{now - dt.timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}: boom"]


def test_the_dashboard_alerts_tab_shows_open_events_and_the_last_7_days(tmp_path, wh, hook):
    import openpyxl

    from reporting.refresh import refresh

    settings = settings_for(tmp_path, [{"name": "spike", "kind": "price", "above": 1000},
                                       {"name": "band", "kind": "frequency"}], {"desk": hook.url},
                            extra=f'[output]\ndir = "{tmp_path / "out"}"\n')
    root = tmp_path / "drop"
    drop(root, "DISEBSP", price_rows([50.0, 1200.0], T0))
    now = recent_excursion(root)
    load(wh, root)
    check(wh, settings, as_of=T0, now=now - dt.timedelta(days=1), notifier=fast(settings))  # opened yesterday
    check(wh, settings, kinds={"frequency"}, notifier=fast(settings))
    result = refresh(wh, settings, "main", target="local")
    assert not [w for w in result.warnings if "alert" in w.lower()]
    sheet = openpyxl.load_workbook(tmp_path / "out" / "main.xlsx")["Alerts"]
    text = [[c for c in row if c is not None] for row in sheet.iter_rows(values_only=True)]
    flat = [str(c) for row in text for c in row]
    assert flat[0] == "Alerts" and any(c.startswith("Events of the alert rules") for c in flat)
    open_rows = [row for row in text if row and row[0] in ("band", "spike")]
    assert sorted(r[0] for r in open_rows) == ["band", "spike"]
    assert any("system frequency below 49.8 Hz: 49.600 Hz" in c for c in flat)
    assert any("system price above £1000/MWh: £1,200.00/MWh" in c for c in flat)


def test_the_examples_in_settings_example_toml_are_valid_once_uncommented(tmp_path):
    text = (Path(__file__).parent.parent / "settings.example.toml").read_text()
    alerts = text[text.index("[alerts.targets]"):]
    uncommented = [line[2:] for line in alerts.splitlines()
                   if line.startswith("# ") and (line.startswith(("# [[", "# name", "# kind")) or " = " in line[:30])
                   and not line.startswith(("# name = any", "#   "))]
    body = "[alerts.targets]\n" + "\n".join(l for l in uncommented if "://" in l) + "\n" + "\n".join(
        l for l in uncommented if "://" not in l)
    (tmp_path / "s.toml").write_text(body)
    settings = load_settings(tmp_path / "s.toml", environ={
        "SLACK_WEBHOOK": "T0000/B0000/XXXXXXXX", "TEAMS_WORKFLOW_HOST": "prod.westeurope.logic.azure.com",
        "TEAMS_WORKFLOW": "abc123", "TEAMS_SIGNATURE": "sig456", "SMTP_PASSWORD": "pw-123456"})
    assert [r.name for r in settings.alerts.rules] == ["frequency-band", "price-spike", "iris-silent"]
    assert sorted(settings.alerts.targets) == ["desk", "mail", "ops", "trading"]


# ---------------------------------------------------------------------------------------- both backends
BOTH = ("frequency", "price", "margin", "lolp", "syswarn", "outage", "acceptance", "silence")


def run_kinds_through(wh, tmp_path, hook) -> tuple[list[str], list[str], list[dict]]:
    rules = [{"name": f"{kind}-rule", **CASES[kind].rule, "notify_close": True} for kind in BOTH]
    settings = settings_for(tmp_path, rules, {"desk": hook.url})
    root = tmp_path / "drop"
    for kind in BOTH:
        CASES[kind].fire(root, wh)
    load(wh, root)
    first = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    again = check(wh, settings, as_of=T0, now=T0, notifier=fast(settings))
    assert again.opened == [] and again.closed == []
    later = T0 + dt.timedelta(minutes=61)  # frequency and warning windows passed, the acceptance delivered
    closed = check(wh, settings, as_of=later, now=later, notifier=fast(settings))
    return (sorted(e["headline"] for e in first.opened), sorted(e["rule"] for e in closed.closed),
            list_events(wh, now=later))


@pytest.mark.bigquery
def test_alert_rules_open_the_same_events_and_close_them_alike_on_bigquery_and_duckdb(tmp_path, wh, bq):
    hook = Webhook().start()
    try:
        duck = run_kinds_through(wh, tmp_path / "duck", hook)
        posts = len(hook.posts)
        big = run_kinds_through(bq, tmp_path / "bq", hook)
    finally:
        hook.stop()
    assert len(duck[0]) == len(BOTH) and big[0] == duck[0]
    assert big[1] == duck[1] and "frequency-rule" in big[1] and "acceptance-rule" in big[1]
    assert len(hook.posts) == 2 * posts
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("opened_at", "closed_at")} for r in rows]  # noqa: E731
    assert strip(big[2]) == strip(duck[2])


def test_replaying_an_earlier_time_never_closes_an_event_seen_later(tmp_path, wh, hook):
    settings = settings_for(tmp_path, [{"name": "outages", "kind": "outage", "min_mw": 100}], {"desk": hook.url})
    root = tmp_path / "drop"
    drop(root, "REMIT", [remit("M-1", 1)])
    load(wh, root)
    assert len(check(wh, settings, as_of=T0, now=T0, notifier=fast(settings)).opened) == 1
    earlier = T0 - dt.timedelta(hours=2)  # before the outage was published: the check cannot see it
    assert check(wh, settings, as_of=earlier, now=T0, notifier=fast(settings)).closed == []
    assert [e["state"] for e in list_events(wh, now=T0)] == ["open"]


def test_a_user_adds_a_rule_and_a_webhook_runs_the_scheduler_and_gets_one_message_per_event(tmp_path, hook):
    """The issue's "done when": run.py schedule, IRIS over Service Bus (the local AMQP peer), a JSON webhook."""
    import signal
    import subprocess
    import sys
    import time

    from tests.peers.servicebus import FakeServiceBus
    from warehouse.duckdb import DuckDBWarehouse

    root = Path(__file__).resolve().parent.parent
    bus = FakeServiceBus(lock_duration_s=5).start()
    db = tmp_path / "w.duckdb"
    settings_file = tmp_path / "settings.toml"
    settings_file.write_text(
        '[schedule]\niris_worker = true\nrefresh_minutes = 0\np114_fetch_at = "off"\ngap_fill_at = "off"\n'
        f'[alerts]\nmin_interval_seconds = 0.2\ncheck_minutes = 0.1\n[alerts.targets]\ndesk = "{hook.url}"\n'
        '[[alerts.rules]]\nname = "frequency-band"\nkind = "frequency"\nlow = 49.8\nhigh = 50.2\nmin_seconds = 30\n'
        'targets = ["desk"]\n')
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    batches = [[{"dataset": "FREQ", "measurementTime": z(now - dt.timedelta(seconds=15 * k)),
                 "frequency": 49.62 if k <= 4 else 50.0} for k in range(i * 8, i * 8 + 8)] for i in range(3)]
    env = {**os.environ, "PYTHONPATH": str(root), "IRIS_CONNECTION_STRING": bus.connection_string,
           "IRIS_QUEUE_NAME": "iris.alerts-test"}
    cmd = [sys.executable, str(root / "run.py"), "--warehouse", f"duckdb:///{db}", "--settings", str(settings_file),
           "schedule"]
    proc = None
    try:
        for i, rows in enumerate(batches):  # three messages, as Elexon sends FREQ every two minutes
            bus.send("iris.alerts-test", json.dumps(rows), message_id=f"freq-{i}", subject="FREQ")
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 60
        while not hook.posts or len(bus.snapshot("iris.alerts-test")["completed"]) < 3:
            assert time.time() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() is not None else ""
            time.sleep(0.2)
        time.sleep(7)  # more worker pokes and a scheduler tick (every 6 s): still one message
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc is not None and proc.poll() is None:  # a failed wait above must not leave a scheduler running
            proc.kill()
            proc.wait()
        bus.stop()
    assert proc.returncode == 0, err
    assert len(hook.posts) == 1, hook.posts
    assert hook.posts[0]["title"].startswith("ALERT frequency-band: system frequency below 49.8 Hz: 49.620 Hz")
    with DuckDBWarehouse(db) as wh:
        assert wh.query_rows(f"SELECT rule, state FROM {EVENTS.name}") == [{"rule": "frequency-band", "state": "open"}]
        assert wh.scalar(f"SELECT COUNT(*) FROM {DELIVERIES.name} WHERE ok") == 1
        assert wh.scalar("SELECT COUNT(*) FROM ops_job_runs WHERE job = 'alerts' AND outcome = 'ok'") >= 1


def test_with_the_worker_as_its_own_service_the_scheduler_leaves_the_market_rules_to_it(tmp_path, wh, hook):
    from ops.scheduler import Scheduler

    settings = settings_for(tmp_path, [{"name": "band", "kind": "frequency"}, {"name": "jobs", "kind": "job_failed"}],
                            {"desk": hook.url},
                            extra="[schedule]\niris_worker = false\nrefresh_minutes = 0\np114_fetch_at = \"off\"\n"
                                  "gap_fill_at = \"off\"\n")
    recent_excursion(tmp_path / "drop")
    load(wh, tmp_path / "drop")
    run = Scheduler(settings, wh.url, connect_warehouse=lambda: wh).build().run_job("alerts")
    assert run.outcome == "ok" and run.detail.startswith("1 rule(s) checked") and hook.posts == []
