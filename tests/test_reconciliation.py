"""Indicative vs settled BM cash: the T3 recompute, Elexon's BOAV/EBOCF and P114's BO4, by hand.

Settlement date 2025-01-15 (GMT, so period n starts at (n-1) x 30 min UTC). Five units:

* T_ALPHA-1, period 20 (09:30-10:00): FPN 100 MW; BOD pair +1 20 MW at £50 offer, pair +2 30 MW at £70.
  Acceptance 1001 ramps 100 -> 140 MW over 09:30-09:40, then holds 140 MW. The move above FPN at minute m
  of the ramp is 4m MW: pair +1 gets min(4m, 20), pair +2 the rest. Pair +1: (0+4+8+12+16+20x5) + 20x20
  = 540 MW-min = 9 MWh; pair +2: (4+8+12+16) + 20x20 = 440 MW-min = 7.333333 MWh. Cash 9 x 50 +
  7.333333 x 70 = £963.33. Indicative and settled agree: reconciled.
* E_BRAVO-1, period 21 (10:00-10:30): FPN 0; pair +1 50 MW, offer £80, bid £70. Acceptance 2001 at
  50 MW for the whole period; acceptance 2002 supersedes it from 10:10 at 20 MW, moving back down
  through the offer band: 30 MW x 20 min = -10 MWh on pair +1 at its *bid* price £70 = -£700. 2001:
  50 MW x 30 min = 25 MWh x £80 = £2,000. Net 15 MWh, £1,300. A £100 non-delivery charge: non_delivery.
  The naive BOALF figure counts absolute levels, 2002 on top of 2001: (50x30 + 20x20)/60 = 31.667 MWh
  x £80 = £2,533.33.
* T_CHARLIE-1, one acceptance 10:30-11:30 spanning periods 22 and 23: FPN 200, acceptance 3001 at
  150 MW, bid pair -1 100 MW at £30: -25 MWh, -£750 in each period. The SF run settled both so; the
  R1 run (canonical) settles period 23 at -20 MWh, -£600, and EBOCF was re-issued -£750 -> -£600:
  period 23 is 'reissued' (+£150).
* 2__DELTA001: settled £500 in period 25 (5 MWh x £100), no IRIS data at all: no_acceptance_data.
* T_ECHO-1, period 26 (12:30-13:00): FPN 0, pair +1 100 MW at £60. Acceptance 5001 at 10 MW (5 MWh,
  £300); 5002 lifts it to 30 MW from 12:45 (+20 MW x 15 min = 5 MWh, £300). Settlement (BO3) and
  Elexon's BOAV list only 5001, and settlement pays £300: acceptance_excluded (-£300).
"""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from core.settlement import period_start_utc, periods_in_day
from core.t3 import Pair, Segment, accepted
from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader
from ingest.p114.load import load_file
from reporting.reports import ReportOptions, run_report
from tests.s0142_builder import UnitSpec, write_file

DAY = dt.date(2025, 1, 15)
NEXT_DAY = dt.date(2025, 1, 16)
UTC = dt.timezone.utc


