"""``run.py config check``: what the settings say, whether each part can work, and no secret shown.

Basic validation (types, unknown keys, missing files) already happened when the settings were
loaded; this goes further: the warehouse URL, IRIS credentials and the secret's expiry, the Portal
key, each scheduled dashboard's layout and target, and (with ``connect``) the warehouse itself.
Secrets are reported as "set" or "not set", never shown.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings
from warehouse import WarehouseError, connect


@dataclass
class CheckReport:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def check(settings: Settings, warehouse_url: str, *, connect: bool = False, today: dt.date | None = None) -> CheckReport:
    """Check ``settings`` (and open the warehouse when ``connect``)."""
    report = CheckReport()
    report.lines.append(f"settings file: {settings.source or 'none (defaults and environment variables)'}")
    _warehouse(settings, warehouse_url, connect, report)
    _iris(settings, report, today or dt.date.today())
    _portal(settings, report)
    _dashboards(settings, report)
    _alerts(settings, report)
    s = settings.schedule
    report.lines.append(
        "schedule: IRIS worker " + ("on" if s.iris_worker else "off")
        + (f"; refresh every {s.refresh_minutes:g} min" if s.refresh_minutes else "; no refresh")
        + (f"; P114 fetch daily at {s.p114_fetch_at}" if s.p114_fetch_at else "; no P114 fetch")
        + (f"; gap fill daily at {s.gap_fill_at} ({len(s.gap_fill_datasets)} datasets, {s.gap_fill_days} days)"
           if s.gap_fill_at else "; no gap fill"))
    return report


def _warehouse(settings: Settings, url: str, try_connect: bool, report: CheckReport) -> None:
    try:
        wh = connect(url, settings.bigquery.options(), table_prefix=settings.table_prefix)
    except WarehouseError as exc:
        report.problems.append(f"warehouse: {exc}")
        return
    if wh.dialect == "duckdb":
        path = getattr(wh, "path", "")
        where = "in memory" if path == ":memory:" else (
            f"{path} ({Path(path).stat().st_size / 2**20:,.1f} MiB)" if Path(path).exists() else f"{path} (new)")
        report.lines.append(f"warehouse: DuckDB {where}")
    else:
        bq = settings.bigquery
        how = ("anonymous, endpoint " + bq.api_endpoint if bq.api_endpoint
               else f"service account {bq.credentials_file}" if bq.credentials_file
               else "Application Default Credentials")
        report.lines.append(f"warehouse: BigQuery {wh.url} (location {bq.location or 'US (default)'}; credentials: "
                            f"{how}; query limit: {f'{bq.maximum_bytes_billed:,} bytes' if bq.maximum_bytes_billed else 'none'})")
    if wh.table_prefix:
        report.lines.append(f"warehouse: the project's tables are called {wh.table_prefix}NAME ([warehouse] table_prefix)")
    if try_connect:
        try:
            count = len(wh.table_names())
            report.lines.append(f"warehouse: connected, {count} tables and views")
        except Exception as exc:  # noqa: BLE001 - any failure to reach it is the answer
            report.problems.append(f"warehouse: cannot connect: {exc}")
    wh.close()


def _iris(settings: Settings, report: CheckReport, today: dt.date) -> None:
    from ingest.iris.config import IrisConfigError, IrisSettings

    try:
        iris = IrisSettings.load(configured=settings.iris, environ=settings.iris_environment)
    except IrisConfigError as exc:
        note = f"IRIS: not configured ({exc})"
        if settings.schedule.iris_worker:
            note += "; the scheduler will not run the worker"
        report.lines.append(note)
        return
    line = (f"IRIS: queue {iris.queue_name} via a connection string (IRIS_CONNECTION_STRING)" if iris.connection_string
            else f"IRIS: queue {iris.queue_name} on {iris.fully_qualified_namespace} (client id {iris.client_id}, "
                 "client secret set)")
    expires = iris.secret_expires or settings.iris.get("secret_expires")
    if expires:
        left = (expires - today).days
        line += f"; secret expires {expires} ({left} days)"
        if left < 0:
            report.problems.append(f"IRIS: the client secret expired on {expires}: renew it at "
                                   "https://bmrs.elexon.co.uk/iris and set IRIS_CLIENT_SECRET")
    report.lines.append(line)


def _portal(settings: Settings, report: CheckReport) -> None:
    from ingest.p114.portal import PORTAL_URL

    url = settings.elexon.portal_url or PORTAL_URL
    if settings.elexon.portal_key:
        report.lines.append(f"Elexon Portal: key set (ELEXON_PORTAL_KEY), {url}")
    else:
        report.lines.append("Elexon Portal: ELEXON_PORTAL_KEY not set: backfill from the Portal and the scheduler's "
                            "daily P114 fetch cannot run (loading files from a folder works)")


def _dashboards(settings: Settings, report: CheckReport) -> None:
    from reporting.dashboard import TemplateError, load_template
    from reporting.refresh import choose_target
    from reporting.sheets import SheetsError

    for board in settings.schedule.dashboards:
        try:
            spec = load_template(board)
        except TemplateError as exc:
            report.problems.append(f"dashboard {board}: {exc}")
            continue
        try:
            kind, spreadsheet, _ = choose_target(settings, board)
        except SheetsError as exc:
            report.problems.append(f"dashboard {board}: {exc}")
            continue
        target = (f"Google Sheets {spreadsheet}" if kind == "sheets"
                  else f"{Path(settings.output_dir) / board}.xlsx and .html (no spreadsheet id or Google credentials)")
        report.lines.append(f"dashboard {board}: {len(spec.tabs)} tabs → {target}")
    for board in sorted(settings.sheets.spreadsheets.keys() - set(settings.schedule.dashboards)):
        try:  # a spreadsheet for a dashboard that is not scheduled: refresh --dashboard NAME needs its layout
            load_template(board)
        except TemplateError as exc:
            report.problems.append(f"[sheets.spreadsheets] {board}: {exc}")


def _alerts(settings: Settings, report: CheckReport) -> None:
    from urllib.parse import urlsplit

    alerts = settings.alerts
    if not alerts.rules and not alerts.targets:
        report.lines.append("alerts: no rules ([[alerts.rules]] in the settings; see settings.example.toml)")
        return
    from alerts.rules import check_targets
    from core.errors import SettingsError

    try:
        check_targets(alerts)
    except SettingsError as exc:
        report.problems.append(str(exc))
    for name, url in alerts.targets.items():  # the scheme only: the rest of a URL can hold a token
        used = [r.name for r in alerts.rules if name in r.targets]
        report.lines.append(f"alert target {name}: {urlsplit(url).scheme}:// URL; rules: {', '.join(used) or 'none'}")
    for rule in alerts.rules:
        report.lines.append(f"alert rule {rule.name} ({rule.kind}): {rule.threshold_text()} → "
                            + (", ".join(rule.targets) if rule.targets else "no target: events are recorded, "
                               "nothing is sent"))
        if rule.kind == "secret_expiry" and not settings.iris.get("secret_expires"):
            report.problems.append(f"alert rule {rule.name}: [iris] secret_expires (or IRIS_SECRET_EXPIRES) is not "
                                   "set, so the secret's expiry cannot be watched")
        if rule.kind == "acceptance" and not rule.units and not settings.reporting.assets:
            report.lines.append(f"alert rule {rule.name}: watches the assets imported into the warehouse "
                                "(python run.py assets import FILE.csv); none are in the settings")
