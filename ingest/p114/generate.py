"""Generate realistic S0142 files in the documented layout (tests, ``run.py demo``, benchmarks).

The layout follows ``../shared/reference/S0142.md`` section 8: AAA, SRH, a system section with one
block per settlement period (SPI, MD1 x2, DB1 x k, TRA x m, BPI x units), then one block per BSC
party (BPH, APC, and per period SP7, SSD, MD2 x2, DB2 x k, PPC, APD/APB, and per lead BM unit a BP7
followed by its children MVR, MEL, MIL, RUx/RDx, BO4, BO3), and a ZZZ trailer whose first field is
the true record count. Values respect the documented invariants (BPI mirrors BP7; TLM = 1 + TLF +
TLMO; BO4 cashflow = volume x price; BP7 25 = BP7 22 x SPI 53; APC sums its units), and later runs
restate earlier ones slightly, so every report has something real to show.
"""

from __future__ import annotations

import datetime as dt
import gzip
import random
import zlib
from dataclasses import dataclass
from pathlib import Path

from core.settlement import RUN_RANK, periods_in_day
from ingest.p114.layout import S0142Name

GSP_GROUPS = "ABCDEFGHJKLMNP"
#: Typical publication lag (calendar days) of each run, for default creation stamps.
TYPICAL_LAG_DAYS = {"II": 7, "SF": 23, "R1": 50, "R2": 115, "R3": 215, "RF": 425, "DF": 850}
RUN_NUMBER = {"II": 1, "SF": 2, "R1": 3, "R2": 4, "R3": 5, "RF": 6, "DF": 7}


@dataclass(frozen=True)
class Unit:
    """A BM unit as the generator sees it."""

    bm_unit_id: str
    lead_party_id: str
    trading_unit: str  # BP7 field 13; BPI field 2 is blank when the unit is its own trading unit
    kind: str  # supplier | consumer | transmission | embedded | vlp | battery | interconnector | other
    capacity_mwh: float  # per half hour
    tlf: float


_KINDS = (  # kind, id prefix, share of units
    ("supplier", "2__", 0.42),
    ("consumer", "C__", 0.12),
    ("transmission", "T_", 0.14),
    ("embedded", "E_", 0.12),
    ("vlp", "V__", 0.12),
    ("other", "M_", 0.05),
    ("interconnector", "I_", 0.03),
)
_PARTY_NAMES = ("GOLD", "FLEXPWR", "BRITEN", "VLPOWER", "AXLE", "KIWI", "OCTO", "EDFE", "DRAXX", "ORSTD")


