"""``run.py demo``: realistic sample data through the real pipeline, no credentials needed.

Generates a week of S0142 files in the real format (including the 50-period clock-change day of
26 October 2025 and several settlement runs of the same dates, one of them re-published), a
day of IRIS messages laid out as Elexon's client writes them (DIR/<DATASET>/<message id>), the
BM unit reference list as the Insights API returns it and an asset list naming two batteries;
loads them with the same code a user runs on real data, runs every report and writes the local
dashboard (never to a Google Sheet). Re-running is safe: the inputs are generated identically and the loaders
skip what they have.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from rich.console import Console

from ingest.iris.files import ReplaySummary, replay_directory
from ingest.iris.generate import IrisGenerator, write_file_drop
from ops.demo_balancing import BalancingDay, balancing_day
from ingest.iris.load import IrisLoader
from ingest.p114.backfill import BackfillSummary, run_backfill
from core.config import Settings
from ingest.p114.generate import default_created_at, sample_units, write_s0142
from reporting.assets import import_assets
from reporting.reference import load_bmunits
from reporting.refresh import RefreshResult, refresh, report_options
from warehouse.base import Warehouse

DEMO_DAYS = [dt.date(2025, 10, 22) + dt.timedelta(days=i) for i in range(7)]  # 26 Oct 2025 has 50 periods
#: runs present per day, as five months after the week would show them
DEMO_RUNS = {day: ("II", "SF", "R1", "R2")[: 4 - min(i // 2, 2)] for i, day in enumerate(DEMO_DAYS)}


@dataclass
class DemoResult:
    directory: Path
    files_written: int
    p114: BackfillSummary
    canonical: list[dict]
    iris_messages: int
    iris: ReplaySummary
    bm_units: int
    dashboard: RefreshResult
    alerts: list[str]


DEMO_UNITS = {"units": 60, "parties": 8, "seed": 42}
#: Elexon's bmUnitType per kind of unit (V: secondary, the VLP units)
BMU_TYPES = {"vlp": "V", "supplier": "S", "battery": "S", "consumer": "S", "transmission": "T", "embedded": "E",
             "interconnector": "I", "other": "M"}


def write_demo_p114(directory: Path, *, units: int = 60, parties: int = 8, seed: int = 42) -> list[Path]:
    """Write the demo week of S0142 files into ``directory`` (identical on every call)."""
    population = demo_units(units, parties, seed)
    story = demo_balancing_day()
    paths = []
    for day, runs in DEMO_RUNS.items():
        for run in runs:
            scenario = day == story.day
            paths.append(write_s0142(directory, day, run, units=population, seed=seed,
                                     acceptances=story.bo4_by_run[run] if scenario else None,
                                     acceptance_numbers=story.bo3 if scenario else None))
    # a re-published file: same date and run, a day later; the later creation stamp wins
    first = DEMO_DAYS[0]
    republished = default_created_at(first, "R2") + dt.timedelta(days=1)
    paths.append(write_s0142(directory, first, "R2", created_at=republished, units=population, seed=seed + 1))
    return paths


#: two of the demo's supplier-registered units are batteries (they import and export, and are often accepted)
DEMO_BATTERIES = {"2__DFLEX00H": "Flexpower Didcot battery", "2__JFLEX00M": "Flexpower Grendon battery"}


def demo_units(units: int = DEMO_UNITS["units"], parties: int = DEMO_UNITS["parties"],
               seed: int = DEMO_UNITS["seed"]) -> list:
    """The demo's BM units: the S0142 files, the reference list and the IRIS messages all use them."""
    return [replace(u, kind="battery") if u.bm_unit_id in DEMO_BATTERIES else u
            for u in sample_units(units, parties, seed)]


def write_demo_assets(path: Path) -> Path:
    """The demo's asset list, as a user keeps theirs: the batteries (2-hour, power from the generated capacity)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["bm_unit_id", "name", "kind", "power_mw", "energy_mwh", "lead_party"])
        for u in demo_units():
            if u.bm_unit_id in DEMO_BATTERIES:
                power = round(2 * u.capacity_mwh, 1)  # capacity_mwh is per half hour
                out.writerow([u.bm_unit_id, DEMO_BATTERIES[u.bm_unit_id], "battery", power, 2 * power, u.lead_party_id])
    return path


def _national_grid_id(elexon_id: str) -> str:
    """The demo's National Grid id for a unit (generating data, not matching it)."""
    return elexon_id.split("_")[-1]


def write_demo_reference(path: Path) -> Path:
    """The demo population as Elexon's ``/reference/bmunits/all`` answers (same fields, same shape)."""
    rows = [{"nationalGridBmUnit": _national_grid_id(u.bm_unit_id), "elexonBmUnit": u.bm_unit_id, "eic": None,
             "fuelType": {"transmission": "CCGT", "interconnector": "INT"}.get(u.kind, "OTHER"),
             "leadPartyName": u.lead_party_id.title(), "bmUnitType": BMU_TYPES.get(u.kind, "M"),
             "fpnFlag": u.kind in ("transmission", "interconnector")}
            for u in demo_units()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows, indent=1))
    return path


IRIS_DAY = dt.datetime(2025, 10, 26, tzinfo=dt.timezone.utc)  # the long clock-change day

