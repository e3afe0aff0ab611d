"""The reports: which SQL templates make them, their parameters and defaults, and how to run them.

Each report is one or more *sections*, each one template under ``sql/reports``. Values (dates,
thresholds, the as-of time) travel as ``@`` query parameters; templates receive structure only
(which tables exist). ``run_report`` returns Arrow tables plus the report's definition text and
any warnings, ready for the CLI, a workbook or Google Sheets.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa

from core.errors import ReportError
from core.settlement import RUN_PRECEDENCE, RUN_RANK, local_midnight_utc
from ingest.iris.datasets import SPECS, DatasetTables, table_name
from ingest.iris.tables import ensure_iris_schema
from ingest.p114.tables import ALL_TABLES, MANIFEST, ensure_p114_schema
from core.assets import Asset
from ingest.p114.layout import P415_VERSIONS
from reporting.assets import asset_warnings, ensure_assets_schema
from reporting.reference import BMU_REFERENCE
from reporting.settlement_calendar import DEFAULT_DUE_WORKING_DAYS, due_date
from warehouse.base import Warehouse
from warehouse.sqltemplates import render

log = logging.getLogger(__name__)


@dataclass
class ReportOptions:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    min_mwh: float = 1.0
    threshold: float = 0.5
    as_of: dt.datetime | None = None
    vlp_units: list[str] = field(default_factory=list)
    assets: list[Asset] | None = None  # the settings' [[reporting.assets]] (None: leave the stored ones)
    population: str = "auto"  # self_balancing: auto | assets | accepted | all
    run_due_working_days: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_DUE_WORKING_DAYS))
    today: dt.date | None = None
    now: dt.datetime | None = None  # the clock the live grid's staleness is judged by (default: now)
    demo: bool = False  # generated sample data: its age is no warning, and the dashboard says it is a demo
    units: list[str] = field(default_factory=list)  # reconciliation: only these BM units (exact ids)
    tolerance_gbp: float = 1.0  # reconciliation: a difference up to this (£ per unit-period) is reconciled


@dataclass
class ReportResult:
    name: str
    title: str
    definition: str
    params: dict[str, Any]
    sections: dict[str, pa.Table]
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Section:
    name: str
    template: str
    title: str
    staged: bool = False  # reads the report's stage


@dataclass(frozen=True)
class Stage:
    """A CTE that several sections of a report share, defined by the last of ``includes``. When two or more
    of the sections run, the engine computes it once and keeps it (DuckDB: a temporary table) if it can."""
    cte: str
    includes: tuple[str, ...]
    window: bool = False  # the includes' ``window`` switch (VLP revenue: read only the report's dates)


@dataclass(frozen=True)
class ReportSpec:
    name: str
    title: str
    definition: str
    sections: tuple[Section, ...]
    # (warehouse, options, warnings to add to, template context to add to) -> query parameters
    prepare: Callable[[Warehouse, ReportOptions, list[str], dict[str, Any]], dict[str, Any]]
    stage: Stage | None = None


def ensure_reporting_schema(wh: Warehouse, vlp_units: list[str] | None = None,
                            assets: list[Asset] | None = None) -> None:
    """Tables and views every report relies on (idempotent); writes the configured VLP units and assets."""
    from alerts.events import ensure_alert_schema

    ensure_p114_schema(wh)
    ensure_iris_schema(wh)
    ensure_alert_schema(wh)
    ensure_assets_schema(wh, assets, vlp_units)
    for view in ("vlp_bm_units", "mart_vlp_revenue_p114"):
        wh.define_view(view, render(f"views/{view}.sql.j2", wh))


# ---------------------------------------------------------------------------------------- windows
def _latest_settlement_date(wh: Warehouse) -> dt.date | None:
    return wh.scalar(f"SELECT MAX(settlement_date) FROM {wh.ref(MANIFEST.name)}")


def _settlement_window(wh: Warehouse, o: ReportOptions, days: int) -> tuple[dt.date, dt.date]:
    latest = o.date_to or _latest_settlement_date(wh) or (o.today or dt.date.today())
    first = o.date_from or latest - dt.timedelta(days=days - 1)
    if first > latest:
        raise ReportError(f"--from {first} is after --to {latest}")
    return first, latest


def partition_columns() -> dict[str, str]:
    """Table → the column it is partitioned on (BigQuery day partitions): P114 tables and IRIS datasets."""
    return {t.name: t.partition_by for t in ALL_TABLES if t.partition_by} | {
        table_name(code): spec.event_time for code, spec in SPECS.items()}


def _assets_listed(wh: Warehouse) -> bool:
    return bool(wh.scalar(f"SELECT COUNT(*) FROM {wh.ref('assets')}"))


def _existing_iris_tables(wh: Warehouse) -> dict[str, str]:
    existing = wh.table_names()
    return {code: table_name(code) for code in SPECS if table_name(code) in existing}


# ---------------------------------------------------------------------------------------- reports
def _prepare_vlp(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    first, last = _settlement_window(wh, o, 7)
    if not wh.scalar(f"SELECT COUNT(*) FROM {wh.ref(BMU_REFERENCE.name)}"):
        warnings.append("no BM unit reference data is loaded (python run.py reference bmunits): VLP units are "
                        "taken as the BM unit ids beginning V__" + (" plus the configured list" if o.vlp_units else ""))
    else:
        unknown = wh.query_rows(
            "SELECT DISTINCT bm_unit_id FROM " + wh.ref("p114_bp7_canonical")
            + " WHERE settlement_date BETWEEN @date_from AND @date_to AND STARTS_WITH(bm_unit_id, 'V__') "
            "AND bm_unit_id NOT IN (SELECT bm_unit_id FROM " + wh.ref("vlp_bm_units") + ") ORDER BY bm_unit_id",
            {"date_from": first, "date_to": last},
        )
        if unknown:
            ids = ", ".join(r["bm_unit_id"] for r in unknown[:10]) + (" …" if len(unknown) > 10 else "")
            warnings.append(f"{len(unknown)} V__ unit(s) in the settlement data are not in the reference data and "
                            f"were left out (add them to the configured VLP units if they are VLP units): {ids}")
    return {"date_from": first, "date_to": last}


def _prepare_revenue(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    first, last = _settlement_window(wh, o, 7)
    context["p415_versions"] = ", ".join(f"'{v}'" for v in P415_VERSIONS)  # our constant, 3 digits each
    if _assets_listed(wh):
        context["population"] = "assets"
        context["population_text"] = ("the assets (python run.py assets list: the imported CSV, the settings' "
                                      "assets and VLP units, and Elexon's secondary units)")
        warnings.extend(asset_warnings(wh, first, last))
    else:
        context["population"] = "secondary"
        context["population_text"] = "every V__ (secondary) unit in the settlement data, as no asset is listed"
        warnings.append("no assets are listed (python run.py assets import FILE.csv, [[reporting.assets]] in the "
                        "settings, or python run.py reference bmunits): showing every V__ unit in the settlement data")
    return {"date_from": first, "date_to": last}


def _prepare_completeness(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    first, last = _settlement_window(wh, o, 30)
    time_from = dt.datetime.combine(first, dt.time(), tzinfo=dt.timezone.utc)
    time_to = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    now = o.now or dt.datetime.now(dt.timezone.utc)
    return {"date_from": first, "date_to": last, "time_from": time_from, "time_to": time_to,
            "data_until": min(time_to, now)}


def _prepare_self_balancing(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    first, last = _settlement_window(wh, o, 30)
    if not 0 <= o.threshold <= 1:
        raise ReportError(f"--threshold must be between 0 and 1, got {o.threshold}")
    population = o.population
    if population not in SELF_BALANCING_POPULATIONS:
        raise ReportError(f"--population must be one of {', '.join(SELF_BALANCING_POPULATIONS)}, got {population!r}")
    if population == "auto":
        population = "assets" if _assets_listed(wh) else "accepted"
    context["population"] = population
    context["population_text"] = SELF_BALANCING_POPULATIONS[population]
    return {"date_from": first, "date_to": last, "min_mwh": float(o.min_mwh), "threshold": float(o.threshold)}


def _prepare_live(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    tables = context["tables"]
    now = o.now or dt.datetime.now(dt.timezone.utc)
    as_of = o.as_of
    if as_of is None:
        latest = f"SELECT MAX(measurement_time) FROM {wh.ref(tables['FREQ'])}" if "FREQ" in tables else None
        recent = {"since": now - dt.timedelta(days=7)}
        # the last week's partitions first; the whole table only when the data is older than that
        as_of = (wh.scalar(latest + " WHERE measurement_time > @since", recent) or wh.scalar(latest)) if latest else None
        as_of = as_of or now
    age = now - as_of
    if age > dt.timedelta(minutes=15) and not o.demo:
        warnings.append(f"live grid data is {age.total_seconds() / 3600:.1f} hours old (latest frequency reading "
                        f"{as_of:%Y-%m-%d %H:%M} UTC)")
    return {"as_of": as_of, "hour_before": as_of - dt.timedelta(hours=1), "lookback_from": as_of - LIVE_LOOKBACK}


def _prepare_alerts(wh: Warehouse, o: ReportOptions, warnings: list[str], context: dict[str, Any]) -> dict[str, Any]:
    now = o.now or dt.datetime.now(dt.timezone.utc)
    return {"since": now - dt.timedelta(days=7)}


def _prepare_reconciliation(wh: Warehouse, o: ReportOptions, warnings: list[str],
                            context: dict[str, Any]) -> dict[str, Any]:
    tables = context["tables"]
    latest = o.date_to
    if latest is None:  # the latest date with settled and IRIS data (recent BOALF partitions only)
        settled = _latest_settlement_date(wh)
        recent = local_midnight_utc(settled or o.today or dt.date.today()) - dt.timedelta(days=60)
        iris = wh.scalar(f"SELECT MAX(settlement_date) FROM {wh.ref(tables['BOALF'])} WHERE time_from >= @recent",
                         {"recent": recent}) if "BOALF" in tables else None
        latest = min(d for d in (settled, iris) if d) if settled or iris else None
    first, last = _settlement_window(wh, replace(o, date_to=latest), 1)
    for code, why in (("BOALF", "no recompute is possible"), ("PN", "FPN is taken as 0 MW"),
                      ("BOD", "no bid-offer bands: the recompute prices nothing"),
                      ("EBOCF", "Elexon's indicative cash is NULL"), ("BOAV", "Elexon's indicative volume is NULL")):
        if code not in tables:
            warnings.append(f"no {code} data loaded: {why} (IRIS, or python run.py backfill iris {code} FROM TO)")
    context["units"] = bool(o.units)
    params: dict[str, Any] = {"date_from": first, "date_to": last, "tolerance_gbp": float(o.tolerance_gbp),
                              "scan_from": local_midnight_utc(first) - dt.timedelta(days=1),
                              "scan_to": local_midnight_utc(last + dt.timedelta(days=1))}
    if o.units:
        params["units"] = list(o.units)
        warnings += _unsettled_unit_warnings(wh, o.units, first, last)
    return params


def _unsettled_unit_warnings(wh: Warehouse, units: list[str], first: dt.date, last: dt.date) -> list[str]:
    """A requested unit with no settled row in the window, and the id it probably meant (the rule
    ``assets import`` uses): ids join exactly, so ``FBPGM002`` matches nothing."""
    unsettled = {r["bm_unit_id"]: r["hint"] for r in wh.query_rows(
        render("reports/units_check.sql.j2", wh), {"date_from": first, "date_to": last, "units": list(units)})}
    return [f"--unit {unit}: no settled data from {first} to {last} (ids join exactly"
            + (f"; did you mean {unsettled[unit]}?)" if unsettled[unit] else ")")
            for unit in units if unit in unsettled]


SELF_BALANCING_POPULATIONS = {
    "auto": "the assets when any are listed, else the units with a BM acceptance",
    "assets": "the assets (python run.py assets list), interconnectors excluded",
    "accepted": "BM units with at least one accepted bid or offer volume (BO4) in the window, interconnectors excluded",
    "all": "every BM unit in the settlement data except interconnectors (ids I_…)",
}
LIVE_LOOKBACK = dt.timedelta(days=2)  # live_grid reads only this far back (BigQuery partitions scanned)

REPORTS: dict[str, ReportSpec] = {
    spec.name: spec
    for spec in [
        ReportSpec(
            "vlp_revenue",
            "VLP revenue (settled, P114)",
            "Balancing Mechanism revenue of VLP (secondary) BM units per settlement date, from the most "
            "authoritative settlement run loaded (DF > RF > R3 > R2 > R1 > SF > II). BM cashflow = sum of the "
            "unit's BO4 bid and offer cashflows; net BM revenue = BM cashflow - non-delivery charge (BP7 field 3). "
            "Accepted bid volumes are negative, offer volumes positive. Units: Elexon reference data (secondary "
            "units) plus the configured list, matched on exact ids. Imbalance, compensation and non-BM revenues "
            "are not included.",
            (Section("by_unit", "reports/vlp_revenue.sql.j2", "VLP revenue per unit and day, with daily totals", True),
             Section("daily", "reports/vlp_revenue_daily.sql.j2", "VLP revenue per day", True)),
            _prepare_vlp,
            Stage("units", ("reports/_vlp_revenue_units.sql.j2",), window=True),
        ),
        ReportSpec(
            "revenue",
            "Settled revenue per asset (P114)",
            "Per asset and settlement date, from the canonical run (DF > RF > R3 > R2 > R1 > SF > II; the run used "
            "is shown). BM cashflow (£) = sum of the unit's BO4 bid + offer cashflows. Non-delivery charge (£) = "
            "BP7 field 3, a debit. VLP compensation (£, P415) = BP7 field 23 (secondary BM unit compensation "
            "volume) x SPI field 53 (supplier sourcing cost), a debit; NULL for files whose flow version predates "
            "P415 (the checks section compares it with the party's APC daily total). Net BM revenue (£) = BM "
            "cashflow - non-delivery - VLP compensation. Export / import (MWh) = the metered volume QM (BP7 field "
            "8) when positive / negative, before losses; loss-adjusted = QM x TLM. Throughput = export + import; "
            "full cycles = throughput / (2 x the asset's energy capacity). Energy value at the imbalance price (£) "
            "= (QM x TLM - accepted BM volume) x the system price: the value of the metered position IF the unit "
            "held no contracts, not its traded revenue; at the MID price likewise, where MID is loaded for every "
            "period. Captured spread (£/MWh) = export-weighted minus import-weighted system price. Money is rounded "
            "to the penny per period, then summed. Run movement: "
            "each figure in every run loaded and its change from the previous run; *_change columns = canonical "
            "minus the first run loaded. Not included: imbalance settled per energy account, contracts, DFS, "
            "capacity market, ancillary services.",
            (Section("assets", "reports/revenue_assets.sql.j2", "Per asset over the window, by net BM revenue", True),
             Section("by_unit", "reports/revenue.sql.j2", "Per asset and settlement date", True),
             Section("daily", "reports/revenue_daily.sql.j2", "Per settlement date, all assets (components)", True),
             Section("by_period", "reports/revenue_periods.sql.j2", "Per asset and settlement period"),
             Section("runs", "reports/revenue_runs.sql.j2", "Run movement: each run loaded and its change"),
             Section("checks", "reports/revenue_checks.sql.j2", "Checks against the parties' APC daily totals")),
            _prepare_revenue,
            Stage("unit_days", ("reports/_revenue_unit_days.sql.j2",)),
        ),
        ReportSpec(
            "completeness",
            "Data completeness",
            "P114: per settlement date, the settlement periods expected (46, 48 or 50: half hours between "
            "Europe/London midnights), the runs loaded, the canonical run (\"RF (legacy, partial)\": BPI rows "
            "imported from your own table with python run.py import legacy, until a real S0142 file of the date is "
            "loaded), and for it the BM units and the periods with no data; overdue runs are runs due by the "
            "working-day timetable (England & Wales bank holidays) and not yet superseded. IRIS: per dataset with a regular cadence and UTC day, rows, distinct event "
            "times against the cadence, gaps longer than the cadence and the last arrival.",
            (Section("p114", "reports/completeness_p114.sql.j2", "P114 settlement data"),
             Section("iris", "reports/completeness_iris.sql.j2", "IRIS datasets")),
            _prepare_completeness,
        ),
        ReportSpec(
            "self_balancing",
            "Self-balancing vs system-directed activity",
            "Per BM unit over the window, from the canonical P114 run: metered volume = sum of |metered volume| "
            "over its periods (BP7); system-directed volume = sum of |accepted bid| + |accepted offer| volumes "
            "(BO4, the same settlement data, so no cross-source id join); self-balancing volume = metered volume "
            "- min(directed, metered); share = self-balancing / metered. A unit below the minimum metered volume "
            "is 'below minimum'; otherwise 'self-balancing' when its share is at least the threshold, else "
            "'system-directed'. The summary covers the units of the population at or above the minimum; "
            "interconnectors are never included.",
            (Section("units", "reports/self_balancing.sql.j2", "Per BM unit", True),
             Section("summary", "reports/self_balancing_summary.sql.j2", "All units of the population", True)),
            _prepare_self_balancing,
            Stage("units", ("reports/_self_balancing_units.sql.j2",)),
        ),
        ReportSpec(
            "live_grid",
            "Live grid",
            "From IRIS data at the as-of time (the latest frequency reading unless given): the latest frequency "
            "and the last hour of readings. Generation mix: the latest FUELINST publication, grouped (gas = CCGT + "
            "OCGT, hydro = NPSHYD, pumped storage = PS, other = OIL, OTHER and any new code; raw codes listed), "
            "shares of generation excluding interconnectors (the headline's generation); interconnector flows "
            "apart (imports positive, exports negative). Bid-offer acceptances in the last hour; total MEL and MIL "
            "(each unit's latest submission covering the as-of time, interpolated). Outages: REMIT messages, latest "
            "revision, event covering the as-of time, not dismissed; per unit, available capacity = the lowest over "
            "its outages of the outage profile's value at the as-of time (else the message's available capacity), "
            "unavailable = normal capacity - available, between 0 and the normal capacity (overlapping outages of "
            "one unit are not added); the headline sums units. Readings and submissions are looked up in the two "
            "days before the as-of time; REMIT in full (an outage published long ago can still be active).",
            (Section("headline", "reports/live_grid_headline.sql.j2", "Now"),
             Section("frequency", "reports/live_grid_frequency.sql.j2", "Frequency, last hour"),
             Section("fuel_mix", "reports/live_grid_fuel_mix.sql.j2", "Generation mix"),
             Section("interconnectors", "reports/live_grid_interconnectors.sql.j2", "Interconnector flows"),
             Section("outages", "reports/live_grid_outages.sql.j2", "Units with active outages")),
            _prepare_live,
        ),
        ReportSpec(
            "reconciliation",
            "Indicative vs settled BM cash (reconciliation)",
            "Per BM unit and settlement date (and, to drill down, per period and per acceptance), BM cash three ways, "
            "on the settlement dates with IRIS balancing data (a BOALF acceptance or EBOCF); the summary counts the "
            "dates without any and the settled cash on them, not compared. Population: every unit with an "
            "acceptance, indicative or settled BM cash, or a non-delivery charge on those dates (or the units asked "
            "for, exact ids). "
            "Recompute: our Section T3 calculation from the loaded FPN (PN), BOALF and BOD: each minute, every "
            "acceptance's level is compared with the level before it (FPN, or the previous acceptance covering that "
            "minute); the move is split over the bid-offer bands stacked from FPN (offer pairs +1, +2 … above, bid "
            "pairs -1, -2 … below), a move up is offer volume, a move down bid volume, each minute weighs 1/60 h, "
            "offer volume x the pair's offer price + bid volume x its bid price (a move down through an offer band is "
            "paid at that pair's bid price); RR-flagged acceptances are left out. Indicative: Elexon's own "
            "figures from BMRS data, BOAV accepted volume and EBOCF cashflow (both sides, latest issue). Settled: BO4 "
            "bid + offer volumes and cashflows of the canonical P114 run only (DF > RF > R3 > R2 > R1 > SF > II; "
            "never summed across runs), with the BP7 non-delivery charge beside it. Difference = settled - recompute, "
            "or indicative - recompute before settlement. Reason, per unit-period, the first that applies: "
            "awaiting_data (neither indicative nor settled cash yet); reconciled (difference within the tolerance, "
            "£ per unit-period); non_delivery (reconciled, and a non-delivery charge is levied on top); "
            "no_acceptance_data (cash but no BOALF acceptance loaded); acceptance_excluded (the difference is the "
            "cash of acceptances we priced that settlement's BO3 records or Elexon's BOAV do not list, on a date "
            "they list the unit's others); reissued (an earlier settlement run, or "
            "the first issue of EBOCF, agrees with the recompute: a later run moved the money); tlm (settled = "
            "recompute x the BP7 transmission loss multiplier); indicative_missing (settled differs and no EBOCF is "
            "loaded to say which side is wrong); unexplained. A unit-day's reason is that of its least explained "
            "period; reasons lists them all. Naive: what a BOALF-only estimate gives: every acceptance's absolute MW "
            "level over the minutes it covers, at pair +1's offer price (pair -1's bid price for a negative level, or "
            "whichever the unit submitted). It is wrong because BOALF "
            "levels are the unit's instructed position, not the change from FPN or from the acceptance before; "
            "superseded acceptances are counted again; the price depends on which band the move crosses. Unpriced "
            "volume: a move beyond the last band submitted. Inferred, not yet confirmed against real BOAV/EBOCF "
            "rows: the band stacking, one spot time per minute start, no TLM in BM cash; by_acceptance shows our "
            "volume beside BOAV's for each acceptance.",
            (Section("by_unit", "reports/reconciliation_units.sql.j2", "Per BM unit and settlement date", True),
             Section("summary", "reports/reconciliation_summary.sql.j2", "Share of settled cash explained", True),
             Section("by_period", "reports/reconciliation_periods.sql.j2", "Per unit and settlement period", True),
             Section("by_acceptance", "reports/reconciliation_acceptances.sql.j2", "Per acceptance and period")),
            _prepare_reconciliation,
            Stage("rec_periods", ("reconciliation/_t3.sql.j2", "reconciliation/_periods.sql.j2")),
        ),
        ReportSpec(
            "alerts",
            "Alerts",
            "Events of the alert rules in the settings ([[alerts.rules]]; python run.py alerts list). An event opens "
            "when a rule's condition starts (one message to each of its targets) and closes when the data shows it "
            "ended or it is no longer seen (cleared); it never repeats, except as a reminder after the rule's "
            "remind_minutes. Value = the worst value seen when it opened (when it ended, for an ended event); times in UTC; delivered / failed = messages sent to "
            "targets (each after up to [alerts] retry_attempts tries). Open: every open event. Last 7 days: events "
            "opened in the 7 days before the refresh, and every open one.",
            (Section("open", "reports/alerts_open.sql.j2", "Open events"),
             Section("recent", "reports/alerts_recent.sql.j2", "Last 7 days")),
            _prepare_alerts,
        ),
    ]
}

_WINDOWED = tuple(name for name in REPORTS if name not in ("live_grid", "alerts"))
#: Command-line options that only some reports read: given to another report they would be ignored.
OPTION_REPORTS: dict[str, tuple[str, ...]] = {
    "--from": _WINDOWED, "--to": _WINDOWED,
    "--min-mwh": ("self_balancing",), "--threshold": ("self_balancing",), "--population": ("self_balancing",),
    "--as-of": ("live_grid",),
    "--unit": ("reconciliation",), "--tolerance": ("reconciliation",),
}


def check_report_options(name: str, given: dict[str, Any]) -> None:
    """Refuse an option (``--flag``: value, None when not given) that report ``name`` does not read."""
    for option, value in given.items():
        if value is not None and name not in OPTION_REPORTS[option]:
            raise ReportError(f"report {name} does not take {option} (it is an option of "
                              f"{', '.join(OPTION_REPORTS[option])})")


def run_report(wh: Warehouse, name: str, options: ReportOptions | None = None, *, ensure: bool = True,
               only: Collection[str] | None = None) -> ReportResult:
    """Run report ``name`` and return its sections as Arrow tables (only the sections in ``only``, if given)."""
    spec, options, params, warnings, context = _prepare(wh, name, options, ensure)
    kept = _keep_stage(wh, spec, context, params, only)
    sections: dict[str, pa.Table] = {}
    try:
        for section, sql in _section_queries(wh, spec, warnings, context, only):
            sections[section] = sql if isinstance(sql, pa.Table) else wh.query(sql, params)
    finally:
        if kept:
            wh.forget(kept)
    if name == "completeness" and "p114" in sections:
        sections["p114"] = _add_overdue_runs(sections["p114"], options)
    for warning in warnings:
        log.debug("%s: %s", name, warning)  # the result carries them: the caller reports each once
    definition = spec.definition + (f" Population: {context['population_text']}." if "population_text" in context else "")
    return ReportResult(spec.name, spec.title, definition, params, sections, warnings)


def report_sql(wh: Warehouse, name: str, options: ReportOptions | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The parameters and, per section, the SQL report ``name`` would run (sections with nothing to query left out)."""
    spec, options, params, warnings, context = _prepare(wh, name, options, ensure=True)
    return params, {section: sql for section, sql in _section_queries(wh, spec, warnings, context)
                    if isinstance(sql, str)}


