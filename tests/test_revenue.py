"""The revenue report, the assets and the self-balancing populations, against answers worked out by
hand below, on DuckDB and on BigQuery (the emulator).

Fixture:

* 30 Mar 2025 (46 periods, flow v013), runs II and SF (canonical). System price £40 in periods 1-4,
  £150 in 35-38, £60 otherwise; supplier sourcing cost (SPI 53) £90; MID (APXMIDP) £55 every period.
  - 2__FBPGM002 (SUPPLYCO; asset: battery 50 MW / 100 MWh), TLM 0.99: imports 25 MWh in periods 1-4
    (100 MWh), exports 24 MWh in 35-38 (96 MWh). SF: period 36 offer 10 MWh at £120 (+£1,200),
    non-delivery £15 in period 37. II: the same offer at 8 MWh (+£960), no non-delivery.
  - V__AFLEX001 (VLPCO; asset: vlp): exports 2 MWh in periods 20 and 21; SF: period 20 offer 2 MWh at
    £90 (+£180) and a P415 compensation volume of 2 MWh (x £90 = £180). APC: VLPCO field 11 = £180,
    field 2 = £180; SUPPLYCO field 2 = £1,200.
  - I_IED-FRAN1 (an interconnector, exporting 500 MWh every period; period 10 bid -50 MWh at £30),
    T_DRAXX-1 (300 MWh every period; period 12 bid -10 MWh at £20), 2__FFSEN005 (0 MWh), V__BOTHER01
    (1 MWh every period, not an asset).
* 1 Jun 2024 (48 periods) SF, an older flow version (v011, pre-P415): V__AFLEX001 with a
  compensation volume the layout does not carry, and an offer of 1 MWh at £50 in period 5.

Assets (CSV): the battery, the VLP unit and 'FFSEN005' (a battery given by its National Grid id
without the settlement prefix, and no energy capacity).
"""

from __future__ import annotations

import datetime as dt

import pytest

from core.errors import AssetFileError
from ingest.iris.load import IrisLoader
from ingest.p114.load import load_file
from reporting.assets import import_assets, list_assets, read_asset_csv
from reporting.reports import ReportOptions, run_report
from tests.s0142_builder import UnitSpec, write_file
from tests.test_reports import iris_message
from tests.test_s0142_versions import older_shaped

DAY, OLD = dt.date(2025, 3, 30), dt.date(2024, 6, 1)
PRICES = {p: 40.0 for p in range(1, 5)} | {p: 150.0 for p in range(35, 39)}
ASSETS_CSV = """bm_unit_id,name,kind,power_mw,energy_mwh,lead_party
2__FBPGM002,Battery Park,battery,50,100,SUPPLYCO
V__AFLEX001,Flex portfolio,vlp,,,
FFSEN005,Sen battery,battery,20,,
"""


