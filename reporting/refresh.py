"""``run.py refresh``: run a dashboard's reports and write them to Google Sheets or a local dashboard.

The target is Google Sheets when the dashboard has a spreadsheet id (``[sheets.spreadsheets]`` or
``SHEETS_SPREADSHEET_ID``) and Google credentials are available (a service-account file or
Application Default Credentials), or a Sheets endpoint is configured for tests; otherwise the
local dashboard: ``out/<name>.xlsx`` and ``out/<name>.html``. Reports run before anything is
written, so a failing report leaves the previous dashboard untouched.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.config import Settings
from core.errors import SheetsError
from reporting.dashboard import Dashboard, build_dashboard, load_template
from reporting.html import write_html
from reporting.reports import ReportOptions
from reporting.workbook import WorkbookWriter
from warehouse.base import Warehouse

log = logging.getLogger(__name__)


@dataclass
class RefreshResult:
    dashboard: str
    target: str  # sheets | local
    where: list[str]
    tabs: int
    requests: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        if self.target == "sheets":
            head = (f"Dashboard {self.dashboard}: {self.tabs} tabs written to Google Sheets {self.where[0]} "
                    f"in {self.requests} API requests, {self.seconds:.1f} s")
        else:
            head = f"Dashboard {self.dashboard}: {self.tabs} tabs written to {' and '.join(self.where)} in {self.seconds:.1f} s"
        return [head] + [f"  warning: {w}" for w in self.warnings]


def report_options(settings: Settings, **overrides) -> ReportOptions:
    r = settings.reporting
    options = ReportOptions(vlp_units=list(r.vlp_units), assets=list(r.assets), min_mwh=r.min_mwh, threshold=r.threshold,
                            run_due_working_days=dict(r.run_due_working_days))
    for key, value in overrides.items():
        if value is not None:
            setattr(options, key, value)
    return options


def choose_target(settings: Settings, dashboard: str, target: str = "auto"):
    """('sheets', spreadsheet id, credentials) or ('local', None, None); raises if Sheets was asked for but cannot work."""
    if target == "local":
        return "local", None, None
    spreadsheet_id = settings.sheets.spreadsheets.get(dashboard)
    if not spreadsheet_id:
        if target == "sheets":
            raise SheetsError(f"no spreadsheet id for dashboard {dashboard!r}: set [sheets.spreadsheets] {dashboard} = "
                              f"\"…\" in the settings or SHEETS_SPREADSHEET_ID")
        return "local", None, None
    from reporting.sheets import google_credentials  # Google's libraries only when a Sheet is configured

    credentials = google_credentials(settings.sheets.credentials_file)
    if credentials is None and not settings.sheets.endpoint:
        if target == "sheets":
            raise SheetsError("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON "
                              "file shared on the spreadsheet, or configure Application Default Credentials")
        log.warning("dashboard %s has a spreadsheet id but no Google credentials were found: writing the local "
                    "dashboard instead", dashboard)
        return "local", None, None
    return "sheets", spreadsheet_id, credentials


def refresh(wh: Warehouse, settings: Settings, dashboard: str = "main", target: str = "auto",
            now: dt.datetime | None = None, options: ReportOptions | None = None) -> RefreshResult:
    started = time.perf_counter()
    spec = load_template(dashboard)
    kind, spreadsheet_id, credentials = choose_target(settings, dashboard, target)
    options = options or report_options(settings)
    if kind == "sheets":
        from reporting.sheets import push_dashboard, sheets_http_client

        built = build_dashboard(wh, spec, options, now=now)
        pushed = push_dashboard(built, spreadsheet_id, sheets_http_client(credentials, settings.sheets.endpoint))
        where = [f"https://docs.google.com/spreadsheets/d/{spreadsheet_id}"]
        return RefreshResult(dashboard, "sheets", where, len(built.tabs), pushed.requests,
                             time.perf_counter() - started, _warnings(built))
    out = Path(settings.output_dir)
    book = WorkbookWriter(out / f"{dashboard}.xlsx")  # takes each tab while the engine runs the next reports
    built = build_dashboard(wh, spec, options, now=now, on_tab=book.add)
    files = [book.close(), write_html(built, out / f"{dashboard}.html")]
    return RefreshResult(dashboard, "local", [str(f) for f in files], len(built.tabs), 0,
                         time.perf_counter() - started, _warnings(built))


def _warnings(built: Dashboard) -> list[str]:
    return sorted({w for t in built.tabs for w in t.warnings})