def dry_run_report(wh: Warehouse, name: str, options: ReportOptions | None = None) -> dict[str, int]:
    """Bytes each section's query would scan on BigQuery (a dry run: nothing runs, nothing is billed)."""
    dry_run = getattr(wh, "dry_run", None)
    if dry_run is None:
        raise ReportError(f"--dry-run needs a BigQuery warehouse (bigquery://PROJECT/DATASET); this is {wh.dialect}")
    params, queries = report_sql(wh, name, options)
    return {section: dry_run(sql, params) for section, sql in queries.items()}


def _prepare(wh: Warehouse, name: str, options: ReportOptions | None, ensure: bool):
    spec = REPORTS.get(name)
    if spec is None:
        raise ReportError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    options = options or ReportOptions()
    if ensure:
        ensure_reporting_schema(wh, options.vlp_units, options.assets)
    warnings: list[str] = []
    context: dict[str, Any] = {"tables": DatasetTables(_existing_iris_tables(wh))}  # tables.FREQ in templates
    params = spec.prepare(wh, options, warnings, context)
    return spec, options, params, warnings, context


def _keep_stage(wh: Warehouse, spec: ReportSpec, context: dict[str, Any], params: dict[str, Any],
                only: Collection[str] | None) -> str | None:
    """Compute the report's stage once for the two or more sections about to read it, where the engine keeps
    results; the sections' templates then read it (``staged``). Returns what to ``forget`` after."""
    stage = spec.stage
    readers = [s for s in spec.sections if s.staged and (only is None or s.name in only)]
    if stage is None or len(readers) < 2 or not wh.keeps_results:
        return None
    name = f"stage_{spec.name}_{stage.cte}"
    sql = render("reports/_stage.sql.j2", wh, stage=stage.cte, includes=stage.includes, window=stage.window,
                 **context)
    context["staged"] = {stage.cte: wh.keep(name, sql, params)}
    return name


