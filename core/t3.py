"""Section T3 accepted volumes and cash, minute by minute in plain Python.

The reference the SQL recompute (``sql/reconciliation/_t3.sql.j2``) is tested against, and what
the demo uses to give its units Elexon-shaped indicative (BOAV/EBOCF) and settled (BO4) figures.
It is written for clarity, not speed: the report never runs it. The steps, and which of them are
inferred, are in ``../shared/reference/INDICATIVE-AND-ALERTS.md`` 1.2 and the SQL template.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

MINUTE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class Segment:
    """A straight-line piece of a profile: PN, one BOALF row, or one BOD pair's size."""

    time_from: dt.datetime
    time_to: dt.datetime
    level_from: float
    level_to: float

    def at(self, t: dt.datetime) -> float | None:
        """The interpolated level at ``t`` when the segment covers it (time_from <= t < time_to)."""
        if not self.time_from <= t < self.time_to:
            return None
        share = (t - self.time_from) / (self.time_to - self.time_from)
        return self.level_from + (self.level_to - self.level_from) * share


@dataclass(frozen=True)
class Pair:
    pair_id: int
    size: Segment  # MW, + for offer pairs, - for bid pairs
    offer: float
    bid: float


def _level(segments: list[Segment], t: dt.datetime) -> float | None:
    return next((v for v in (s.at(t) for s in segments) if v is not None), None)


def accepted(periods: list[tuple[dt.date, int, dt.datetime]], fpn: list[Segment],
             acceptances: dict[int, list[Segment]], pairs: list[Pair]) -> dict[tuple, list[float]]:
    """One unit's T3 figures: {(date, period, acceptance, pair): [offer MWh, bid MWh, offer £, bid £]}.

    ``periods``: (settlement date, period, start in UTC); ``acceptances``: acceptance number → its
    BOALF segments (RR-flagged ones already left out); numbers give the order.
    """
    out: dict[tuple, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for day, period, start in periods:
        for minute in range(30):
            t = start + minute * MINUTE
            base = _level(fpn, t) or 0.0
            bands = _bands(base, pairs, t)
            before = base
            for number in sorted(acceptances):
                level = _level(acceptances[number], t)
                if level is None:
                    continue
                low, high = min(before, level), max(before, level)
                sign = 1 if level > before else -1
                for pair_id, lo, hi, offer, bid in bands:
                    q = sign * max(0.0, min(high, hi) - max(low, lo))
                    if q:
                        cell = out[(day, period, number, pair_id)]
                        if q > 0:
                            cell[0] += q / 60
                            cell[2] += q * offer / 60
                        else:
                            cell[1] += q / 60
                            cell[3] += q * bid / 60
                before = level
    return dict(out)


def _bands(base: float, pairs: list[Pair], t: dt.datetime) -> list[tuple[int, float, float, float, float]]:
    """(pair, low MW, high MW, offer £, bid £) at ``t``: offer pairs stacked up from FPN, bid pairs down."""
    bands = []
    for direction in (1, -1):
        edge = base
        for pair in sorted((p for p in pairs if p.pair_id * direction > 0), key=lambda p: abs(p.pair_id)):
            size = pair.size.at(t)
            if size is None:
                continue
            bands.append((pair.pair_id, min(edge, edge + size), max(edge, edge + size), pair.offer, pair.bid))
            edge += size
    return bands
