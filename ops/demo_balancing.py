"""The demo's balancing day: one story told by IRIS, Elexon's indicative data and the S0142 files.

For the batteries, VLP, transmission and embedded units of the demo, on the IRIS day: PN, BOD (pairs
-2..+2) and BOALF acceptances (ramps, acceptances spanning periods, later ones superseding earlier
ones), Elexon's BOAV/EBOCF made from them by Section T3 (``core.t3``), and the BO4 records each
settlement run holds. So the reconciliation tab shows a mostly reconciled picture, with a few
differences staged, each of a documented reason:

* ``acceptance_excluded``: T_OCTO-4's last acceptance is in BOALF but neither Elexon's indicative data
  nor settlement (BO3, BO4) counts it;
* ``reissued``: V__BVLPO001's first accepted period is corrected in the SF run (x 0.8) and EBOCF is
  re-issued with it; the II run agrees with the recompute;
* ``no_acceptance_data``: V__KVLPO009 is paid in settlement for an acceptance IRIS never delivered;
* ``non_delivery``: the S0142 generator's non-delivery charges on accepted periods.

BOAV and EBOCF rows carry the side they were asked for, as ``ingest api`` stores them.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field

from core.settlement import period_start_utc, periods_in_day
from core.t3 import Pair, Segment, accepted
from ingest.iris.generate import IrisMessage, _z

KINDS = ("battery", "vlp", "transmission", "embedded")
EXCLUDED_UNIT, REISSUED_UNIT, UNSEEN_UNIT = "T_OCTO-4", "V__BVLPO001", "V__KVLPO009"
REISSUE_FACTOR = 0.8
#: (unit, period) -> BO4 pairs (pair, bid price, offer price, bid MWh, offer MWh), as the S0142 generator takes them
Bo4 = dict[tuple[str, int], list[tuple[int, float, float, float, float]]]


@dataclass
class BalancingDay:
    day: dt.date
    messages: list[IrisMessage] = field(default_factory=list)
    bo4_by_run: dict[str, Bo4] = field(default_factory=dict)
    bo3: dict[tuple[str, int], list[tuple[int, dt.datetime]]] = field(default_factory=dict)  # settled acceptances


def _published(day: dt.date) -> dt.datetime:
    """When Elexon's indicative data for ``day`` is first issued in the demo: 03:00 UTC the next day."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(3), tzinfo=dt.timezone.utc)


def _ng(unit: str) -> str:
    return unit.split("_")[-1]