def _z(hour: int, minute: int = 0) -> str:
    return dt.datetime(2025, 1, 15, hour, minute, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _start(period: int) -> tuple[int, int]:
    minutes = (period - 1) * 30
    return minutes // 60, minutes % 60


def _period_row(dataset: str, unit: str, period: int, **extra) -> dict:
    h, m = _start(period)
    h2, m2 = _start(period + 1)
    return {"dataset": dataset, "settlementDate": DAY.isoformat(), "settlementPeriod": period, "timeFrom": _z(h, m),
            "timeTo": _z(h2, m2), "nationalGridBmUnit": unit.split("_", 1)[-1], "bmUnit": unit, **extra}


def pn(unit: str, period: int, mw: int) -> dict:
    return _period_row("PN", unit, period, levelFrom=mw, levelTo=mw)


def bod(unit: str, period: int, pair: int, size: int, offer: float, bid: float) -> dict:
    return _period_row("BOD", unit, period, levelFrom=size, levelTo=size, pairId=pair, offer=offer, bid=bid)


def boalf(unit: str, number: int, start: tuple[int, int], end: tuple[int, int], level_from: int, level_to: int,
          periods: tuple[int, int]) -> dict:
    return {"dataset": "BOALF", "settlementDate": DAY.isoformat(), "settlementPeriodFrom": periods[0],
            "settlementPeriodTo": periods[1], "timeFrom": _z(*start), "timeTo": _z(*end), "levelFrom": level_from,
            "levelTo": level_to, "acceptanceNumber": number, "acceptanceTime": _z(start[0], 0), "deemedBoFlag": False,
            "soFlag": False, "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False,
            "nationalGridBmUnit": unit.split("_", 1)[-1], "bmUnit": unit}


def _settlement(dataset: str, unit: str, period: int, side: str, created: str, **extra) -> dict:
    h, m = _start(period)
    return {"dataset": dataset, "createdDateTime": created, "settlementDate": DAY.isoformat(),
            "settlementPeriod": period, "startTime": _z(h, m), "bmUnit": unit, "bmUnitType": "T",
            "nationalGridBmUnit": unit.split("_", 1)[-1], "side": side, **extra}


def ebocf(unit: str, period: int, side: str, pairs: dict[str, float], created: str = "2025-01-15T14:00:00Z") -> dict:
    return _settlement("EBOCF", unit, period, side, created, bidOfferPairCashflows=pairs,
                       totalCashflow=round(sum(v for v in pairs.values() if v), 2))


def boav(unit: str, period: int, side: str, acceptance: int, pairs: dict[str, float]) -> dict:
    return _settlement("BOAV", unit, period, side, "2025-01-15T14:00:00Z", acceptanceId=acceptance,
                       acceptanceDuration="L", totalVolumeAccepted=round(sum(pairs.values()), 6), pairVolumes=pairs)


def message(message_id: str, dataset: str, rows: list[dict]) -> Message:
    return Message(message_id, json.dumps(json.dumps(rows)).encode(), dataset)


def load_scenario(wh, tmp_path) -> None:
    loader = IrisLoader(wh)
    loader.load([
        message("pn", "PN", [pn("T_ALPHA-1", 20, 100), pn("E_BRAVO-1", 21, 0), pn("T_CHARLIE-1", 22, 200),
                             pn("T_CHARLIE-1", 23, 200), pn("T_ECHO-1", 26, 0)]),
        message("bod", "BOD", [
            bod("T_ALPHA-1", 20, 1, 20, 50, 45), bod("T_ALPHA-1", 20, 2, 30, 70, 60),
            bod("T_ALPHA-1", 20, -1, -50, 30, 20),
            bod("E_BRAVO-1", 21, 1, 50, 80, 70), bod("E_BRAVO-1", 21, -1, -50, 10, 5),
            bod("T_CHARLIE-1", 22, -1, -100, 45, 30), bod("T_CHARLIE-1", 23, -1, -100, 45, 30),
            bod("T_ECHO-1", 26, 1, 100, 60, 50),
        ]),
        message("boalf", "BOALF", [
            boalf("T_ALPHA-1", 1001, (9, 30), (9, 40), 100, 140, (20, 20)),
            boalf("T_ALPHA-1", 1001, (9, 40), (10, 0), 140, 140, (20, 20)),
            boalf("E_BRAVO-1", 2001, (10, 0), (10, 30), 50, 50, (21, 21)),
            boalf("E_BRAVO-1", 2002, (10, 10), (10, 30), 20, 20, (21, 21)),
            boalf("T_CHARLIE-1", 3001, (10, 30), (11, 30), 150, 150, (22, 23)),
            boalf("T_ECHO-1", 5001, (12, 30), (13, 0), 10, 10, (26, 26)),
            boalf("T_ECHO-1", 5002, (12, 45), (13, 0), 30, 30, (26, 26)),
        ]),
        message("boav", "BOAV", [
            boav("T_ALPHA-1", 20, "offer", 1001, {"positive1": 9.0, "positive2": 7.333333}),
            boav("E_BRAVO-1", 21, "offer", 2001, {"positive1": 25.0}),
            boav("E_BRAVO-1", 21, "bid", 2002, {"positive1": -10.0}),
            boav("T_CHARLIE-1", 22, "bid", 3001, {"negative1": -25.0}),
            boav("T_CHARLIE-1", 23, "bid", 3001, {"negative1": -25.0}),
            boav("T_ECHO-1", 26, "offer", 5001, {"positive1": 5.0}),
        ]),
        message("ebocf-1", "EBOCF", [
            ebocf("T_ALPHA-1", 20, "offer", {"positive1": 450.0, "positive2": 513.33, "negative1": None}),
            ebocf("E_BRAVO-1", 21, "offer", {"positive1": 2000.0}),
            ebocf("E_BRAVO-1", 21, "bid", {"positive1": -700.0}),
            ebocf("T_CHARLIE-1", 22, "bid", {"negative1": -750.0}),
            ebocf("T_CHARLIE-1", 23, "bid", {"negative1": -750.0}),
            ebocf("T_ECHO-1", 26, "offer", {"positive1": 300.0}),
        ]),
    ])
    # re-issued after the R1 run: a newer createdDateTime replaces the row (the first issue goes to history)
    loader.load([message("ebocf-2", "EBOCF", [
        ebocf("T_CHARLIE-1", 23, "bid", {"negative1": -600.0}, created="2025-02-20T09:00:00Z")])])

    def units(run: str) -> list[UnitSpec]:
        charlie_23 = -25.0 if run == "SF" else -20.0
        return [
            UnitSpec("T_ALPHA-1", "GENCO", bo4={20: [(1, 45.0, 50.0, 0.0, 9.0), (2, 60.0, 70.0, 0.0, 7.333333)]},
                     bo3={20: [1001]}),
            UnitSpec("E_BRAVO-1", "GENCO", non_delivery={21: 100.0}, bo4={21: [(1, 70.0, 80.0, -10.0, 25.0)]},
                     bo3={21: [2001, 2002]}),
            UnitSpec("T_CHARLIE-1", "GENCO", bo4={22: [(-1, 30.0, 45.0, -25.0, 0.0)],
                                                  23: [(-1, 30.0, 45.0, charlie_23, 0.0)]},
                     bo3={22: [3001], 23: [3001]}),
            UnitSpec("2__DELTA001", "SUPPLYCO", bo4={25: [(1, 90.0, 100.0, 0.0, 5.0)]}, bo3={25: [4001]}),
            UnitSpec("T_ECHO-1", "GENCO", bo4={26: [(1, 50.0, 60.0, 0.0, 5.0)]}, bo3={26: [5001]}),
        ]

    for run, created in (("SF", dt.datetime(2025, 1, 16, 9)), ("R1", dt.datetime(2025, 2, 20, 9))):
        assert load_file(wh, write_file(tmp_path / run, DAY, run, created, units(run))).status == "loaded"
    # the next day is settled but has no IRIS data at all: not compared, counted in the summary
    next_day = [UnitSpec("2__DELTA001", "SUPPLYCO", bo4={1: [(1, 90.0, 100.0, 0.0, 5.0)]})]
    path = write_file(tmp_path / "next", NEXT_DAY, "SF", dt.datetime(2025, 1, 17, 9), next_day)
    assert load_file(wh, path).status == "loaded"


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def rec_wh(request, tmp_path):
    wh = request.getfixturevalue("wh" if request.param == "duckdb" else "bq")
    load_scenario(wh, tmp_path)
    return wh


@pytest.fixture
def rec_duck(wh, tmp_path):
    """The scenario on DuckDB only: the drill-downs below; both engines give the same sections (the first
    test here, and the demo-wide parity test, run on BigQuery too)."""
    load_scenario(wh, tmp_path)
    return wh


def _by_unit(result) -> dict[str, dict]:
    return {r["bm_unit_id"]: r for r in result.sections["by_unit"].to_pylist()}


def test_each_unit_day_shows_recompute_indicative_and_settled_cash_with_the_reason(rec_wh):
    result = run_report(rec_wh, "reconciliation", ReportOptions(date_from=DAY, date_to=DAY))
    rows = _by_unit(result)
    assert set(rows) == {"T_ALPHA-1", "E_BRAVO-1", "T_CHARLIE-1", "2__DELTA001", "T_ECHO-1"}
    pick = ("recompute_volume_mwh", "recompute_cash_gbp", "indicative_cash_gbp", "settled_cash_gbp", "settled_run",
            "non_delivery_charge_gbp", "difference_gbp", "reason")
    got = {unit: tuple(row[k] for k in pick) for unit, row in rows.items()}
    assert got == {
        "T_ALPHA-1": (16.333, 963.33, 963.33, 963.33, "R1", 0.0, 0.0, "reconciled"),
        "E_BRAVO-1": (15.0, 1300.0, 1300.0, 1300.0, "R1", 100.0, 0.0, "non_delivery"),
        "T_CHARLIE-1": (-50.0, -1500.0, -1350.0, -1350.0, "R1", 0.0, 150.0, "reissued"),
        "2__DELTA001": (None, None, None, 500.0, "R1", 0.0, 500.0, "no_acceptance_data"),
        "T_ECHO-1": (10.0, 600.0, 300.0, 300.0, "R1", 0.0, -300.0, "acceptance_excluded"),
    }
    assert rows["T_CHARLIE-1"]["reasons"] == "reconciled,reissued"
    assert rows["T_ALPHA-1"]["indicative_volume_mwh"] == 16.333
    assert rows["E_BRAVO-1"]["naive_volume_mwh"] == 31.667 and rows["E_BRAVO-1"]["naive_cash_gbp"] == 2533.33


def test_a_unit_asked_for_by_a_near_miss_id_is_warned_with_the_settled_id_it_probably_meant(rec_wh):
    result = run_report(rec_wh, "reconciliation",
                        ReportOptions(date_from=DAY, date_to=DAY, units=["DELTA001", "t_alpha-1", "T_ALPHA-1", "NOPE"]))
    assert set(_by_unit(result)) == {"T_ALPHA-1"}  # ids join exactly: nothing is guessed
    unit_warnings = [w for w in result.warnings if w.startswith("--unit")]
    assert unit_warnings == [
        f"--unit DELTA001: no settled data from {DAY} to {DAY} (ids join exactly; did you mean 2__DELTA001?)",
        f"--unit t_alpha-1: no settled data from {DAY} to {DAY} (ids join exactly; did you mean T_ALPHA-1?)",
        f"--unit NOPE: no settled data from {DAY} to {DAY} (ids join exactly)",
    ]


def test_a_move_back_through_an_offer_band_is_bid_volume_at_that_pairs_bid_price(rec_duck):
    result = run_report(rec_duck, "reconciliation", ReportOptions(date_from=DAY, date_to=DAY, units=["E_BRAVO-1"]))
    acceptances = {r["acceptance_number"]: r for r in result.sections["by_acceptance"].to_pylist()}
    assert set(acceptances) == {2001, 2002}
    assert (acceptances[2001]["recompute_offer_volume_mwh"], acceptances[2001]["recompute_cash_gbp"]) == (25.0, 2000.0)
    second = acceptances[2002]
    assert (second["recompute_offer_volume_mwh"], second["recompute_bid_volume_mwh"], second["recompute_cash_gbp"],
            second["pairs"], second["indicative_volume_mwh"]) == (0.0, -10.0, -700.0, "1", -10.0)
    assert set(_by_unit(result)) == {"E_BRAVO-1"}


def test_an_acceptance_over_two_periods_is_split_at_the_boundary_and_a_later_run_explains_the_change(rec_duck):
    result = run_report(rec_duck, "reconciliation", ReportOptions(date_from=DAY, date_to=DAY, units=["T_CHARLIE-1"]))
    periods = {r["settlement_period"]: r for r in result.sections["by_period"].to_pylist()}
    assert set(periods) == {22, 23}
    assert [(p["recompute_volume_mwh"], p["recompute_cash_gbp"], p["settled_cash_gbp"], p["reason"])
            for p in (periods[22], periods[23])] == [(-25.0, -750.0, -750.0, "reconciled"),
                                                     (-25.0, -750.0, -600.0, "reissued")]
    assert periods[23]["first_indicative_cash_gbp"] == -750.0 and periods[23]["indicative_cash_gbp"] == -600.0


def test_summary_states_the_share_of_settled_cash_explained_and_the_naive_figure(rec_wh):
    result = run_report(rec_wh, "reconciliation", ReportOptions(date_from=DAY, date_to=NEXT_DAY))
    assert {r["settlement_date"] for r in result.sections["by_unit"].to_pylist()} == {DAY}
    row = result.sections["summary"].to_pylist()[0]
    not_compared = (row["dates_compared"], row["dates_without_iris_data"], row["settled_cash_not_compared_gbp"])
    assert not_compared == (1, 1, 500.0)
    assert row["settled_cash_gbp"] == 1713.33
    assert row["settled_share_reconciled"] == round((963.33 + 1300 + 750) / 4413.33, 4)
    assert row["settled_share_explained"] == 1.0 and row["unexplained_gbp"] == 0.0
    # ALPHA 3,316.67 (levels 100..140 at £50) + BRAVO 2,533.33 + CHARLIE 150 MW for an hour at £30 (it has
    # no offer pair) + ECHO (5 + 7.5) MWh x £60
    assert row["naive_boalf_cash_gbp"] == round(3316.67 + 2533.33 + 4500 + 750, 2)


def test_ebocf_pairs_become_one_row_per_pair_and_the_reissue_is_kept_in_history(rec_duck):
    pairs = rec_duck.query_rows(
        f"SELECT bm_unit, side, pair_id, pair_cashflow_gbp FROM {rec_duck.ref('bmrs_ebocf_pairs')} "
        "WHERE bm_unit = 'T_ALPHA-1' ORDER BY pair_id")
    assert [(r["side"], r["pair_id"], r["pair_cashflow_gbp"]) for r in pairs] == [("offer", 1, 450.0),
                                                                                   ("offer", 2, 513.33)]
    history = rec_duck.query_rows(f"SELECT total_cashflow FROM {rec_duck.ref('bmrs_ebocf_history')}")
    assert [r["total_cashflow"] for r in history] == [-750.0]


# ---------------------------------------------------------------------------------------- against the reference
def _random_day(day: dt.date, seed: int) -> tuple[list[dict], list[dict], list[dict]]:
    """PN, BOD and BOALF rows for three units over ``day``: ramps, bands that vary by period, acceptances
    that span periods and supersede each other, levels either side of zero."""
    rng = random.Random(seed)
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: E731
    pn_rows, bod_rows, boalf_rows = [], [], []
    number = 100
    for unit in ("T_RAND-1", "E_RAND-2", "2__RAND003"):
        for period in range(1, periods_in_day(day) + 1):
            start = period_start_utc(day, period)
            cuts = sorted(rng.sample(range(1, 30), k=rng.randint(0, 2)))
            level = rng.randint(-100, 300)
            for a, b in zip([0, *cuts], [*cuts, 30]):
                nxt = level + rng.randint(-40, 40)
                pn_rows.append({"dataset": "PN", "settlementDate": day.isoformat(), "settlementPeriod": period,
                                "timeFrom": z(start + dt.timedelta(minutes=a)),
                                "timeTo": z(start + dt.timedelta(minutes=b)), "levelFrom": level, "levelTo": nxt,
                                "bmUnit": unit})
                level = nxt
            for pair in (-3, -2, -1, 1, 2, 3):
                size = rng.randint(5, 60) * (1 if pair > 0 else -1)
                offer = round(rng.uniform(40, 200), 2) + 10 * pair
                bod_rows.append({"dataset": "BOD", "settlementDate": day.isoformat(), "settlementPeriod": period,
                                 "timeFrom": z(start), "timeTo": z(start + dt.timedelta(minutes=30)), "levelFrom": size,
                                 "levelTo": size + rng.choice((0, 0, 10)) * (1 if pair > 0 else -1), "pairId": pair,
                                 "offer": offer, "bid": round(offer - rng.uniform(5, 30), 2), "bmUnit": unit})
        first, last = period_start_utc(day, 1), period_start_utc(day, periods_in_day(day))
        for _ in range(8):
            number += rng.randint(1, 3)
            at = first + dt.timedelta(minutes=rng.randint(0, int((last - first).total_seconds() // 60)))
            level = rng.randint(-150, 400)
            for _ in range(rng.randint(1, 3)):
                nxt_t = at + dt.timedelta(minutes=rng.choice((5, 10, 30, 45, 90)))
                nxt = level + rng.randint(-120, 120)
                boalf_rows.append({"dataset": "BOALF", "settlementDate": day.isoformat(), "settlementPeriodFrom": 1,
                                   "settlementPeriodTo": 1, "timeFrom": z(at), "timeTo": z(nxt_t), "levelFrom": level,
                                   "levelTo": nxt, "acceptanceNumber": number, "acceptanceTime": z(at),
                                   "rrFlag": False, "bmUnit": unit})
                at, level = nxt_t, nxt
    return pn_rows, bod_rows, boalf_rows


def _reference(day: dt.date, pn_rows, bod_rows, boalf_rows) -> dict[tuple, list[float]]:
    """The minute-by-minute reference (core.t3), per (unit, period, acceptance): offer, bid MWh and £."""
    t = lambda s: dt.datetime.fromisoformat(s.replace("Z", "+00:00"))  # noqa: E731
    seg = lambda r: Segment(t(r["timeFrom"]), t(r["timeTo"]), r["levelFrom"], r["levelTo"])  # noqa: E731
    periods = [(day, p, period_start_utc(day, p)) for p in range(1, periods_in_day(day) + 1)]
    out: dict[tuple, list[float]] = {}
    for unit in sorted({r["bmUnit"] for r in boalf_rows}):
        acceptances: dict[int, list[Segment]] = {}
        for r in boalf_rows:
            if r["bmUnit"] == unit:
                acceptances.setdefault(r["acceptanceNumber"], []).append(seg(r))
        pairs = [Pair(r["pairId"], seg(r), r["offer"], r["bid"]) for r in bod_rows if r["bmUnit"] == unit]
        fpn = [seg(r) for r in pn_rows if r["bmUnit"] == unit]
        for (_, period, number, _), cell in accepted(periods, fpn, acceptances, pairs).items():
            total = out.setdefault((unit, period, number), [0.0, 0.0, 0.0])
            total[0] += cell[0]
            total[1] += cell[1]
            total[2] += cell[2] + cell[3]
    return out


@pytest.mark.parametrize("day", [dt.date(2025, 3, 30), dt.date(2025, 6, 4), dt.date(2025, 10, 26)],
                         ids=["46-periods", "48-periods", "50-periods"])
def test_the_sql_recompute_matches_the_minute_by_minute_reference(wh, day):
    pn_rows, bod_rows, boalf_rows = _random_day(day, seed=day.toordinal())
    IrisLoader(wh).load([message("pn", "PN", pn_rows), message("bod", "BOD", bod_rows),
                         message("boalf", "BOALF", boalf_rows)])
    result = run_report(wh, "reconciliation", ReportOptions(date_from=day, date_to=day), only={"by_acceptance"})
    figures = ("recompute_offer_volume_mwh", "recompute_bid_volume_mwh", "recompute_cash_gbp")
    got = {(r["bm_unit_id"], r["settlement_period"], r["acceptance_number"]): tuple(r[f] or 0.0 for f in figures)
           for r in result.sections["by_acceptance"].to_pylist()}
    expected = _reference(day, pn_rows, bod_rows, boalf_rows)
    moved = {k for k, v in got.items() if any(abs(x) > 0.0015 for x in v)}
    assert moved == {k for k, v in expected.items() if any(abs(x) > 0.0015 for x in v)}
    assert len(moved) > 30 and len({a for _, _, a in moved}) == 24  # every acceptance priced somewhere
    for key in moved:
        offer, bid, cash = expected[key]
        assert got[key][0] == pytest.approx(offer, abs=0.0011), key
        assert got[key][1] == pytest.approx(bid, abs=0.0011), key
        assert got[key][2] == pytest.approx(cash, abs=0.011), key


def test_settlements_own_acceptance_list_tells_an_excluded_acceptance_without_elexons_boav(rec_duck):
    rec_duck.execute(f"DELETE FROM {rec_duck.ref('bmrs_boav')} WHERE bm_unit = 'T_ECHO-1'")
    result = run_report(rec_duck, "reconciliation", ReportOptions(date_from=DAY, date_to=DAY, units=["T_ECHO-1"]))
    row = _by_unit(result)["T_ECHO-1"]
    assert (row["indicative_volume_mwh"], row["difference_gbp"], row["reason"]) == (None, -300.0, "acceptance_excluded")
    bo3 = rec_duck.query_rows(f"SELECT settlement_period, acceptance_number, acceptance_time FROM "
                            f"{rec_duck.ref('p114_bo3_canonical')} WHERE bm_unit_id = 'T_ECHO-1'")
    assert bo3 == [{"settlement_period": 26, "acceptance_number": 5001,
                    "acceptance_time": dt.datetime(2025, 1, 15, 9, 0)}]