#: alert rules run over the demo's IRIS day (thresholds set where the generated data crosses them)
DEMO_ALERT_RULES = [
    {"name": "frequency-band", "kind": "frequency", "low": 49.93, "high": 50.07, "min_seconds": 30,
     "window_minutes": 120},
    {"name": "evening-price", "kind": "price", "source": "mid", "above": 125},
    {"name": "big-unplanned-outage", "kind": "outage", "min_mw": 700},
    {"name": "grendon-accepted", "kind": "acceptance", "units": ["2__JFLEX00M"], "window_minutes": 120},
]


@lru_cache(maxsize=1)  # the S0142 files and the IRIS messages tell the same story: computed once (2.5 s)
def demo_balancing_day() -> BalancingDay:
    """PN, BOD, BOALF, BOAV, EBOCF and BO4 for the demo's units on the IRIS day, one coherent story."""
    day = IRIS_DAY.date()
    return balancing_day(demo_units(), day, DEMO_RUNS[day])


def write_demo_iris(directory: Path, spacing_s: float = 9.0) -> int:
    """A day of IRIS messages (FREQ every 2 minutes, FUELINST every 5, …) as an Elexon-client file drop."""
    units = [(u.bm_unit_id, _national_grid_id(u.bm_unit_id))  # as in the demo's reference data
             for u in demo_units() if u.kind in ("transmission", "embedded", "interconnector", "vlp", "battery", "supplier")]
    generator = IrisGenerator(IRIS_DAY, seed=42, bm_units=units, without=("BOALF", "PN", "BOD"))
    messages = list(generator.messages(int(86_400 / spacing_s), spacing_s=spacing_s))
    messages += demo_balancing_day().messages
    write_file_drop(directory, sorted(messages, key=lambda m: m.enqueued_at))
    return len(messages)


def run_demo(wh: Warehouse, settings: Settings, directory: str | Path = "data/demo",
             console: Console | None = None, output_dir: str | Path | None = None) -> DemoResult:
    """Generate the demo inputs under ``directory``, push them through the pipeline into ``wh`` and
    write the local dashboard to ``output_dir`` (default: ``demo/`` in the configured output folder)."""
    directory = Path(directory)
    p114_dir = directory / "p114"
    files = write_demo_p114(p114_dir, **DEMO_UNITS)
    summary = run_backfill(wh, DEMO_DAYS[0], DEMO_DAYS[-1], source=str(p114_dir), console=console)
    canonical = wh.query_rows(
        f"""
        SELECT c.settlement_date, c.settlement_run, c.file_created_at,
               COUNT(DISTINCT s.settlement_period) AS periods,
               COUNT(DISTINCT s.bm_unit_id) AS bm_units,
               ROUND(SUM(s.metered_volume_mwh), 3) AS metered_volume_mwh
        FROM {wh.ref("p114_canonical_files")} AS c
        JOIN {wh.ref("p114_settlement_canonical")} AS s ON s.source_file = c.file_name
        WHERE c.settlement_date BETWEEN @first AND @last
        GROUP BY c.settlement_date, c.settlement_run, c.file_created_at
        ORDER BY c.settlement_date
        """,
        {"first": DEMO_DAYS[0], "last": DEMO_DAYS[-1]},
    )
    iris_dir = directory / "iris_data"
    iris_messages = write_demo_iris(iris_dir)
    iris = replay_directory(IrisLoader(wh), iris_dir)
    reference = write_demo_reference(directory / "reference" / "bmunits.json")
    bm_units = load_bmunits(wh, body=reference.read_bytes())
    import_assets(wh, write_demo_assets(directory / "assets.csv"))
    alerts = demo_alerts(wh, settings)
    output_dir = output_dir or Path(settings.output_dir) / "demo"
    local = Settings(output_dir=str(output_dir), reporting=settings.reporting)  # never the user's Google Sheet
    options = report_options(local, date_from=DEMO_DAYS[0], date_to=DEMO_DAYS[-1], demo=True)
    dashboard = refresh(wh, local, "main", target="local", options=options)
    return DemoResult(directory, len(files), summary, canonical, iris_messages, iris, bm_units, dashboard, alerts)


def demo_alerts(wh: Warehouse, settings: Settings) -> list[str]:
    """Replay the IRIS day through the demo's alert rules, a check every two hours as the worker would
    have run them; events are recorded for the Alerts tab and sent nowhere (no targets)."""
    from alerts.events import check
    from alerts.rules import parse_alerts

    demo = Settings(reporting=settings.reporting, alerts=parse_alerts({"rules": DEMO_ALERT_RULES}, "demo", {}))
    opened = closed = 0
    for hours in range(2, 27, 2):
        result = check(wh, demo, as_of=IRIS_DAY + dt.timedelta(hours=hours))
        opened, closed = opened + len(result.opened), closed + len(result.closed)
    still = wh.scalar(f"SELECT COUNT(*) FROM {wh.ref('alert_events')} WHERE state = 'open' AND "
                      + wh.in_list("rule", "names"), {"names": [r["name"] for r in DEMO_ALERT_RULES]})
    return [f"  {len(DEMO_ALERT_RULES)} rules checked every 2 hours over the day: {opened} event(s) opened, "
            f"{closed} closed, {still} still open (no targets: recorded for the Alerts tab, sent nowhere)"]
