"""Every report's SQL against fixtures whose answers are worked out by hand below, on DuckDB and
on BigQuery (the emulator): the same numbers must come out of both engines.

Fixture (two clock-change days, several runs, a V__, a 2__, a T_ and a tiny E_ unit):

* 2024-03-31 (46 periods): II (superseded) and SF (canonical). 2024-10-27 (50 periods): II and R1
  (canonical; its BPI records for periods 49 and 50 are missing).
* V__AFLEX001 (lead party VLPCO), 0.5 MWh every period in the canonical runs (0.4 and 0.3 in II).
  SF 31 Mar: period 10 offer 2.0 MWh at £100 (+£200.00); period 11 bid -1.0 MWh at £30 (-£30.00),
  non-delivery charge £5.00. R1 27 Oct: period 49 offer 1.0 MWh at £80 (+£80.00).
  II 31 Mar (must be ignored): period 10 offer 3.0 MWh at £100.
* 2__AGOLD001 (GOLD) -2.0 MWh every period; T_DRAX-1 (DRAX) 10.0 MWh every period, SF 31 Mar
  period 20 bid -4.0 MWh at £25 (-£100.00); E_TINY-1 (DRAX) 0.005 MWh every period.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest

from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader
from ingest.p114.load import load_file
from reporting.reference import load_bmunits
from reporting.reports import REPORTS, ReportError, ReportOptions, run_report
from tests.s0142_builder import UnitSpec, write_file

SHORT, LONG = dt.date(2024, 3, 31), dt.date(2024, 10, 27)
UTC = dt.timezone.utc


def units(run: str, day: dt.date) -> list[UnitSpec]:
    canonical = run in ("SF", "R1")
    vlp = UnitSpec("V__AFLEX001", "VLPCO", 0.5 if canonical else (0.4 if day == SHORT else 0.3))
    drax = UnitSpec("T_DRAX-1", "DRAX", 10.0)
    if day == SHORT and canonical:
        vlp.bo4 = {10: [(1, 20.0, 100.0, 0.0, 2.0)], 11: [(-1, 30.0, 90.0, -1.0, 0.0)]}
        vlp.non_delivery = {11: 5.0}
        drax.bo4 = {20: [(-1, 25.0, 60.0, -4.0, 0.0)]}
    elif day == SHORT:
        vlp.bo4 = {10: [(1, 20.0, 100.0, 0.0, 3.0)]}
    elif canonical:
        vlp.bo4 = {49: [(1, 10.0, 80.0, 0.0, 1.0)]}
    result = [vlp, UnitSpec("2__AGOLD001", "GOLD", -2.0), drax, UnitSpec("E_TINY-1", "DRAX", 0.005)]
    if day == LONG and canonical:
        for u in result:
            u.skip_bpi_periods = (49, 50)
    return result


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def fixture_wh(request, tmp_path):
    """The fixture loaded into each backend: the same hand-computed answers must come out of both."""
    return load_fixture(request.getfixturevalue("wh" if request.param == "duckdb" else "bq"), tmp_path)


def load_fixture(wh, tmp_path):
    """Load the fixture described at the top of this module into ``wh``."""
    for day, run, created in [
        (SHORT, "II", dt.datetime(2024, 4, 8, 12)), (SHORT, "SF", dt.datetime(2024, 4, 26, 12)),
        (LONG, "II", dt.datetime(2024, 11, 1, 12)), (LONG, "R1", dt.datetime(2024, 12, 16, 12)),
    ]:
        assert load_file(wh, write_file(tmp_path, day, run, created, units(run, day))).status == "loaded"
    load_iris(wh)
    return wh


def rows(result, section):
    return result.sections[section].to_pylist()


# ---------------------------------------------------------------------------------------- vlp_revenue
VLP_SHORT = {"settlement_run": "SF", "periods": 46, "metered_volume_mwh": 23.0, "accepted_bid_volume_mwh": -1.0,
             "accepted_offer_volume_mwh": 2.0, "bm_cashflow_gbp": 170.0, "non_delivery_charge_gbp": 5.0,
             "net_bm_revenue_gbp": 165.0}
VLP_LONG = {"settlement_run": "R1", "periods": 50, "metered_volume_mwh": 25.0, "accepted_bid_volume_mwh": 0.0,
            "accepted_offer_volume_mwh": 1.0, "bm_cashflow_gbp": 80.0, "non_delivery_charge_gbp": 0.0,
            "net_bm_revenue_gbp": 80.0}


def test_vlp_revenue_uses_the_canonical_run_and_v_units_when_no_reference_data(fixture_wh):
    result = run_report(fixture_wh, "vlp_revenue", ReportOptions(date_from=SHORT, date_to=LONG))
    got = rows(result, "by_unit")
    assert got == [
        {"settlement_date": SHORT, "row_type": "unit", "bm_unit_id": "V__AFLEX001", "lead_party_id": "VLPCO", **VLP_SHORT},
        {"settlement_date": SHORT, "row_type": "daily total", "bm_unit_id": None, "lead_party_id": None, **VLP_SHORT},
        {"settlement_date": LONG, "row_type": "unit", "bm_unit_id": "V__AFLEX001", "lead_party_id": "VLPCO", **VLP_LONG},
        {"settlement_date": LONG, "row_type": "daily total", "bm_unit_id": None, "lead_party_id": None, **VLP_LONG},
    ]
    assert any("no BM unit reference data" in w for w in result.warnings)


def test_mart_view_has_one_row_per_unit_and_date_with_the_required_columns(fixture_wh):
    run_report(fixture_wh, "vlp_revenue", ReportOptions(date_from=SHORT, date_to=LONG))
    mart = fixture_wh.query_rows(f"SELECT * FROM {fixture_wh.ref('mart_vlp_revenue_p114')} ORDER BY settlement_date")
    assert [m["settlement_date"] for m in mart] == [SHORT, LONG]
    required = ["settlement_date", "bm_unit_id", "lead_party_id", "settlement_run", "metered_volume_mwh",
                "accepted_bid_volume_mwh", "accepted_offer_volume_mwh", "bm_cashflow_gbp", "non_delivery_charge_gbp",
                "net_bm_revenue_gbp"]
    assert set(required) <= set(mart[0])
    assert {k: mart[0][k] for k in VLP_SHORT} == VLP_SHORT


def reference(units_: list[tuple[str, str]]) -> bytes:
    return json.dumps([{"elexonBmUnit": u, "nationalGridBmUnit": u[3:], "bmUnitType": t, "leadPartyName": "X",
                        "fuelType": "OTHER", "eic": None, "fpnFlag": True} for u, t in units_]).encode()


def test_reference_data_decides_which_units_are_vlp_units_on_exact_ids(fixture_wh):
    # the reference data knows a different secondary unit only: V__AFLEX001 is left out, and said so
    load_bmunits(fixture_wh, body=reference([("V__BOTHER01", "V"), ("T_DRAX-1", "T"), ("2__AGOLD001", "S")]))
    result = run_report(fixture_wh, "vlp_revenue", ReportOptions(date_from=SHORT, date_to=LONG))
    assert rows(result, "by_unit") == []
    assert any("V__AFLEX001" in w and "not in the reference data" in w for w in result.warnings)
    # ... and a reference entry with the exact id brings it in
    load_bmunits(fixture_wh, body=reference([("V__AFLEX001", "V")]))
    result = run_report(fixture_wh, "vlp_revenue", ReportOptions(date_from=SHORT, date_to=LONG))
    assert [r["bm_unit_id"] for r in rows(result, "by_unit")] == ["V__AFLEX001", None, "V__AFLEX001", None]
    assert result.warnings == []


def test_configured_vlp_units_are_added_by_exact_id(fixture_wh):
    load_bmunits(fixture_wh, body=reference([("V__AFLEX001", "V")]))
    options = ReportOptions(date_from=SHORT, date_to=SHORT, vlp_units=["2__AGOLD001", "AGOLD001"])
    got = [r for r in rows(run_report(fixture_wh, "vlp_revenue", options), "by_unit") if r["row_type"] == "unit"]
    assert [r["bm_unit_id"] for r in got] == ["2__AGOLD001", "V__AFLEX001"]  # 'AGOLD001' matches nothing
    assert got[0]["metered_volume_mwh"] == -92.0 and got[0]["net_bm_revenue_gbp"] == 0.0


# ---------------------------------------------------------------------------------------- self_balancing
def test_self_balancing_per_unit_and_summary(fixture_wh):
    result = run_report(fixture_wh, "self_balancing", ReportOptions(date_from=SHORT, date_to=LONG, population="all"))
    assert rows(result, "units") == [
        {"bm_unit_id": "T_DRAX-1", "lead_party_id": "DRAX", "periods": 96, "metered_volume_abs_mwh": 960.0,
         "system_directed_volume_mwh": 4.0, "self_balancing_volume_mwh": 956.0, "self_balancing_share": 0.9958,
         "classification": "self-balancing"},
        {"bm_unit_id": "2__AGOLD001", "lead_party_id": "GOLD", "periods": 96, "metered_volume_abs_mwh": 192.0,
         "system_directed_volume_mwh": 0.0, "self_balancing_volume_mwh": 192.0, "self_balancing_share": 1.0,
         "classification": "self-balancing"},
        {"bm_unit_id": "V__AFLEX001", "lead_party_id": "VLPCO", "periods": 96, "metered_volume_abs_mwh": 48.0,
         "system_directed_volume_mwh": 4.0, "self_balancing_volume_mwh": 44.0, "self_balancing_share": 0.9167,
         "classification": "self-balancing"},
        {"bm_unit_id": "E_TINY-1", "lead_party_id": "DRAX", "periods": 96, "metered_volume_abs_mwh": 0.48,
         "system_directed_volume_mwh": 0.0, "self_balancing_volume_mwh": 0.48, "self_balancing_share": 1.0,
         "classification": "below minimum"},
    ]
    assert rows(result, "summary") == [{
        "bm_units": 4, "active_units": 3, "self_balancing_units": 3, "share_of_units": 1.0,
        "active_volume_mwh": 1200.0, "self_balancing_volume_mwh": 1192.0, "share_of_volume": 0.9933,
    }]
    assert "no cross-source id join" in result.definition
    # with no assets listed, the default population is the units with an acceptance
    default = run_report(fixture_wh, "self_balancing", ReportOptions(date_from=SHORT, date_to=LONG))
    assert [r["bm_unit_id"] for r in rows(default, "units")] == ["T_DRAX-1", "V__AFLEX001"]
    assert "Population: BM units with at least one accepted bid or offer" in default.definition


def test_self_balancing_threshold_and_minimum_change_the_classification(fixture_wh):
    result = run_report(fixture_wh, "self_balancing",
                        ReportOptions(date_from=SHORT, date_to=LONG, threshold=0.95, min_mwh=0.1, population="all"))
    classes = {r["bm_unit_id"]: r["classification"] for r in rows(result, "units")}
    assert classes == {"T_DRAX-1": "self-balancing", "2__AGOLD001": "self-balancing",
                       "V__AFLEX001": "system-directed", "E_TINY-1": "self-balancing"}
    assert rows(result, "summary")[0]["share_of_units"] == 0.75
    with pytest.raises(ReportError, match="threshold must be between 0 and 1"):
        run_report(fixture_wh, "self_balancing", ReportOptions(threshold=1.5))


# ---------------------------------------------------------------------------------------- completeness
def test_completeness_counts_46_and_50_period_days_runs_missing_periods_and_overdue_runs(fixture_wh):
    result = run_report(fixture_wh, "completeness",
                        ReportOptions(date_from=dt.date(2024, 3, 30), date_to=dt.date(2024, 4, 1),
                                      today=dt.date(2024, 5, 1)))
    # 30 Mar (Saturday) and 1 Apr (Easter Monday): II due 8 Apr, SF due 23 Apr, R1 in late May
    assert rows(result, "p114") == [
        {"settlement_date": dt.date(2024, 3, 30), "expected_periods": 48, "runs_loaded": "", "canonical_run": None,
         "bm_units": 0, "periods_present": 0, "missing_period_count": 48, "missing_periods": "", "overdue_runs": "II,SF"},
        {"settlement_date": SHORT, "expected_periods": 46, "runs_loaded": "II,SF", "canonical_run": "SF",
         "bm_units": 4, "periods_present": 46, "missing_period_count": 0, "missing_periods": "", "overdue_runs": ""},
        {"settlement_date": dt.date(2024, 4, 1), "expected_periods": 48, "runs_loaded": "", "canonical_run": None,
         "bm_units": 0, "periods_present": 0, "missing_period_count": 48, "missing_periods": "", "overdue_runs": "II,SF"},
    ]
    # 27 Oct 2024: R2 due 19 Feb 2025, R3 due 3 Jun 2025 (150 working days, bank holidays skipped)
    long = rows(run_report(fixture_wh, "completeness", ReportOptions(date_from=LONG, date_to=LONG,
                                                                      today=dt.date(2025, 6, 10))), "p114")
    assert long == [{"settlement_date": LONG, "expected_periods": 50, "runs_loaded": "II,R1", "canonical_run": "R1",
                     "bm_units": 4, "periods_present": 48, "missing_period_count": 2, "missing_periods": "49,50",
                     "overdue_runs": "R2,R3"}]
    early = run_report(fixture_wh, "completeness", ReportOptions(date_from=LONG, date_to=LONG, today=dt.date(2025, 6, 1)))
    assert rows(early, "p114")[0]["overdue_runs"] == "R2"


def test_completeness_of_iris_counts_event_times_and_gaps(fixture_wh):
    result = run_report(fixture_wh, "completeness", ReportOptions(date_from=LONG, date_to=LONG))
    got = {r["dataset"]: r for r in rows(result, "iris")}
    freq = got["FREQ"]
    # 00:00:00-00:59:45 every 15 s (240), minus 00:10:00-00:11:45 (8): a gap of 135 s, and nothing
    # from 00:59:45 to midnight (82,815 s): the end of the day counts too
    assert (freq["row_count"], freq["event_times"], freq["expected_event_times"]) == (232, 232, 5760)
    assert (freq["gaps"], freq["longest_gap_s"], freq["cadence_s"]) == (2, 82815, 15)
    # the same day while it is still running at 01:00:30: only the inner gap and 45 s at the end
    running = run_report(fixture_wh, "completeness", ReportOptions(
        date_from=LONG, date_to=LONG, now=dt.datetime(2024, 10, 27, 1, 0, 30, tzinfo=UTC)))
    freq = next(r for r in rows(running, "iris") if r["dataset"] == "FREQ")
    assert (freq["gaps"], freq["longest_gap_s"]) == (2, 135)
    assert (got["FUELINST"]["row_count"], got["FUELINST"]["event_times"]) == (14, 2)  # 7 fuel types, 2 publications


# ---------------------------------------------------------------------------------------- live_grid
def iris_message(message_id: str, dataset: str, records: list[dict]) -> Message:
    return Message(message_id, json.dumps(json.dumps(records)).encode(), dataset)


def load_iris(wh):
    start = dt.datetime(2024, 10, 27, tzinfo=UTC)
    z = lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000Z")  # noqa: E731
    freq = [{"dataset": "FREQ", "measurementTime": z(start + dt.timedelta(seconds=15 * i)),
             "frequency": 49.95 if i == 239 else 50.0} for i in range(240) if not 40 <= i < 48]
    fuel = [{"dataset": "FUELINST", "publishTime": z(start + dt.timedelta(minutes=m)),
             "startTime": z(start + dt.timedelta(minutes=m - 5)), "settlementDate": "2024-10-27",
             "settlementPeriod": 2, "fuelType": f, "generation": g * (1 if m == 55 else 2)}
            for m in (50, 55) for f, g in (("CCGT", 10000), ("WIND", 5000), ("NUCLEAR", 4000), ("OCGT", 200),
                                           ("NPSHYD", 300), ("INTFR", 1000), ("INTNED", -800))]

    def acceptance(number, minute, rows_=1):
        t = start + dt.timedelta(minutes=minute)
        return [{"dataset": "BOALF", "acceptanceNumber": number, "acceptanceTime": z(t), "bmUnit": "T_DRAX-1",
                 "timeFrom": z(t + dt.timedelta(minutes=2 + k)), "timeTo": z(t + dt.timedelta(minutes=3 + k)),
                 "levelFrom": 0, "levelTo": 10, "settlementDate": "2024-10-27"} for k in range(rows_)]

    boalf = acceptance(1, 10, 2) + acceptance(2, 30) + acceptance(3, 59.75) + acceptance(4, -10)

    def limit(dataset, seq, unit, frm, to, lo, hi):
        return {"dataset": dataset, "bmUnit": unit, "notificationSequence": seq, "notificationTime": z(start),
                "timeFrom": z(start + dt.timedelta(minutes=frm)), "timeTo": z(start + dt.timedelta(minutes=to)),
                "levelFrom": lo, "levelTo": hi, "settlementDate": "2024-10-27", "settlementPeriod": 1}

    mels = [limit("MELS", 1, "A", 0, 120, 100, 100), limit("MELS", 2, "A", 30, 90, 200, 300),
            limit("MELS", 3, "B", 0, 60, 50, 50)]
    mils = [limit("MILS", 4, "A", 0, 60, -100, -100)]

    def remit(mrid, rev, publish_min, status, start_min, end_min, unavailable, unit=None, normal=1000.0, profile=None):
        return {"dataset": "REMIT", "mrid": mrid, "revisionNumber": rev, "publishTime": z(start + dt.timedelta(minutes=publish_min)),
                "eventStatus": status, "eventStartTime": z(start + dt.timedelta(minutes=start_min)),
                "eventEndTime": z(start + dt.timedelta(minutes=end_min)), "unavailableCapacity": unavailable,
                "normalCapacity": normal, "availableCapacity": normal - unavailable, "affectedUnit": unit or mrid,
                "assetId": f"T_{unit}" if unit else None,
                "outageProfile": [{"startTime": z(start + dt.timedelta(minutes=a)), "endTime": z(start + dt.timedelta(minutes=b)),
                                   "capacity": c} for a, b, c in profile or []]}

    remits = [remit("X", 1, 0, "Active", 0, 120, 200.0), remit("X", 2, 20, "Dismissed", 0, 120, 200.0),
              remit("Y", 1, 5, "Active", -60, 180, 300.0), remit("Z", 1, 5, "Active", 120, 240, 500.0),
              # BIG-1 (981 MW): two overlapping outages; A's second revision (published later) supersedes its first
              remit("A", 1, 1, "Active", -30, 300, 892.0, "BIG-1", 981.0),
              remit("A", 2, 2, "Active", -30, 300, 781.0, "BIG-1", 981.0),
              remit("B", 1, 3, "Active", 0, 120, 392.0, "BIG-1", 981.0),
              # PRO-1 (500 MW): 0 MW available for the whole event, but its profile has 350 MW back from 00:30
              remit("C", 1, 4, "Active", 0, 120, 500.0, "PRO-1", 500.0, [(0, 30, 0.0), (30, 120, 350.0)]),
              # published after the as-of time: not yet known
              remit("D", 1, 61, "Active", 0, 120, 100.0, "PRO-1", 500.0)]
    IrisLoader(wh).load([iris_message("F.json", "FREQ", freq), iris_message("FU.json", "FUELINST", fuel),
                         iris_message("B.json", "BOALF", boalf), iris_message("ME.json", "MELS", mels),
                         iris_message("MI.json", "MILS", mils), iris_message("R.json", "REMIT", remits)])


def test_live_grid_headline_mix_frequency_and_outages(fixture_wh):
    result = run_report(fixture_wh, "live_grid")
    as_of = dt.datetime(2024, 10, 27, 0, 59, 45, tzinfo=UTC)
    # MEL: unit A's latest submission (seq 2, 200->300 MW over 00:30-01:30) at 00:59:45 is
    # 200 + 100 * 1785/3600 = 249.58; unit B 50 -> 299.6. MIL: -100.
    assert rows(result, "headline") == [{
        "as_of": as_of, "frequency_hz": 49.95, "generation_mw": 19500, "interconnector_import_mw": 1000,
        "interconnector_export_mw": 800, "acceptances_last_hour": 3,
        "total_mel_mw": 299.6, "total_mil_mw": -100.0, "active_outages": 4, "unavailable_mw": 1231.0,
    }]
    # Generation excludes interconnectors: 10000 + 200 + 5000 + 4000 + 300 = 19500 MW; INTFR imports 1000 MW,
    # INTNED exports 800 MW (shown apart, never in the shares).
    assert rows(result, "fuel_mix") == [
        {"fuel_group": "gas", "fuel_types": "CCGT,OCGT", "generation_mw": 10200, "share": 0.5231},
        {"fuel_group": "wind", "fuel_types": "WIND", "generation_mw": 5000, "share": 0.2564},
        {"fuel_group": "nuclear", "fuel_types": "NUCLEAR", "generation_mw": 4000, "share": 0.2051},
        {"fuel_group": "hydro", "fuel_types": "NPSHYD", "generation_mw": 300, "share": 0.0154},
    ]
    assert rows(result, "interconnectors") == [
        {"interconnector": "INTFR", "flow_mw": 1000, "direction": "import"},
        {"interconnector": "INTNED", "flow_mw": -800, "direction": "export"},
    ]
    series = rows(result, "frequency")
    assert len(series) == 232 and series[-1] == {"measurement_time": as_of, "frequency_hz": 49.95}
    # BIG-1: the lowest available over A (latest revision: 200) and B (589) is 200, so 781 MW, not 781 + 392;
    # PRO-1: the profile's 350 MW at 00:59:45, so 150 MW; Y: 300 MW. X was dismissed, Z starts later.
    outages = {(o["affected_unit"], o["asset_id"]): o for o in rows(result, "outages")}
    assert list(outages) == [("BIG-1", "T_BIG-1"), ("Y", None), ("PRO-1", "T_PRO-1")]
    assert {k: (o["outages"], o["mrids"], o["normal_capacity_mw"], o["available_mw"], o["unavailable_mw"])
            for k, o in outages.items()} == {("BIG-1", "T_BIG-1"): (2, "A,B", 981.0, 200.0, 781.0),
                                            ("Y", None): (1, "Y", 1000.0, 700.0, 300.0),
                                            ("PRO-1", "T_PRO-1"): (1, "C", 500.0, 350.0, 150.0)}
    assert any("hours old" in w for w in result.warnings)


def test_a_report_runs_only_the_sections_asked_for(fixture_wh):
    result = run_report(fixture_wh, "live_grid", only={"fuel_mix", "outages"})
    assert list(result.sections) == ["fuel_mix", "outages"] and rows(result, "fuel_mix")[0]["fuel_group"] == "gas"


def test_an_unknown_report_is_a_clear_error(fixture_wh):
    with pytest.raises(ReportError, match="unknown report 'nope'; reports: alerts, completeness, live_grid, reconciliation, revenue, self_balancing, vlp_revenue"):
        run_report(fixture_wh, "nope")


@pytest.mark.parametrize("report", sorted(name for name, spec in REPORTS.items() if spec.stage))
def test_sections_sharing_a_kept_stage_match_each_section_computed_alone(wh, tmp_path, monkeypatch, report):
    """Two or more sections of a report read its shared CTE, computed once and kept (a DuckDB temporary
    table); each section must come out exactly as it does alone, with the CTE inline, and nothing kept stays."""
    load_fixture(wh, tmp_path)
    kept = []
    keep = wh.keep
    monkeypatch.setattr(wh, "keep", lambda name, sql, params=None: kept.append(name) or keep(name, sql, params))
    options = ReportOptions(date_from=SHORT, date_to=LONG)
    together = run_report(wh, report, options)
    assert kept == [f"stage_{report}_{REPORTS[report].stage.cte}"]
    staged = [s.name for s in REPORTS[report].sections if s.staged]
    assert any(together.sections[s].num_rows for s in staged)
    for section in together.sections:
        alone = run_report(wh, report, options, only={section})
        assert alone.sections[section].to_pylist() == together.sections[section].to_pylist(), section
    assert len(kept) == 1  # one section alone computes it inline
    assert wh.scalar("SELECT COUNT(*) FROM duckdb_tables() WHERE temporary") == 0