def day_units(run: str) -> list[UnitSpec]:
    battery = UnitSpec("2__FBPGM002", "SUPPLYCO", tlm=0.99,
                       metered={**{p: -25.0 for p in range(1, 5)}, **{p: 24.0 for p in range(35, 39)}})
    vlp = UnitSpec("V__AFLEX001", "VLPCO", metered={20: 2.0, 21: 2.0})
    if run == "SF":
        battery.bo4 = {36: [(1, 20.0, 120.0, 0.0, 10.0)]}
        battery.non_delivery = {37: 15.0}
        vlp.bo4 = {20: [(1, 10.0, 90.0, 0.0, 2.0)]}
        vlp.compensation_mwh = {20: 2.0}
    else:
        battery.bo4 = {36: [(1, 20.0, 120.0, 0.0, 8.0)]}
    return [battery, vlp,
            UnitSpec("I_IED-FRAN1", "NGIC", -500.0, bo4={10: [(-1, 30.0, 70.0, -50.0, 0.0)]}),
            UnitSpec("T_DRAXX-1", "DRAX", 300.0, bo4={12: [(-1, 20.0, 80.0, -10.0, 0.0)]}),
            UnitSpec("2__FFSEN005", "SUPPLYCO", 0.0), UnitSpec("V__BOTHER01", "OTHERVLP", 1.0)]


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def revenue_wh(request, tmp_path):
    wh = request.getfixturevalue("wh" if request.param == "duckdb" else "bq")
    apc = {"VLPCO": {2: 180.0, 11: 180.0}, "SUPPLYCO": {2: 1200.0}}
    for run, created in (("II", dt.datetime(2025, 4, 7, 9)), ("SF", dt.datetime(2025, 4, 25, 9))):
        path = write_file(tmp_path / run, DAY, run, created, day_units(run), prices=PRICES,
                          price=60.0, apc=apc if run == "SF" else None)
        assert load_file(wh, path).status == "loaded"
    old_vlp = UnitSpec("V__AFLEX001", "VLPCO", 0.5, bo4={5: [(1, 10.0, 50.0, 0.0, 1.0)]}, compensation_mwh={5: 1.0})
    path = write_file(tmp_path / "old", OLD, "SF", dt.datetime(2024, 6, 20, 9), [old_vlp], transform=older_shaped)
    assert load_file(wh, path).status == "loaded"
    start = dt.datetime(2025, 3, 30, tzinfo=dt.timezone.utc)
    mid = [{"dataset": "MID", "startTime": (start + dt.timedelta(minutes=30 * (p - 1))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "dataProvider": provider, "settlementDate": "2025-03-30", "settlementPeriod": p,
            "price": 55.0 if provider == "APXMIDP" else 0.0, "volume": 100.0 if provider == "APXMIDP" else 0.0}
           for p in range(1, 47) for provider in ("APXMIDP", "N2EXMIDP")]
    IrisLoader(wh).load([iris_message("MID.json", "MID", mid)])
    csv = tmp_path / "assets.csv"
    csv.write_text(ASSETS_CSV)
    assert import_assets(wh, csv) == 3
    return wh


def rows(result, section):
    return result.sections[section].to_pylist()


def test_revenue_per_asset_and_day_from_the_canonical_run_with_every_component(revenue_wh):
    result = run_report(revenue_wh, "revenue", ReportOptions(date_from=DAY, date_to=DAY))
    by_unit = {r["bm_unit_id"]: r for r in rows(result, "by_unit")}
    assert set(by_unit) == {"2__FBPGM002", "V__AFLEX001"}  # exact ids: FFSEN005 joins nothing
    battery = by_unit["2__FBPGM002"]
    # position: periods 1-4 -24.75 MWh x £40 = -3,960; 35, 37, 38: 23.76 x £150 = 10,692;
    # 36: (23.76 - 10) x £150 = 2,064 -> 8,796. At MID: (-99 + 71.28 + 13.76) x £55 = -767.80
    assert battery == {
        "settlement_date": DAY, "bm_unit_id": "2__FBPGM002", "asset_name": "Battery Park", "kind": "battery",
        "lead_party_id": "SUPPLYCO", "settlement_run": "SF", "flow_version": "013", "periods": 46,
        "bm_cashflow_gbp": 1200.0, "non_delivery_charge_gbp": 15.0, "vlp_compensation_gbp": 0.0,
        "net_bm_revenue_gbp": 1185.0, "export_mwh": 96.0, "import_mwh": 100.0,
        "export_loss_adjusted_mwh": 95.04, "import_loss_adjusted_mwh": 99.0, "throughput_mwh": 196.0,
        "full_cycles": 0.98, "accepted_bm_volume_mwh": 10.0, "energy_value_imbalance_gbp": 8796.0,
        "energy_value_mid_gbp": -767.8, "captured_spread_gbp_per_mwh": 110.0, "runs_loaded": "II,SF",
        # II: offer 8 MWh (+£960, no non-delivery) and a position 2 MWh longer in period 36 (+£300)
        "net_bm_revenue_change_gbp": 225.0, "energy_value_imbalance_change_gbp": -300.0,
    }
    vlp = by_unit["V__AFLEX001"]
    assert (vlp["bm_cashflow_gbp"], vlp["vlp_compensation_gbp"], vlp["net_bm_revenue_gbp"]) == (180.0, 180.0, 0.0)
    # period 20: 2 - 2 accepted = 0; period 21: 2 MWh x £60 = £120 (MID: x £55 = £110); no imports: no spread
    assert (vlp["energy_value_imbalance_gbp"], vlp["energy_value_mid_gbp"], vlp["captured_spread_gbp_per_mwh"]) \
        == (120.0, 110.0, None)
    assert vlp["full_cycles"] is None  # no energy capacity
    assert "value of the metered position IF the unit held no contracts" in result.definition
    assert "Population: the assets" in result.definition


def test_revenue_daily_components_assets_table_and_run_movement(revenue_wh):
    result = run_report(revenue_wh, "revenue", ReportOptions(date_from=DAY, date_to=DAY))
    assert rows(result, "daily") == [{
        "settlement_date": DAY, "settlement_run": "SF", "assets": 2, "bm_cashflow_gbp": 1380.0,
        "non_delivery_cost_gbp": -15.0, "vlp_compensation_cost_gbp": -180.0, "net_bm_revenue_gbp": 1185.0,
        "energy_value_imbalance_gbp": 8916.0}]
    assert [(r["bm_unit_id"], r["net_bm_revenue_gbp"]) for r in rows(result, "assets")] == \
        [("2__FBPGM002", 1185.0), ("V__AFLEX001", 0.0)]
    runs = [(r["bm_unit_id"], r["settlement_run"], r["is_canonical"], r["net_bm_revenue_gbp"], r["net_bm_revenue_change_gbp"])
            for r in rows(result, "runs")]
    assert runs == [("2__FBPGM002", "II", False, 960.0, None), ("2__FBPGM002", "SF", True, 1185.0, 225.0),
                    ("V__AFLEX001", "II", False, 0.0, None), ("V__AFLEX001", "SF", True, 0.0, 0.0)]
    periods = [r for r in rows(result, "by_period") if r["bm_unit_id"] == "2__FBPGM002"]
    assert len(periods) == 46 and sum(r["energy_value_imbalance_gbp"] for r in periods) == pytest.approx(8796.0)
    assert periods[35]["position_mwh"] == 13.76 and periods[35]["settlement_run"] == "SF"


def test_compensation_is_checked_against_apc_and_null_before_p415(revenue_wh):
    result = run_report(revenue_wh, "revenue", ReportOptions(date_from=OLD, date_to=DAY))
    checks = {(r["settlement_date"], r["lead_party_id"]): r for r in rows(result, "checks")}
    assert checks[(DAY, "VLPCO")]["compensation_check"] == "matches"
    assert checks[(DAY, "VLPCO")]["vlp_compensation_gbp"] == checks[(DAY, "VLPCO")]["apc_vlp_compensation_gbp"] == 180.0
    assert checks[(DAY, "SUPPLYCO")]["bm_cashflow_check"] == "matches"
    old = checks[(OLD, "VLPCO")]
    assert (old["flow_version"], old["vlp_compensation_gbp"], old["compensation_check"]) == ("011", None, "predates P415")
    old_unit = [r for r in rows(result, "by_unit") if r["settlement_date"] == OLD]
    assert [(r["bm_unit_id"], r["flow_version"], r["bm_cashflow_gbp"], r["vlp_compensation_gbp"], r["net_bm_revenue_gbp"])
            for r in old_unit] == [("V__AFLEX001", "011", 50.0, None, 50.0)]


def test_related_ids_are_warned_about_never_guessed(revenue_wh):
    result = run_report(revenue_wh, "revenue", ReportOptions(date_from=DAY, date_to=DAY))
    text = " | ".join(result.warnings)
    assert "FFSEN005 (did you mean 2__FFSEN005?)" in text
    assert "V__ unit(s) in the settlement data are not assets" in text and "V__BOTHER01" in text
    assert "no energy_mwh" in text


def test_importing_assets_says_at_once_which_ids_the_settlement_data_lacks(revenue_wh, tmp_path):
    from click.testing import CliRunner

    from run import cli

    if revenue_wh.dialect != "duckdb":
        pytest.skip("the command is the same on BigQuery; the warnings' SQL is covered above")
    csv = tmp_path / "again.csv"
    csv.write_text(ASSETS_CSV)
    revenue_wh.close()
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{revenue_wh.path}", "assets", "import", str(csv)])
    assert result.exit_code == 0, result.output
    assert ("warning: 1 asset(s) have no settlement data from 2024-06-01 to 2025-03-30 (ids join exactly): "
            "FFSEN005 (did you mean 2__FFSEN005?)") in result.output
    assert "battery asset(s) have no energy_mwh, so no full cycles: FFSEN005" in result.output
    assert "V__BOTHER01" not in result.output  # the report's concern, not the import's


def test_vlp_revenue_stays_the_vlp_only_view_with_its_columns(revenue_wh):
    got = rows(run_report(revenue_wh, "vlp_revenue", ReportOptions(date_from=DAY, date_to=DAY)), "by_unit")
    # no reference data: the V__ units (it does not subtract P415 compensation: BM cash - non-delivery)
    assert [(r["row_type"], r["bm_unit_id"], r["net_bm_revenue_gbp"]) for r in got] == \
        [("unit", "V__AFLEX001", 180.0), ("unit", "V__BOTHER01", 0.0), ("daily total", None, 180.0)]


@pytest.mark.parametrize("population, units", [
    ("assets", ["2__FBPGM002", "V__AFLEX001"]),
    ("accepted", ["T_DRAXX-1", "2__FBPGM002", "V__AFLEX001"]),
    ("all", ["T_DRAXX-1", "2__FBPGM002", "V__BOTHER01", "V__AFLEX001", "2__FFSEN005"]),
])
def test_self_balancing_states_its_population_and_never_counts_interconnectors(revenue_wh, population, units):
    result = run_report(revenue_wh, "self_balancing", ReportOptions(date_from=DAY, date_to=DAY, population=population))
    assert [r["bm_unit_id"] for r in rows(result, "units")] == units
    assert "Population:" in result.definition and "I_IED-FRAN1" not in str(rows(result, "units"))
    battery = next(r for r in rows(result, "units") if r["bm_unit_id"] == "2__FBPGM002")
    # |QM| 196 MWh, directed 10 MWh: self-balancing 186 MWh, share 186 / 196
    assert (battery["system_directed_volume_mwh"], battery["self_balancing_volume_mwh"],
            battery["self_balancing_share"]) == (10.0, 186.0, 0.949)
    summary = rows(result, "summary")[0]
    assert summary["bm_units"] == len(units)


def test_asset_csv_errors_name_every_bad_line_and_load_nothing(tmp_path, wh):
    bad = tmp_path / "bad.csv"
    bad.write_text("bm_unit_id,name,kind,power_mw,energy_mwh\n2__FBPGM002,A,battery,50,100\n"
                   "V__X,B,batery,x,\n2__FBPGM002,C,battery,,\n")
    with pytest.raises(AssetFileError) as err:
        import_assets(wh, bad)
    message = str(err.value)
    assert "line 3: kind 'batery' is not one of" in message and "power_mw 'x' is not a number" in message
    assert "line 4: bm_unit_id '2__FBPGM002' is already on line 2" in message and "nothing imported" in message
    header = tmp_path / "header.csv"
    header.write_text("bm_unit_id,name,kind,power_mw,energy_mw\nX,Y,battery,1,2\n")
    with pytest.raises(AssetFileError, match=r"line 1: missing column\(s\) energy_mwh .*unknown column\(s\) 'energy_mw'"):
        read_asset_csv(header)
    good = tmp_path / "good.csv"
    good.write_bytes(b"\xef\xbb\xbfbm_unit_id,name,kind,power_mw,energy_mwh\n 2__FBPGM002 ,A,Battery,50,100\n")
    assert import_assets(wh, good) == 1
    assert list_assets(wh).to_pylist() == [{"bm_unit_id": "2__FBPGM002", "name": "A", "kind": "battery",
                                             "power_mw": 50.0, "energy_mwh": 100.0, "lead_party": None,
                                             "source": "csv"}]


def test_asset_csv_as_a_spreadsheet_saves_it_headers_in_words_thousands_and_no_decimal_commas(tmp_path, wh):
    words = tmp_path / "words.csv"
    words.write_text("BM Unit ID,Name,Kind,Power (MW),Energy MWh\n2__FBPGM002,A,battery,\"1,000\",2000.5\n")
    assert [(a.bm_unit_id, a.power_mw, a.energy_mwh) for a in read_asset_csv(words)] == [("2__FBPGM002", 1000.0, 2000.5)]
    decimal_comma = tmp_path / "comma.csv"
    decimal_comma.write_text("bm_unit_id,name,kind,power_mw,energy_mwh\n2__FBPGM002,A,battery,\"49,5\",100\n")
    with pytest.raises(AssetFileError, match=r"line 2: power_mw '49,5' is not a number \(a decimal point"):
        read_asset_csv(decimal_comma)
    semicolons = tmp_path / "semi.csv"
    semicolons.write_text("bm_unit_id;name;kind;power_mw;energy_mwh\n2__FBPGM002;A;battery;49,5;100\n")
    with pytest.raises(AssetFileError, match=r"line 1: the columns are separated by ';', not commas"):
        read_asset_csv(semicolons)