def _section_queries(wh: Warehouse, spec: ReportSpec, warnings: list[str], extra: dict[str, Any],
                     only: Collection[str] | None = None):
    """(section name, rendered SQL) per section, or an empty Arrow table where there is nothing to query."""
    iris_tables = extra["tables"]
    for section in spec.sections:
        if only is not None and section.name not in only:
            continue
        context = dict(extra)
        if section.name == "iris":
            datasets = [
                {"code": code, "table": iris_tables[code], "column": SPECS[code].event_time,
                 "cadence_s": int(SPECS[code].cadence.total_seconds())}
                for code in sorted(iris_tables) if SPECS[code].cadence
            ]
            if not datasets:
                yield section.name, pa.table({"dataset": pa.array([], pa.string())})
                continue
            context["datasets"] = datasets
        needs = {"live_grid_frequency": "FREQ", "live_grid_fuel_mix": "FUELINST", "live_grid_interconnectors": "FUELINST",
                 "live_grid_outages": "REMIT"}
        needed = needs.get(section.template.rsplit("/", 1)[-1].removesuffix(".sql.j2"))
        if needed and needed not in iris_tables:
            warnings.append(f"no {needed} data loaded: section '{section.title}' is empty")
            yield section.name, pa.table({})
            continue
        yield section.name, render(section.template, wh, **context)


def _add_overdue_runs(table: pa.Table, options: ReportOptions) -> pa.Table:
    """Runs due by the working-day timetable that are neither loaded nor superseded by a later run."""
    today = options.today or dt.date.today()
    overdue = []
    for row in table.select(["settlement_date", "runs_loaded"]).to_pylist():
        loaded = [r for r in (row["runs_loaded"] or "").split(",") if r]
        best = max((RUN_RANK[r] for r in loaded), default=0)
        offsets = options.run_due_working_days
        due = [run for run in RUN_PRECEDENCE
               if run in offsets and RUN_RANK[run] > best and due_date(row["settlement_date"], run, offsets) < today]
        overdue.append(",".join(due))
    return table.append_column("overdue_runs", pa.array(overdue, pa.string()))
