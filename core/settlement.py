"""GB settlement calendar rules: periods per day and settlement-run precedence.

Settlement periods are half hours of *local* (Europe/London) time: period 1 starts at local
midnight, so a normal day has 48 periods, the spring clock-change day 46 and the autumn one 50.
Every module that needs these rules imports them from here.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")
UTC = dt.timezone.utc

#: Settlement runs from least to most authoritative; a later run supersedes an earlier one.
RUN_PRECEDENCE: tuple[str, ...] = ("II", "SF", "R1", "R2", "R3", "RF", "DF")
RUN_RANK: dict[str, int] = {run: rank for rank, run in enumerate(RUN_PRECEDENCE, start=1)}

#: Calendar-day window after the settlement date in which each run is normally published
#: (generous bounds around Elexon's working-day timetable: II ~5 WD, SF ~16, R1 ~35, R2 ~80,
#: R3 ~150, RF ~14 months, DF ~28 months and ad hoc). Used to decide which Portal publication
#: dates to list for a settlement-date range.
RUN_PUBLICATION_WINDOW_DAYS: dict[str, tuple[int, int]] = {
    "II": (1, 21),
    "SF": (10, 45),
    "R1": (30, 90),
    "R2": (85, 160),
    "R3": (170, 260),
    "RF": (360, 500),
    "DF": (360, 1200),
}


def local_midnight_utc(day: dt.date) -> dt.datetime:
    """The UTC instant of local (Europe/London) midnight starting ``day``."""
    return dt.datetime.combine(day, dt.time(0), tzinfo=LONDON).astimezone(UTC)


def periods_in_day(day: dt.date) -> int:
    """Number of settlement periods on ``day``: 46, 48 or 50."""
    seconds = (local_midnight_utc(day + dt.timedelta(days=1)) - local_midnight_utc(day)).total_seconds()
    return int(seconds // 1800)


def period_start_utc(day: dt.date, period: int) -> dt.datetime:
    """UTC start of settlement ``period`` (1-based) on ``day``: local midnight + 30 min × (period − 1)."""
    if not 1 <= period <= periods_in_day(day):
        raise ValueError(f"settlement period {period} does not exist on {day} ({periods_in_day(day)} periods)")
    return local_midnight_utc(day) + dt.timedelta(minutes=30 * (period - 1))


def iso_utc(t: dt.datetime) -> str:
    """An instant as RFC 3339 in UTC to the second: ``2026-05-06T12:00:00Z``."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_run(run: str) -> str:
    """Validate a settlement run code (II, SF, R1, R2, R3, RF, DF) and return it upper-cased."""
    code = run.strip().upper()
    if code not in RUN_RANK:
        raise ValueError(f"unknown settlement run {run!r}; expected one of {', '.join(RUN_PRECEDENCE)}")
    return code