def balancing_day(units: list, day: dt.date, runs: tuple[str, ...], seed: int = 42) -> BalancingDay:
    """The story for ``units`` (the demo's generator units) on settlement date ``day``."""
    rng = random.Random(seed)
    n = periods_in_day(day)
    starts = {p: period_start_utc(day, p) for p in range(1, n + 1)}
    periods = [(day, p, starts[p]) for p in starts]
    pn_rows, bod_rows, boalf_rows, boav_rows, ebocf_rows = [], [], [], [], []
    settled: Bo4 = {}
    bo3: dict[tuple[str, int], list[tuple[int, dt.datetime]]] = {}
    accepted_at: dict[int, dt.datetime] = {}
    reissued: tuple[str, int] | None = None
    number = 210_000
    for u in units:
        if u.kind not in KINDS:
            continue
        mw = round(2 * u.capacity_mwh, 1)  # capacity_mwh is per half hour
        base = round(0.6 * mw) if u.kind in ("transmission", "embedded") else 0
        fpn, pairs = [], []
        prices: dict[tuple[int, int], tuple[float, float]] = {}
        for p, start in starts.items():
            end = start + dt.timedelta(minutes=30)
            level = max(0, base + rng.randint(-1, 1) * round(0.05 * mw))
            fpn.append(Segment(start, end, level, level))
            pn_rows.append(_physical("PN", u.bm_unit_id, day, p, start, end, level, level))
            for pair, share, offer, bid in ((-2, 0.4, 25.0, 5.0), (-1, 0.3, 60.0, 45.0), (1, 0.3, 115.0, 95.0),
                                            (2, 0.4, 180.0, 150.0)):
                size = round(share * mw) * (1 if pair > 0 else -1)
                drift = rng.uniform(-8, 8)
                o, b = round(offer + drift, 2), round(bid + drift, 2)
                prices[(p, pair)] = (o, b)
                pairs.append(Pair(pair, Segment(start, end, size, size), o, b))
                row = _physical("BOD", u.bm_unit_id, day, p, start, end, size, size)
                bod_rows.append({**row, "pairId": pair, "offer": o, "bid": b})
        acceptances: dict[int, list[Segment]] = {}
        unseen = u.bm_unit_id == UNSEEN_UNIT
        for k in range(rng.randint(2, 4)):
            number += rng.randint(1, 40)
            at = starts[rng.randint(14, n - 6)] + dt.timedelta(minutes=rng.choice((0, 5, 10, 20)))
            direction = rng.choice((1, -1))
            target = base + direction * round(rng.uniform(0.2, 0.6) * mw)
            target = max(target, -round(0.7 * mw)) if u.kind in ("battery", "vlp") else max(0, target)
            ramp, hold = rng.choice((2, 5, 10)), rng.choice((15, 30, 45, 60))
            up, down, end = (at + dt.timedelta(minutes=m) for m in (ramp, ramp + hold, 2 * ramp + hold))
            segments = [Segment(at, up, base, target), Segment(up, down, target, target), Segment(down, end, target, base)]
            acceptances[number] = segments
            accepted_at[number] = (at - dt.timedelta(minutes=3)).replace(tzinfo=None)
            if not unseen:
                boalf_rows += [_boalf(u.bm_unit_id, day, number, at - dt.timedelta(minutes=3), s) for s in segments]
        counted = dict(acceptances)
        if u.bm_unit_id == EXCLUDED_UNIT:
            counted.pop(max(counted))
        figures = accepted(periods, fpn, counted, pairs)
        per_period: dict[int, dict[int, list[float]]] = {}
        per_acceptance: dict[tuple[int, int, str], dict[int, float]] = {}
        for (_, p, number_, pair), cell in figures.items():
            total = per_period.setdefault(p, {}).setdefault(pair, [0.0, 0.0])
            total[0] += cell[1]
            total[1] += cell[0]
            for side, volume in (("offer", cell[0]), ("bid", cell[1])):
                if abs(volume) > 1e-9:
                    per_acceptance.setdefault((p, number_, side), {})[pair] = volume
        for p, number_ in sorted({(p, n) for p, n, _ in per_acceptance}):
            bo3.setdefault((u.bm_unit_id, p), []).append((number_, accepted_at[number_]))
        if not unseen:
            boav_rows += [_boav(u.bm_unit_id, day, p, starts[p], side, number_, volumes)
                          for (p, number_, side), volumes in sorted(per_acceptance.items())]
        for p, by_pair in sorted(per_period.items()):
            settled[(u.bm_unit_id, p)] = [
                (pair, prices[(p, pair)][1], prices[(p, pair)][0], round(bid, 3), round(offer, 3))
                for pair, (bid, offer) in sorted(by_pair.items())]
            if u.bm_unit_id == REISSUED_UNIT and reissued is None:
                reissued = (u.bm_unit_id, p)
            if not unseen:
                ebocf_rows += _ebocf(u.bm_unit_id, day, p, starts[p], settled[(u.bm_unit_id, p)])
    bo4_by_run = {}
    for i, run in enumerate(runs):
        bo4 = dict(settled)
        if reissued and i > 0:  # a later run corrects one period
            bo4[reissued] = [(pair, bid_price, offer_price, round(b * REISSUE_FACTOR, 3), round(o * REISSUE_FACTOR, 3))
                             for pair, bid_price, offer_price, b, o in settled[reissued]]
        bo4_by_run[run] = bo4
    published = _published(day)
    story = BalancingDay(day, bo4_by_run=bo4_by_run, bo3=bo3)
    for code, rows in (("PN", pn_rows), ("BOD", bod_rows), ("BOALF", boalf_rows)):
        for i in range(0, len(rows), 500):
            story.messages.append(IrisMessage(f"{code}_{day:%Y%m%d}_demo_{i // 500}.json", code, rows[i:i + 500],
                                              published - dt.timedelta(hours=2)))
    story.messages.append(IrisMessage(f"BOAV_{published:%Y%m%d%H%M}_demo.json", "BOAV", boav_rows, published))
    story.messages.append(IrisMessage(f"EBOCF_{published:%Y%m%d%H%M}_demo.json", "EBOCF", ebocf_rows, published))
    if reissued and len(runs) > 1:
        later = published + dt.timedelta(days=5)
        rows = _ebocf(reissued[0], day, reissued[1], starts[reissued[1]], bo4_by_run[runs[-1]][reissued], created=later)
        story.messages.append(IrisMessage(f"EBOCF_{later:%Y%m%d%H%M}_demo.json", "EBOCF", rows, later))
    return story


