"""When each settlement run is due: working days after the settlement date (England & Wales).

Settlement runs happen on working days only. Offsets observed in real 2026 files (reference
S0142.md section 2): II 5, SF 16, R1 35, R2 80, R3 150 working days; RF about 14 months and DF
about 28 months. DF (post-final) runs only when volumes are still disputed, so it has no default
due date. They are defaults, configurable per run; MHHS will change the timetable.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

import holidays

DEFAULT_DUE_WORKING_DAYS: dict[str, int] = {"II": 5, "SF": 16, "R1": 35, "R2": 80, "R3": 150, "RF": 290}


@lru_cache(maxsize=64)
def _bank_holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.UK(subdiv="ENG", years=year))


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in _bank_holidays(day.year)


def add_working_days(day: dt.date, count: int) -> dt.date:
    """The ``count``-th working day after ``day``."""
    current = day
    while count > 0:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            count -= 1
    return current


def due_date(settlement_date: dt.date, run: str, offsets: dict[str, int] | None = None) -> dt.date:
    return add_working_days(settlement_date, (offsets or DEFAULT_DUE_WORKING_DAYS)[run])
