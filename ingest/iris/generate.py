"""Realistic IRIS messages (tests, ``run.py demo``, benchmarks).

Rows have the documented shapes of each dataset (``../shared/reference/IRIS.md`` 2.5-2.6, with
IRIS-style millisecond ``…Z`` timestamps); message ids follow Elexon's
``<DATASET>_<YYYYMMDDHHMM>_<sequence>.json``. The mix follows what the user's client saw (MILS
and MELS most frequent, then BOALF, PN, FREQ every 2 minutes with 15-second readings, FUELINST
every 5 minutes with one row per fuel type, the indicated forecasts half-hourly, REMIT and
DISBSAD now and then).
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from core.settlement import LONDON, UTC, local_midnight_utc

FUEL_TYPES = ("BIOMASS", "CCGT", "COAL", "INTELEC", "INTEW", "INTFR", "INTGRNL", "INTIFA2", "INTIRL", "INTNED",
              "INTNEM", "INTNSL", "INTVKL", "NPSHYD", "NUCLEAR", "OCGT", "OIL", "OTHER", "PS", "WIND")
BOUNDARIES = ("N", "B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B9", "B10", "B11", "B12", "B13", "B14", "B15",
              "B16", "B17")
# event-driven datasets: share of those messages (MILS/MELS dominate the live stream)
MIX = {"MILS": 0.36, "MELS": 0.22, "BOALF": 0.17, "PN": 0.12, "BOD": 0.08, "DISBSAD": 0.03, "REMIT": 0.02}
# scheduled datasets: one message per interval
SCHEDULE = {"FREQ": 120, "FUELINST": 300, "INDGEN": 1800, "INDDEM": 1800, "IMBALNGC": 1800, "MELNGC": 1800,
            "MID": 1800}


@dataclass
class IrisMessage:
    message_id: str
    subject: str
    records: list[dict]
    enqueued_at: dt.datetime

    def body(self, double_encoded: bool = True) -> bytes:
        text = json.dumps(self.records, separators=(",", ":"))
        return (json.dumps(text) if double_encoded else text).encode()


def _z(t: dt.datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _sp(t: dt.datetime) -> tuple[str, int]:
    """Settlement date and period (Europe/London) of a UTC instant."""
    local_day = t.astimezone(LONDON).date()
    period = int((t - local_midnight_utc(local_day)).total_seconds() // 1800) + 1
    return local_day.isoformat(), period


class IrisGenerator:
    """Deterministic stream of IRIS messages starting at ``start`` (UTC)."""

    def __init__(self, start: dt.datetime, seed: int = 0, units: int = 40,
                 bm_units: list[tuple[str, str]] | None = None, without: tuple[str, ...] = ()):
        """``bm_units``: (Elexon id, National Grid id) pairs to use (e.g. the demo's reference data);
        default ``units`` made-up ones. ``without``: event-driven datasets not to make up (the demo
        brings its own, coherent, balancing data)."""
        self.mix = {code: share for code, share in MIX.items() if code not in without}
        self.rng = random.Random(seed)
        self.now = start.astimezone(UTC)
        self.seq = itertools.count(10_000)
        self.units = list(bm_units) if bm_units else [(f"T_GEN-{i}", f"GEN-{i}") for i in range(units // 2)] + [
            (f"2__{'ABCDEFGH'[i % 8]}FLEX{i:03d}", f"FLEX{i:03d}") for i in range(units - units // 2)]
        self.wind_mw = self.rng.uniform(6_000, 12_000)
        self.hz = 50.0
        self.acceptance = itertools.count(200_000)
        self.notification = itertools.count(119_000_000)
        self.freq_at = self.now.replace(second=0, microsecond=0)
        self.periods: dict[tuple[str, str], dt.datetime] = {}
        self.disbsad_ids: dict[tuple[str, int], int] = {}

    def _id(self, dataset: str, t: dt.datetime) -> str:
        return f"{dataset}_{t.astimezone(UTC):%Y%m%d%H%M}_{next(self.seq)}.json"

    def messages(self, count: int, spacing_s: float = 0.4) -> Iterator[IrisMessage]:
        """``count`` messages about ``spacing_s`` seconds apart: scheduled datasets on their cadence
        (FREQ every 2 minutes, FUELINST every 5, forecasts and MID every 30), the rest event-driven."""
        codes, weights = zip(*self.mix.items())
        due = {code: self.now for code in SCHEDULE}
        produced = 0
        while produced < count:
            self.now += dt.timedelta(seconds=spacing_s)
            for code, every in SCHEDULE.items():
                if self.now >= due[code] and produced < count:
                    due[code] += dt.timedelta(seconds=every)
                    produced += 1
                    yield self.message(code)
            if produced < count:
                produced += 1
                yield self.message(self.rng.choices(codes, weights)[0])

    def message(self, code: str) -> IrisMessage:
        t = self.now
        records = getattr(self, f"_{code.lower()}")(t)
        return IrisMessage(self._id(code, t), code, records, t)

    # ------------------------------------------------------------------ datasets
    def _unit(self):
        return self.rng.choice(self.units)

    def _freq(self, t):
        rows = []
        for _ in range(8):  # one message every 2 minutes with 15-second readings
            self.freq_at += dt.timedelta(seconds=15)
            # a mean-reverting walk: GB frequency drifts within about ±0.1 Hz of 50
            self.hz += 0.25 * (50.0 - self.hz) + self.rng.gauss(0, 0.018)
            rows.append({"dataset": "FREQ", "measurementTime": _z(self.freq_at), "frequency": round(self.hz, 3)})
        return rows

    def _fuelinst(self, t):
        start = t.replace(second=0, microsecond=0) - dt.timedelta(minutes=t.minute % 5)
        day, sp = _sp(start)
        mix = self._gb_mix(start)
        return [{"dataset": "FUELINST", "publishTime": _z(start + dt.timedelta(minutes=5)), "startTime": _z(start),
                 "settlementDate": day, "settlementPeriod": sp, "fuelType": fuel,
                 "generation": mix[fuel]} for fuel in FUEL_TYPES]

    def _price(self, t: dt.datetime) -> float:
        """£/MWh shaped like GB's market index: cheap overnight, dearest at the evening peak."""
        hour = t.hour + t.minute / 60
        return 65 + 25 * (0.5 - 0.5 * math.cos((hour - 4) / 24 * 2 * math.pi)) + 45 * math.exp(
            -((hour - 17.5) ** 2) / 2) + self.rng.gauss(0, 6)

    def _gb_mix(self, t: dt.datetime) -> dict[str, int]:
        """A GB-shaped transmission mix (MW): demand by season and time of day (night trough, evening
        peak), flat nuclear and biomass, wind as a slow random walk, imports, pumped storage at the
        peak, gas filling the rest; no coal since 2024."""
        hour = t.hour + t.minute / 60
        winter = 0.5 + 0.5 * math.cos((t.timetuple().tm_yday - 15) / 365.25 * 2 * math.pi)  # 1 mid-January, 0 mid-July
        daily = 0.5 - 0.5 * math.cos((hour - 4) / 24 * 2 * math.pi)  # 0 at 04:00, 1 at 16:00
        evening = math.exp(-((hour - 17.5) ** 2) / 2)
        demand = (19_000 + 7_000 * winter) + (8_000 + 3_000 * winter) * daily + 2_500 * evening
        self.wind_mw = min(18_000, max(800, self.wind_mw + self.rng.gauss(0, 150)))
        mix = {fuel: 0 for fuel in FUEL_TYPES}
        mix.update(NUCLEAR=4_300 + self.rng.randint(-60, 60), BIOMASS=1_900 + self.rng.randint(-150, 150),
                   WIND=self.wind_mw, NPSHYD=350 + 200 * winter + self.rng.randint(-30, 30),
                   PS=1_600 * evening + self.rng.randint(0, 80) * daily, OTHER=450 + self.rng.randint(-40, 40),
                   INTFR=1_700, INTNSL=1_300, INTVKL=900, INTIFA2=850, INTELEC=800, INTNEM=750, INTNED=600,
                   INTEW=250, INTIRL=150, INTGRNL=200, OCGT=300 * evening)
        for fuel in ("INTFR", "INTNSL", "INTVKL", "INTIFA2", "INTELEC", "INTNEM", "INTNED", "INTEW", "INTIRL", "INTGRNL"):
            mix[fuel] = max(0, mix[fuel] + self.rng.randint(-150, 150))
        mix["CCGT"] = max(1_500, demand - sum(mix.values()))
        return {fuel: int(round(mw)) for fuel, mw in mix.items()}

    def _boalf(self, t):
        bm, ng = self._unit()
        number, start = next(self.acceptance), t.replace(second=0, microsecond=0) + dt.timedelta(minutes=2)
        rows, level = [], self.rng.randint(0, 400)
        for k in range(self.rng.randint(1, 4)):
            day, sp = _sp(start)
            nxt = start + dt.timedelta(minutes=self.rng.choice((1, 2, 5, 10)))
            new_level = max(0, level + self.rng.randint(-100, 100))
            rows.append({"dataset": "BOALF", "settlementDate": day, "settlementPeriodFrom": sp, "settlementPeriodTo": sp,
                         "timeFrom": _z(start), "timeTo": _z(nxt), "levelFrom": level, "levelTo": new_level,
                         "acceptanceNumber": number, "acceptanceTime": _z(t), "deemedBoFlag": False,
                         "soFlag": self.rng.random() < 0.3, "amendmentFlag": "ORI", "storFlag": False,
                         "rrFlag": False, "nationalGridBmUnit": ng, "bmUnit": bm})
            start, level = nxt, new_level
        return rows

    def _limits(self, code, t):
        rows = []
        notified = t.replace(microsecond=0)
        for _ in range(self.rng.randint(1, 12)):
            bm, ng = self._unit()
            start = t.replace(second=0, microsecond=0) + dt.timedelta(minutes=self.rng.randint(1, 60))
            day, sp = _sp(start)
            level = self.rng.randint(0, 500) * (-1 if code == "MILS" else 1)
            rows.append({"dataset": code, "settlementDate": day, "settlementPeriod": sp, "timeFrom": _z(start),
                         "timeTo": _z(start + dt.timedelta(minutes=30)), "levelFrom": level, "levelTo": level,
                         "notificationTime": _z(notified), "notificationSequence": next(self.notification),
                         "nationalGridBmUnit": ng, "bmUnit": bm})
        return rows

    def _mels(self, t):
        return self._limits("MELS", t)

    def _mils(self, t):
        return self._limits("MILS", t)

    def _next_period(self, kind: str, bm: str, t: dt.datetime) -> dt.datetime:
        """The next settlement period a unit submits ``kind`` data for (one file per unit and period)."""
        key = (kind, bm)
        start = self.periods.get(key, t.replace(second=0, microsecond=0, minute=0) + dt.timedelta(hours=1))
        self.periods[key] = start + dt.timedelta(minutes=30)
        return start

    def _pn(self, t):
        bm, ng = self._unit()
        start = self._next_period("PN", bm, t)
        day, sp = _sp(start)
        rows, level = [], self.rng.randint(-50, 400)
        cuts = sorted(self.rng.sample(range(1, 30), k=self.rng.randint(1, 5)))
        for a, b in zip([0, *cuts], [*cuts, 30]):
            nxt = max(-50, level + self.rng.randint(-40, 40))
            rows.append({"dataset": "PN", "settlementDate": day, "settlementPeriod": sp,
                         "timeFrom": _z(start + dt.timedelta(minutes=a)), "timeTo": _z(start + dt.timedelta(minutes=b)),
                         "levelFrom": level, "levelTo": nxt, "nationalGridBmUnit": ng, "bmUnit": bm})
            level = nxt
        return rows

    def _bod(self, t):
        bm, ng = self._unit()
        start = self._next_period("BOD", bm, t)
        day, sp = _sp(start)
        return [{"dataset": "BOD", "settlementDate": day, "settlementPeriod": sp, "timeFrom": _z(start),
                 "levelFrom": 100 * pair, "timeTo": _z(start + dt.timedelta(minutes=30)), "levelTo": 100 * pair,
                 "pairId": pair, "offer": round(self.rng.uniform(60, 300), 2), "bid": round(self.rng.uniform(-50, 60), 2),
                 "nationalGridBmUnit": ng, "bmUnit": bm} for pair in (-2, -1, 1, 2)]

    def _indicated(self, code, value, t):
        publish = t.replace(second=0, microsecond=0)
        start = publish.replace(minute=0 if publish.minute < 30 else 30) + dt.timedelta(minutes=30)
        day, sp = _sp(start)
        return [{"dataset": code, value: int(self.rng.gauss(500, 300)), "publishTime": _z(publish),
                 "startTime": _z(start), "settlementDate": day, "settlementPeriod": sp, "boundary": b}
                for b in BOUNDARIES]

    def _indgen(self, t):
        return self._indicated("INDGEN", "generation", t)

    def _inddem(self, t):
        return self._indicated("INDDEM", "demand", t)

    def _imbalngc(self, t):
        return self._indicated("IMBALNGC", "imbalance", t)

    def _melngc(self, t):
        return self._indicated("MELNGC", "margin", t)

    def _mid(self, t):
        start = t.replace(second=0, microsecond=0, minute=0 if t.minute < 30 else 30)
        day, sp = _sp(start)
        return [{"dataset": "MID", "startTime": _z(start), "dataProvider": p, "settlementDate": day,
                 "settlementPeriod": sp, "price": round(self._price(start), 2) if p == "APXMIDP" else 0,
                 "volume": round(self.rng.uniform(500, 2500), 2) if p == "APXMIDP" else 0}
                for p in ("APXMIDP", "N2EXMIDP")]

    def _disbsad(self, t):
        day, sp = _sp(t)
        first = self.disbsad_ids.get((day, sp), 1)
        self.disbsad_ids[(day, sp)] = first + 3
        return [{"dataset": "DISBSAD", "settlementDate": day, "settlementPeriod": sp, "id": first + i,
                 "cost": round(self.rng.uniform(-5000, 20000), 2), "volume": round(self.rng.uniform(-100, 200), 3),
                 "soFlag": True, "storFlag": False, "partyId": None, "assetId": None, "isTendered": None,
                 "service": None} for i in range(self.rng.randint(1, 3))]

    def _remit(self, t):
        bm, ng = self._unit()
        start = t + dt.timedelta(hours=self.rng.randint(-6, 48))
        end = start + dt.timedelta(hours=self.rng.randint(1, 72))
        normal = float(self.rng.randint(100, 1000))
        available = float(self.rng.randint(0, int(normal)))
        return [{"dataset": "REMIT", "mrid": f"48X000000000392E-NGET-RMT-{next(self.seq):08d}", "revisionNumber": 1,
                 "publishTime": _z(t), "createdTime": _z(t), "messageType": "UnavailabilitiesOfElectricityFacilities",
                 "messageHeading": "Unplanned Unavailability of Generation Unit", "eventType": "Production unavailability",
                 "unavailabilityType": self.rng.choice(("Planned", "Unplanned")), "participantId": "48X000000000392E",
                 "registrationCode": "48X000000000392E", "assetId": bm, "assetType": "Production",
                 "affectedUnit": ng, "affectedUnitEIC": "48W00000GEN0000X", "affectedArea": "N",
                 "biddingZone": "10YGB----------A", "fuelType": "Fossil Gas", "normalCapacity": normal,
                 "availableCapacity": available, "unavailableCapacity": normal - available, "eventStatus": "Active",
                 "eventStartTime": _z(start), "eventEndTime": _z(end), "durationUncertainty": "Unknown",
                 "cause": "Other", "relatedInformation": "",
                 "outageProfile": [{"startTime": _z(start), "endTime": _z(end), "capacity": available}]}]


def write_file_drop(directory: str | Path, messages: list[IrisMessage]) -> list[Path]:
    """Lay messages out as Elexon's client does: ``DIR/<DATASET>/<message id>`` holding the plain array."""
    paths = []
    for msg in messages:
        path = Path(directory) / msg.subject / msg.message_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(msg.body(double_encoded=False))
        stamp = msg.enqueued_at.timestamp()
        os.utime(path, (stamp, stamp))  # the client writes a file when the message arrives
        paths.append(path)
    return paths
