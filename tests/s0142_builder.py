"""Minimal valid S0142 files with exactly the values a test states, for hand-computed report answers.

Every record type the parser loads is present with the documented widths: AAA, SRH, one SPI per
period each followed by the BPI of every unit, then per lead party a BPH, its APC, and per period
an SP7 followed by that party's BP7 records, each followed by the unit's BO4 records; ZZZ last.
Unspecified numeric fields are 0.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from core.settlement import periods_in_day
from ingest.p114.generate import write_s0142_lines
from ingest.p114.layout import WIDTHS_013, S0142Name


@dataclass
class UnitSpec:
    bm_unit_id: str
    party: str
    metered_mwh: float = 0.0  # every period
    non_delivery: dict[int, float] = field(default_factory=dict)  # period -> £
    # period -> [(pair number, bid price, offer price, bid volume, offer volume)]; cashflow = volume x price
    bo4: dict[int, list[tuple[int, float, float, float, float]]] = field(default_factory=dict)
    skip_bpi_periods: tuple[int, ...] = ()
    metered: dict[int, float] = field(default_factory=dict)  # period -> MWh, overriding metered_mwh
    tlm: float = 1.0
    compensation_mwh: dict[int, float] = field(default_factory=dict)  # period -> BP7 23 (P415)
    bo3: dict[int, list[int]] = field(default_factory=dict)  # period -> acceptance numbers (BO3)

    def qm(self, period: int) -> float:
        return self.metered.get(period, self.metered_mwh)


def _record(rec: str, values: dict[int, object]) -> str:
    fields = [""] * (WIDTHS_013[rec] - 1)
    for position, value in values.items():
        fields[position - 1] = "" if value is None else (f"{value:g}" if isinstance(value, float) else str(value))
    return rec + "|" + "|".join(fields) + "|"


def build_lines(day: dt.date, run: str, created: dt.datetime, units: list[UnitSpec], price: float = 50.0,
                prices: dict[int, float] | None = None, apc: dict[str, dict[int, float]] | None = None) -> list[str]:
    """``prices``: system price per period (else ``price``); ``apc``: party -> APC field -> value."""
    n = periods_in_day(day)
    date_s = f"{day:%Y%m%d}"
    lines = [
        f"AAA|S0142013|D|{created:%Y%m%d%H%M%S}|SA|UKDC|PB|PORTAL|1|OPER|",
        f"SRH|{date_s}|{run}|1|1|{date_s}|1|1|NGC|",
    ]
    for p in range(1, n + 1):
        sp = (prices or {}).get(p, price)
        lines.append(_record("SPI", {1: p, 2: sp, 3: sp, 4: "N", 53: 90.0}))
        for u in units:
            if p not in u.skip_bpi_periods:
                lines.append(_record("BPI", {1: u.bm_unit_id, 2: "", 3: 0.0, 4: u.qm(p), 5: u.tlm, 6: 0.0}))
    parties: dict[str, list[UnitSpec]] = {}
    for u in units:
        parties.setdefault(u.party, []).append(u)
    for party, members in parties.items():
        lines.append(f"BPH|{date_s}|{run}|1|1|{date_s}|1|1|{party}|")
        lines.append(_record("APC", {i: 0.0 for i in range(1, 7)} | (apc or {}).get(party, {})))
        for p in range(1, n + 1):
            lines.append(f"SP7|{p}|")
            for u in members:
                lines.append(_record("BP7", {
                    1: u.bm_unit_id, 2: 0.0, 3: u.non_delivery.get(p, 0.0), 4: 0.0, 5: 0.0, 6: abs(u.qm(p)),
                    7: 0.0, 8: u.qm(p), 9: 0.0, 10: 0.0, 11: round(u.tlm - 1, 7), 12: u.tlm, 13: u.bm_unit_id,
                    14: u.qm(p), 15: 0.0, 16: 0.0, 17: 0.0, 23: u.compensation_mwh.get(p),
                }))
                for pair, bid_price, offer_price, bid_vol, offer_vol in u.bo4.get(p, []):
                    lines.append(_record("BO4", {
                        1: pair, 2: bid_price, 3: offer_price, 4: bid_vol, 5: offer_vol, 8: 0.0, 9: 0.0, 10: 0.0,
                        11: 0.0, 12: bid_vol, 13: offer_vol, 14: round(bid_vol * bid_price, 2),
                        15: round(offer_vol * offer_price, 2),
                    }))
                for number in u.bo3.get(p, []):
                    lines.append(_record("BO3", {1: number, 2: f"{day:%Y%m%d}090000", 3: "F", 4: "F", 5: "F", 6: "F"}))
    lines.append(f"ZZZ|{len(lines) + 1}|0|")
    return lines


def write_file(directory: Path, day: dt.date, run: str, created: dt.datetime, units: list[UnitSpec],
               transform=None, **kwargs) -> Path:
    """Write the file; ``transform`` reshapes its lines first (e.g. to an older flow version)."""
    lines = build_lines(day, run, created, units, **kwargs)
    return write_s0142_lines(Path(directory) / S0142Name.format(day, run, created), transform(lines) if transform else lines)