def _base36(n: int, width: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = digits[r] + out
    return out.rjust(width, "0")


def default_created_at(settlement_date: dt.date, run: str) -> dt.datetime:
    """A plausible creation stamp for ``run`` of ``settlement_date`` (noon-ish, typical lag)."""
    day = settlement_date + dt.timedelta(days=TYPICAL_LAG_DAYS[run])
    return dt.datetime.combine(day, dt.time(12, 2, 9))


def sample_units(n_units: int, n_parties: int, seed: int = 0) -> list[Unit]:
    """A deterministic population of BM units spread over ``n_parties`` lead parties.

    Always contains at least one ``2__`` supplier unit and one ``V__`` secondary (VLP) unit.
    """
    rng = random.Random(seed)
    parties = [
        (_PARTY_NAMES[i] if i < len(_PARTY_NAMES) else f"PTY{i:05d}") for i in range(max(n_parties, 1))
    ]
    units: list[Unit] = []
    counters: dict[str, int] = {}
    for i in range(n_units):
        if i == 0:
            kind, prefix = "supplier", "2__"
        elif i == 1:
            kind, prefix = "vlp", "V__"
        else:
            r, acc = rng.random(), 0.0
            kind, prefix = _KINDS[-1][0], _KINDS[-1][1]
            for k, p, share in _KINDS:
                acc += share
                if r < acc:
                    kind, prefix = k, p
                    break
        # VLP units belong to the VLP-flavoured parties so a lead party holds several of them.
        party = parties[(3 if kind == "vlp" and len(parties) > 3 else i) % len(parties)]
        n = counters[prefix] = counters.get(prefix, 0) + 1
        gsp = GSP_GROUPS[n % len(GSP_GROUPS)]
        if prefix in ("2__", "C__", "V__"):  # e.g. 2__FBPGM002: prefix, GSP group, party, serial
            unit_id = f"{prefix}{gsp}{party[:4]:X<4}{_base36(n, 3)}"
            trading_unit = f"DEFAULT__{gsp}" if kind == "supplier" else unit_id
        else:  # e.g. T_DRAX-1, I_IFD-FRA1
            unit_id = f"{prefix}{party[:4]}-{_base36(n, 1 if n < 36 else 3)}"
            trading_unit = unit_id
        capacity = {
            "supplier": rng.uniform(1, 12), "consumer": rng.uniform(0.5, 4), "transmission": rng.uniform(50, 300),
            "embedded": rng.uniform(2, 25), "vlp": rng.uniform(1, 10), "interconnector": rng.uniform(200, 500),
            "other": rng.uniform(1, 20),
        }[kind]
        tlf = round(rng.choice([-0.0291, -0.0187, -0.0102, -0.0043, 0.0012, 0.0058, 0.0093]), 7)
        units.append(Unit(unit_id, party, trading_unit, kind, capacity, tlf))
    return units


def _n(x: float, dp: int = 3) -> str:
    """Print a number like Elexon does: fixed decimals, trailing zeros stripped, no ``-0``."""
    s = f"{x:.{dp}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _restate(value: float, run: str, salt: int) -> float:
    """Later runs restate volumes slightly (deterministic, small, signed)."""
    step = RUN_RANK[run] - 1
    return value * (1 + 0.002 * step * ((salt % 7) - 3))


def generate_s0142_lines(
    settlement_date: dt.date,
    run: str,
    created_at: dt.datetime,
    units: list[Unit],
    *,
    seed: int = 0,
    flow_version: str = "S0142013",
    periods: int | None = None,
    acceptances: dict[tuple[str, int], list[tuple[int, float, float, float, float]]] | None = None,
    acceptance_numbers: dict[tuple[str, int], list[tuple[int, dt.datetime]]] | None = None,
) -> list[str]:
    """All records of one S0142 file as text lines (without line endings); ``acceptances``: the BO4
    pairs per (unit, period) to write instead of random ones, ``acceptance_numbers`` their BO3
    acceptances (number, time) (the demo's balancing day)."""
    n_periods = periods if periods is not None else periods_in_day(settlement_date)
    date_s = f"{settlement_date:%Y%m%d}"
    run_no = RUN_NUMBER[run]
    rng = random.Random(zlib.crc32(f"{seed}|{settlement_date}".encode()))  # same base data in every run
    wide = flow_version.endswith("014")
    ssc = round(rng.uniform(87, 99), 2)  # supplier sourcing cost, constant over the day

    lines: list[str] = [
        f"AAA|{flow_version}|D|{created_at:%Y%m%d%H%M%S}|SA|UKDC|PB|PORTAL|{41000 + run_no}|OPER|",
        f"SRH|{date_s}|{run}|{run_no}|{run_no}|{date_s}|{run_no}|166710|NGC|",
    ]

    # Per unit and period: the values BPI and BP7 share, computed once.
    prices = [round(rng.uniform(45, 122), 2) for _ in range(n_periods)]
    tlmo = [(round(rng.uniform(-0.004, 0.004), 7), round(rng.uniform(-0.004, 0.004), 7)) for _ in range(n_periods)]
    qm: list[list[float]] = []
    fpn: list[list[float]] = []
    for ui, u in enumerate(units):
        row_qm, row_fpn = [], []
        for p in range(n_periods):
            base = u.capacity_mwh * rng.uniform(0.1, 0.9)
            if u.kind in ("supplier", "consumer"):
                v = -base
            elif u.kind in ("vlp", "battery", "interconnector", "other"):
                v = base if rng.random() < 0.5 else -base
            else:
                v = base
            v = round(_restate(v, run, ui * 31 + p * 17), 3)
            row_qm.append(v)
            row_fpn.append(round(v * rng.uniform(0.95, 1.05), 3) if u.kind not in ("supplier", "consumer") else 0.0)
        qm.append(row_qm)
        fpn.append(row_fpn)

    def tlm(u: Unit, p: int, volume: float) -> float:
        if u.kind == "interconnector":
            return 1.0
        return round(1 + u.tlf + (tlmo[p][0] if volume >= 0 else tlmo[p][1]), 7)

    # Acceptances: which unit-periods carry BO4 pairs (more for VLP and transmission units).
    accept: dict[tuple[int, int], list[tuple[int, float, float, float, float]]] = {}
    for ui, u in enumerate(units):
        chance = {"vlp": 0.18, "battery": 0.25, "transmission": 0.12, "interconnector": 0.05}.get(u.kind, 0.004)
        for p in range(n_periods):
            if rng.random() < chance:
                pairs = []
                for k in range(rng.randint(1, 2)):
                    pair_no = -(k + 1) if rng.random() < 0.5 else k + 1
                    bid_price = round(rng.uniform(-20, prices[p] * 0.8), 2)
                    offer_price = round(rng.uniform(prices[p] * 1.1, prices[p] * 2.5), 2)
                    vol = round(_restate(u.capacity_mwh * rng.uniform(0.05, 0.4), run, ui + p + k), 3)
                    bid_vol, offer_vol = (-vol, 0.0) if pair_no < 0 else (0.0, vol)
                    pairs.append((pair_no, bid_price, offer_price, bid_vol, offer_vol))
                accept[(ui, p)] = pairs
    if acceptances is not None:
        index = {u.bm_unit_id: ui for ui, u in enumerate(units)}
        accept = {(index[unit], period - 1): pairs for (unit, period), pairs in acceptances.items() if unit in index}

    trading_units = sorted({u.trading_unit for u in units if u.trading_unit.startswith("DEFAULT__")})
    tu_volume: list[dict[str, float]] = [dict.fromkeys(trading_units, 0.0) for _ in range(n_periods)]
    for ui, u in enumerate(units):
        if u.trading_unit in tu_volume[0]:
            for p in range(n_periods):
                tu_volume[p][u.trading_unit] += qm[ui][p]
    bsad = [rng.randint(3, 10) for _ in range(n_periods)]  # real files: ~6.7 BSAD actions per period
    # ~50 trading units per period in real files: the DEFAULT__x ones plus named station trading units
    station_tus = [f"{u.bm_unit_id.split('-')[0][2:]} TRADING UNIT {i}" for i, u in enumerate(units) if u.kind == "transmission"][:35]

    def db_fields(p: int, k: int) -> str:
        vol = round(rng.uniform(-80, 120), 3)
        return (
            f"{k}|{_n(vol * prices[p] * 1.3, 2)}|{_n(vol)}|0|0|{_n(vol)}|{'T' if k % 2 else 'F'}|F|F|"
            f"MFT Energy A/S|IND-MFTE{k}|{'Tendered' if k % 3 else 'Non-tendered'}|"
            f"{('System', 'Energy', 'Non-BM FR')[k % 3]}|"
        )

    # ---- system section: one block per period
    db_lines: list[list[str]] = []
    for p in range(n_periods):
        price = prices[p]
        total_bid = -round(rng.uniform(100, 1300), 3)
        total_offer = round(rng.uniform(100, 1300), 3)
        spi = [
            str(p + 1), _n(price, 5), _n(price, 5), "N" if p % 5 else "P",
            _n(-rng.uniform(15000, 19000)), _n(rng.uniform(15000, 19000)), _n(rng.uniform(-50, 50)),
            "0", "0", "", _n(rng.uniform(-300, 300)), "T", "10", "0.1", "", "", "", "0", "", "", "", "0",
            _n(total_bid), _n(total_offer), _n(total_bid * 0.1), _n(total_offer * 0.1),
            "0", "0", _n(total_bid * 0.9), _n(total_offer * 0.9),
            _n(rng.uniform(-200, 0)), _n(rng.uniform(0, 200)), "0", "0", "0", "0", "0", "0",
            _n(price, 2), "0", "F", "0", _n(rng.uniform(25000, 35000)), "6000", "0",
            "", "", "", "", "", "", "", _n(ssc, 2),
        ]
        lines.append("SPI|" + "|".join(spi) + "|")
        lines.append(f"MD1|APXMIDP|25|{_n(price * 0.97, 2)}|{_n(rng.uniform(500, 2500))}|")
        lines.append("MD1|N2EXMIDP|25|0|0|")
        period_db = [db_fields(p, k + 1) for k in range(bsad[p])]
        db_lines.append(period_db)
        lines.extend("DB1|" + f for f in period_db)
        for tu in trading_units:
            lines.append(f"TRA|{tu}|{_n(tu_volume[p][tu])}|")
        lines.append(f"TRA|CONNAH'S QUAY PS TRADING  UNIT|{_n(rng.uniform(0, 400))}|")
        lines.extend(f"TRA|{tu}|{_n(rng.uniform(-50, 600))}|" for tu in station_tus)
        for ui, u in enumerate(units):
            v = qm[ui][p]
            tu = "" if u.trading_unit == u.bm_unit_id else u.trading_unit
            lines.append(f"BPI|{u.bm_unit_id}|{tu}|{_n(fpn[ui][p])}|{_n(v)}|{_n(tlm(u, p, v), 7)}|0|")

    # ---- party section
    by_party: dict[str, list[int]] = {}
    for ui, u in enumerate(units):
        by_party.setdefault(u.lead_party_id, []).append(ui)
    acceptance_no = 1000
    for party, unit_idx in by_party.items():
        block: list[str] = [f"BPH|{date_s}|{run}|{run_no}|{run_no}|{date_s}|{run_no}|166710|{party}|"]
        day_cash = day_nd = day_vlp = day_sup = 0.0
        for p in range(n_periods):
            price = prices[p]
            block.append(f"SP7|{p + 1}|")
            ssd = ["0"] * 79
            ssd[4], ssd[5], ssd[6], ssd[76] = _n(price, 5), _n(price, 5), "N" if p % 5 else "P", _n(ssc, 2)
            for blank in (11, 14, 16, *range(27, 33), *range(38, 46), *range(67, 74)):
                ssd[blank] = ""
            block.append("SSD|" + "|".join(ssd) + "|")
            block.append(f"MD2|APXMIDP|25|{_n(price * 0.97, 2)}|{_n(rng.uniform(500, 2500))}|")
            block.append("MD2|N2EXMIDP|25|0|0|")
            block.extend("DB2|" + f for f in db_lines[p])
            period_cash = sum(
                bv * bp + ov * op for ui in unit_idx for (_, bp, op, bv, ov) in accept.get((ui, p), ())
            )
            block.append(f"PPC|0|{_n(period_cash, 2)}|{_n(rng.uniform(-500, 500), 2)}|0|0|{_n(rng.uniform(-50, 50), 2)}|||||")
            for flag in ("P", "C"):
                block.append(
                    f"APD|{flag}|0|{_n(rng.uniform(-900, 900), 2)}|0|{_n(rng.uniform(-40, 40), 2)}|"
                    f"{_n(rng.uniform(-50, 50))}|0|{_n(rng.uniform(-20, 20))}|{_n(rng.uniform(-200, 200))}|"
                    f"{_n(rng.uniform(0, 0.001), 7)}|0.0000012|0.0015|0.08||"
                )
                for ui in unit_idx[:2]:
                    block.append(f"APB|{units[ui].bm_unit_id}|{_n(qm[ui][p])}|0|100|")
            for ui in unit_idx:
                u = units[ui]
                v = qm[ui][p]
                pairs = accept.get((ui, p), [])
                bsv = round(sum(bv + ov for (_, _, _, bv, ov) in pairs), 3)
                nd_charge = round(abs(bsv) * price * 0.05, 2) if pairs and rng.random() < 0.2 else 0.0
                sup_vol = round(rng.uniform(0, 0.05), 3) if u.kind == "supplier" else None
                vlp_vol = round(rng.uniform(0, 0.3), 3) if u.kind == "vlp" else None
                f = [
                    u.bm_unit_id, "0", _n(nd_charge, 2), _n(fpn[ui][p]), _n(bsv), _n(abs(v)), "0", _n(v),
                    "0", "0", _n(u.tlf, 7), _n(tlm(u, p, v), 7), u.trading_unit,
                    _n(tu_volume[p].get(u.trading_unit, v)), "0", "0", "0",
                    _n(rng.uniform(0, 2)) if u.kind == "vlp" else "",
                    _n(rng.uniform(0, 2)) if u.kind == "vlp" else "",
                    "1" if u.kind == "vlp" else "", "F" if u.kind == "vlp" else "",
                    _n(sup_vol) if sup_vol is not None else "",
                    _n(vlp_vol) if vlp_vol is not None else "",
                    "0" if u.kind in ("supplier", "consumer") else "",
                    _n(sup_vol * ssc, 2) if sup_vol is not None else "",
                ]
                if wide:
                    f += ["", ""]
                block.append("BP7|" + "|".join(f) + "|")
                day_nd += nd_charge
                day_sup += round(sup_vol * ssc, 2) if sup_vol is not None else 0.0
                day_vlp += (vlp_vol or 0.0) * ssc
                # children in the proportions of a real 2026 SF file (per BP7: MEL .29, MIL .27,
                # RUE/RDE .07, RUI/RDI .04, MVR .17, BO3 ~2.7 per BO4)
                if u.kind == "supplier" and ui % 3 == 0:
                    block.append(f"MVR|{party}|C|{_n(v)}|0|100|")
                if u.kind not in ("supplier", "consumer") and (ui + p) % 8 < 5:
                    cap = round(u.capacity_mwh * 2, 3)
                    low = -cap if u.kind in ("vlp", "battery", "interconnector") else 0
                    block.append(f"MEL|0|{_n(cap)}|30|{_n(cap)}|")
                    block.append(f"MIL|0|{_n(low)}|30|{_n(low)}|")
                if u.kind not in ("supplier", "consumer") and (ui + p) % 3 == 0:
                    block.append(f"RUE|{_n(u.capacity_mwh / 10)}|||||")
                    block.append(f"RDE|{_n(u.capacity_mwh / 10)}|||||")
                    if u.kind in ("vlp", "battery", "interconnector"):
                        block.append(f"RUI|{_n(u.capacity_mwh / 10)}|-5||||")
                        block.append(f"RDI|{_n(u.capacity_mwh / 10)}|-5||||")
                for pair_no, bid_price, offer_price, bid_vol, offer_vol in pairs:
                    bid_cash, offer_cash = round(bid_vol * bid_price, 2), round(offer_vol * offer_price, 2)
                    day_cash += bid_cash + offer_cash
                    block.append(
                        f"BO4|{pair_no}|{_n(bid_price, 2)}|{_n(offer_price, 2)}|{_n(bid_vol)}|{_n(offer_vol)}|||"
                        f"0|0|0|0|{_n(bid_vol)}|{_n(offer_vol)}|{_n(bid_cash, 2)}|{_n(offer_cash, 2)}|"
                    )
                if acceptance_numbers is not None:
                    numbers = list(acceptance_numbers.get((u.bm_unit_id, p + 1), []))
                else:
                    numbers = []
                    for _ in range(len(pairs) * rng.randint(1, 4)):
                        acceptance_no += 1
                        numbers.append((acceptance_no, dt.datetime.combine(settlement_date, dt.time())
                                        + dt.timedelta(minutes=30 * p - 20)))
                for number, stamp in numbers:
                    block.append(f"BO3|{number}|{stamp:%Y%m%d%H%M%S}|F|T|F|F|||")
        apc = [
            "0", _n(day_cash, 2), _n(rng.uniform(-20000, 20000), 2), "0", _n(day_nd, 2),
            _n(rng.uniform(-800, 800), 2), "", "", "", "", _n(day_vlp, 2), _n(day_sup, 2),
        ]
        if wide:
            apc.append("")
        block.insert(1, "APC|" + "|".join(apc) + "|")
        lines.extend(block)

    lines.append(f"ZZZ|{len(lines) + 1}|{zlib.crc32(chr(10).join(lines).encode()) % 2_000_000_000}|")
    return lines


def write_s0142(
    directory: str | Path,
    settlement_date: dt.date,
    run: str,
    *,
    created_at: dt.datetime | None = None,
    units: list[Unit] | None = None,
    n_units: int = 40,
    n_parties: int = 6,
    seed: int = 0,
    flow_version: str = "S0142013",
    bom: bool = False,
    crlf: bool = False,
    gz: bool = True,
    acceptances: dict[tuple[str, int], list[tuple[int, float, float, float, float]]] | None = None,
    acceptance_numbers: dict[tuple[str, int], list[tuple[int, dt.datetime]]] | None = None,
) -> Path:
    """Write one S0142 file named by the Elexon convention into ``directory``; return its path."""
    created_at = created_at or default_created_at(settlement_date, run)
    units = units if units is not None else sample_units(n_units, n_parties, seed)
    lines = generate_s0142_lines(settlement_date, run, created_at, units, seed=seed, flow_version=flow_version,
                                 acceptances=acceptances, acceptance_numbers=acceptance_numbers)
    name = S0142Name.format(settlement_date, run, created_at, gz=gz)
    return write_s0142_lines(Path(directory) / name, lines, bom=bom, crlf=crlf, gz=gz)


def write_s0142_lines(path: str | Path, lines: list[str], *, bom: bool = False, crlf: bool = False, gz: bool = True) -> Path:
    """Write ``lines`` as an S0142 file at ``path`` (atomically): optional BOM, CRLF, gzip."""
    eol = "\r\n" if crlf else "\n"
    data = (b"\xef\xbb\xbf" if bom else b"") + (eol.join(lines) + eol).encode("ascii")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(gzip.compress(data, compresslevel=6, mtime=0) if gz else data)
    tmp.replace(path)
    return path