def _physical(code: str, unit: str, day: dt.date, period: int, start: dt.datetime, end: dt.datetime,
              level_from: int, level_to: int) -> dict:
    return {"dataset": code, "settlementDate": day.isoformat(), "settlementPeriod": period, "timeFrom": _z(start),
            "timeTo": _z(end), "levelFrom": level_from, "levelTo": level_to, "nationalGridBmUnit": _ng(unit),
            "bmUnit": unit}


def _boalf(unit: str, day: dt.date, number: int, accepted_at: dt.datetime, s: Segment) -> dict:
    return {"dataset": "BOALF", "settlementDate": day.isoformat(), "settlementPeriodFrom": 1, "settlementPeriodTo": 1,
            "timeFrom": _z(s.time_from), "timeTo": _z(s.time_to), "levelFrom": int(s.level_from),
            "levelTo": int(s.level_to), "acceptanceNumber": number, "acceptanceTime": _z(accepted_at),
            "deemedBoFlag": False, "soFlag": True, "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False,
            "nationalGridBmUnit": _ng(unit), "bmUnit": unit}


def _key(pair: int) -> str:
    return f"{'positive' if pair > 0 else 'negative'}{abs(pair)}"


def _settlement_row(code: str, unit: str, day: dt.date, period: int, start: dt.datetime, side: str,
                    created: dt.datetime) -> dict:
    return {"dataset": code, "createdDateTime": _z(created), "settlementDate": day.isoformat(),
            "settlementPeriod": period, "startTime": _z(start), "bmUnit": unit, "bmUnitType": unit[0],
            "leadPartyName": None, "nationalGridBmUnit": _ng(unit), "side": side}


def _boav(unit, day, period, start, side, acceptance, volumes: dict[int, float]) -> dict:
    return {**_settlement_row("BOAV", unit, day, period, start, side, _published(day)), "acceptanceId": acceptance,
            "acceptanceDuration": "L", "totalVolumeAccepted": round(sum(volumes.values()), 6),
            "pairVolumes": {_key(pair): round(v, 6) for pair, v in sorted(volumes.items())}}


def _ebocf(unit, day, period, start, pairs, created: dt.datetime | None = None) -> list[dict]:
    created = created or _published(day)
    rows = []
    for side, volume_at, price_at in (("offer", 4, 2), ("bid", 3, 1)):
        cash = {_key(p[0]): round(p[volume_at] * p[price_at], 2) for p in pairs if p[volume_at]}
        if cash:
            rows.append({**_settlement_row("EBOCF", unit, day, period, start, side, created),
                         "bidOfferPairCashflows": cash, "totalCashflow": round(sum(cash.values()), 2)})
    return rows
