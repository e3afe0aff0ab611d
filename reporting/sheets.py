"""The Google Sheets target: one dashboard in three API requests, via gspread and google-auth.

1. ``GET spreadsheets/{id}`` (metadata: tabs, sizes, existing charts and conditional formats);
2. one ``:batchUpdate`` with every structural change: add missing tabs, grow grids, frozen rows,
   reset and apply formats (explicit number formats, bold totals), replace conditional colours
   and charts;
3. one ``values:batchUpdate`` writing every tab's cells ``RAW`` (dates as serial numbers under a
   date format), padded with empty strings over the tab's whole grid, so each tab goes from the
   old values to the new ones in a single write: there is no moment with a blank tab.

Requests are retried with exponential backoff and jitter on HTTP 429, 408 and 5xx and on
timeouts. ``SHEETS_API_ENDPOINT`` (or ``[sheets] endpoint``) sends them to another server (tests);
without credentials there, requests go unauthenticated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import gspread
import requests
from google.auth.transport.requests import AuthorizedSession
from gspread.exceptions import APIError
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from core.errors import SheetsError
from core.google_keys import service_account_credentials
from reporting.dashboard import Block, Dashboard, Tab, a1
from reporting.formats import PATTERNS, serial

log = logging.getLogger(__name__)

SCOPES = ["https://www.googleapis.com/auth/spreadsheets"]
GOOGLE_SHEETS = "https://sheets.googleapis.com"
_CONDITIONS = {"less_than": "NUMBER_LESS", "greater_than": "NUMBER_GREATER", "equals": "TEXT_EQ",
               "not_equals": "NUMBER_NOT_EQ"}


@dataclass
class PushResult:
    spreadsheet_id: str
    tabs: list[str]
    cells: int
    requests: int


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, APIError):
        return exc.code in (408, 429) or exc.code >= 500
    return isinstance(exc, (requests.Timeout, requests.ConnectionError))


class RetryingHTTPClient(gspread.http_client.HTTPClient):
    """gspread's HTTP client with exponential backoff + jitter on 429/408/5xx/timeouts, counting requests."""

    backoff_multiplier = 1.0
    attempts = 6

    def __init__(self, auth, session=None):
        super().__init__(auth, session)
        self.requests = 0

    def request(self, *args, **kwargs):
        def once():
            self.requests += 1
            return super(RetryingHTTPClient, self).request(*args, **kwargs)

        retrying = Retrying(
            retry=retry_if_exception(_retryable),
            wait=wait_random_exponential(multiplier=self.backoff_multiplier, max=64),
            stop=stop_after_attempt(self.attempts),
            reraise=True,
            before_sleep=lambda s: log.warning("Sheets API: %s; retrying", s.outcome.exception()),
        )
        try:
            return retrying(once)
        except RetryError as exc:  # pragma: no cover - reraise=True makes this unreachable
            raise exc.last_attempt.exception() from None


class _Redirect:
    """Mixin for a requests session that sends Google Sheets URLs to another base URL."""

    endpoint: str

    def request(self, method, url, *args, **kwargs):
        if isinstance(url, str) and url.startswith(GOOGLE_SHEETS):
            url = self.endpoint.rstrip("/") + url[len(GOOGLE_SHEETS):]
        return super().request(method, url, *args, **kwargs)


class _RedirectedSession(_Redirect, requests.Session):
    def __init__(self, endpoint: str):
        super().__init__()
        self.endpoint = endpoint


class _RedirectedAuthorizedSession(_Redirect, AuthorizedSession):
    def __init__(self, credentials, endpoint: str):
        super().__init__(credentials)
        self.endpoint = endpoint


def google_credentials(credentials_file: str | None):
    """Service-account credentials from a file, else Application Default Credentials, else None."""
    if credentials_file:
        return service_account_credentials(credentials_file, SCOPES)
    try:
        import google.auth

        credentials, _ = google.auth.default(scopes=SCOPES)
        return credentials
    except Exception:  # noqa: BLE001 - DefaultCredentialsError and friends: no Google credentials here
        return None


def sheets_http_client(credentials=None, endpoint: str | None = None, timeout: float = 120) -> RetryingHTTPClient:
    """An HTTP client for the Sheets API (``endpoint`` replaces Google's base URL when given)."""
    if endpoint and credentials is None:
        session = _RedirectedSession(endpoint)
    elif endpoint:
        session = _RedirectedAuthorizedSession(credentials, endpoint)
    elif credentials is not None:
        session = AuthorizedSession(credentials)
    else:
        raise SheetsError("no Google credentials: set GOOGLE_APPLICATION_CREDENTIALS (service account JSON) or "
                          "configure Application Default Credentials")
    client = RetryingHTTPClient(credentials, session)
    client.set_timeout(timeout)
    return client


def _hint(exc: APIError, http: RetryingHTTPClient) -> str:
    """What to do about the two errors a new set-up meets: a spreadsheet not shared, or a wrong id."""
    if exc.code == 403:
        who = getattr(getattr(http.session, "credentials", None), "service_account_email", None)
        return (f" (share the spreadsheet with {who} as Editor)" if who
                else " (share the spreadsheet, as Editor, with the Google account whose credentials are in use)")
    if exc.code == 404:
        return " (check the id in [sheets.spreadsheets]: the part of the sheet's URL between /d/ and /edit)"
    return ""


def push_dashboard(dashboard: Dashboard, spreadsheet_id: str, http: RetryingHTTPClient) -> PushResult:
    """Write ``dashboard`` into the spreadsheet: one metadata read, one batchUpdate, one values:batchUpdate."""
    before = http.requests
    try:
        meta = http.fetch_sheet_metadata(spreadsheet_id, params={
            "includeGridData": "false",
            "fields": "spreadsheetId,properties.title,sheets(properties(sheetId,title,index,gridProperties),"
                      "charts(chartId),conditionalFormats)",
        })
    except APIError as exc:
        raise SheetsError(f"cannot open spreadsheet {spreadsheet_id}: {exc}{_hint(exc, http)}") from None
    existing = {s["properties"]["title"]: s for s in meta.get("sheets", [])}
    next_id = max([s["properties"]["sheetId"] for s in existing.values()] + [0]) + 1
    structure: list[dict] = []
    values: list[dict] = []
    cells = 0
    for tab in dashboard.tabs:
        sheet = existing.get(tab.name)
        rows_needed, cols_needed = tab.n_rows + 5, tab.n_cols + 1
        if sheet is None:
            sheet_id, rows, cols = next_id, rows_needed, cols_needed
            next_id += 1
            structure.append({"addSheet": {"properties": {
                "sheetId": sheet_id, "title": tab.name,
                "gridProperties": {"rowCount": rows, "columnCount": cols, "frozenRowCount": tab.freeze_rows}}}})
        else:
            props = sheet["properties"]
            sheet_id = props["sheetId"]
            grid = props.get("gridProperties", {})
            rows = max(grid.get("rowCount", 0), rows_needed)
            cols = max(grid.get("columnCount", 0), cols_needed)
            structure.append({"updateSheetProperties": {
                "properties": {"sheetId": sheet_id, "gridProperties": {
                    "rowCount": rows, "columnCount": cols, "frozenRowCount": tab.freeze_rows}},
                "fields": "gridProperties(rowCount,columnCount,frozenRowCount)"}})
            for index in reversed(range(len(sheet.get("conditionalFormats", [])))):
                structure.append({"deleteConditionalFormatRule": {"sheetId": sheet_id, "index": index}})
            for chart in sheet.get("charts", []):
                structure.append({"deleteEmbeddedObject": {"objectId": chart["chartId"]}})
        structure += _formats(tab, sheet_id)
        grid_values = _grid(tab, rows, cols)
        cells += rows * cols
        values.append({"range": f"{_quote(tab.name)}!A1", "majorDimension": "ROWS", "values": grid_values})
    try:
        http.batch_update(spreadsheet_id, {"requests": structure})
        http.values_batch_update(spreadsheet_id, {"valueInputOption": "RAW", "data": values})
    except APIError as exc:
        raise SheetsError(f"updating spreadsheet {spreadsheet_id} failed: {exc}{_hint(exc, http)}") from None
    return PushResult(spreadsheet_id, [t.name for t in dashboard.tabs], cells, http.requests - before)


# ---------------------------------------------------------------------------------------- values
def _quote(title: str) -> str:
    return "'" + title.replace("'", "''") + "'"


def _grid(tab: Tab, rows: int, cols: int) -> list[list[Any]]:
    grid: list[list[Any]] = [[""] * cols for _ in range(rows)]
    grid[0][0], grid[1][0], grid[2][0] = tab.title, tab.refreshed, tab.definition
    if tab.warnings:
        grid[3][0] = "Warning: " + " | ".join(tab.warnings)
    for block in tab.blocks:
        r, c = block.top, block.left
        grid[r][c] = block.title
        if block.spec.layout == "vertical":
            values = block.rows[0] if block.rows else [None] * len(block.headers)
            for i, (header, value) in enumerate(zip(block.headers, values)):
                grid[r + 1 + i][c], grid[r + 1 + i][c + 1] = header, serial(value)
            continue
        for j, header in enumerate(block.headers):
            grid[r + 1][c + j] = header
        if not block.rows:
            grid[r + 2][c] = "(no rows)"
        for i, row in enumerate(block.rows):
            for j, value in enumerate(row):
                grid[r + 2 + i][c + j] = serial(value)
    return grid


# ---------------------------------------------------------------------------------------- formats
def _range(sheet_id: int, r1: int, c1: int, r2: int, c2: int) -> dict:
    return {"sheetId": sheet_id, "startRowIndex": r1, "endRowIndex": r2, "startColumnIndex": c1, "endColumnIndex": c2}


def _fmt(sheet_id, r1, c1, r2, c2, fmt: dict, fields: str) -> dict:
    return {"repeatCell": {"range": _range(sheet_id, r1, c1, r2, c2), "cell": {"userEnteredFormat": fmt},
                           "fields": fields}}


def _rgb(hex_colour: str) -> dict:
    h = hex_colour.lstrip("#")
    return {"red": int(h[0:2], 16) / 255, "green": int(h[2:4], 16) / 255, "blue": int(h[4:6], 16) / 255}


def _number_format(fmt: str) -> dict:
    kind, pattern = PATTERNS[fmt]
    return {"numberFormat": {"type": kind, "pattern": pattern}}


HEADER = {"textFormat": {"bold": True}, "backgroundColor": _rgb("#dde5f0")}


def _formats(tab: Tab, sid: int) -> list[dict]:
    out = [
        {"repeatCell": {"range": {"sheetId": sid}, "cell": {"userEnteredFormat": {}}, "fields": "userEnteredFormat"}},
        _fmt(sid, 0, 0, 1, 1, {"textFormat": {"bold": True, "fontSize": 14}}, "userEnteredFormat.textFormat"),
        _fmt(sid, 1, 0, 3, 1, {"textFormat": {"italic": True, "fontSize": 9,
                                               "foregroundColor": _rgb("#595959")}}, "userEnteredFormat.textFormat"),
        _fmt(sid, 3, 0, 4, 1, {"textFormat": {"foregroundColor": _rgb("#c00000")}}, "userEnteredFormat.textFormat"),
    ]
    for block in tab.blocks:
        out += _block_formats(block, sid)
    return out


def _block_formats(block: Block, sid: int) -> list[dict]:
    r, c = block.top, block.left
    out = [_fmt(sid, r, c, r + 1, c + 1, {"textFormat": {"bold": True, "foregroundColor": _rgb("#1f3864")}},
                "userEnteredFormat.textFormat")]
    if block.spec.layout == "vertical":
        n = len(block.headers)
        out.append(_fmt(sid, r + 1, c, r + 1 + n, c + 1, HEADER, "userEnteredFormat(textFormat,backgroundColor)"))
        for i, fmt in enumerate(block.formats):
            if fmt != "text":
                out.append(_fmt(sid, r + 1 + i, c + 1, r + 2 + i, c + 2, _number_format(fmt),
                                "userEnteredFormat.numberFormat"))
        return out
    width = len(block.headers)
    first, last = r + 2, r + 2 + max(len(block.rows), 1)
    out.append(_fmt(sid, r + 1, c, r + 2, c + width, HEADER, "userEnteredFormat(textFormat,backgroundColor)"))
    for j, fmt in enumerate(block.formats):
        if fmt != "text":
            out.append(_fmt(sid, first, c + j, last, c + j + 1, _number_format(fmt), "userEnteredFormat.numberFormat"))
    if block.spec.bold_rows:
        field, value = block.spec.bold_rows
        index = block.fields.index(field)
        for i, row in enumerate(block.rows):
            if row[index] == value:
                out.append(_fmt(sid, first + i, c, first + i + 1, c + width, {"textFormat": {"bold": True}},
                                "userEnteredFormat.textFormat.bold"))
    for rule in block.spec.conditional:
        if rule.field not in block.fields or not block.rows:
            continue
        col = c + block.fields.index(rule.field)
        kind, value = _CONDITIONS[rule.rule], str(rule.value)
        if rule.rule == "equals" and isinstance(rule.value, (int, float)):
            kind = "NUMBER_EQ"
        elif rule.rule == "not_equals" and not isinstance(rule.value, (int, float)):
            kind, value = "CUSTOM_FORMULA", f'={a1(first, col)}<>"{rule.value}"'  # Sheets has no TEXT_NOT_EQ
        out.append({"addConditionalFormatRule": {"index": 0, "rule": {
            "ranges": [_range(sid, first, col, last, col + 1)],
            "booleanRule": {"condition": {"type": kind, "values": [{"userEnteredValue": value}]},
                            "format": {"backgroundColor": _rgb(rule.colour)}}}}})
    if block.spec.chart and block.rows:
        out.append(_chart(block, sid, r + 1, last))
    return out


def _chart(block: Block, sid: int, header_row: int, last: int) -> dict:
    spec = block.spec.chart
    c = block.left

    def source(field: str) -> dict:
        col = c + block.fields.index(field)
        return {"sourceRange": {"sources": [_range(sid, header_row, col, last, col + 1)]}}

    anchor_row, anchor_col = spec.at if spec.at else (block.top, block.left + len(block.headers) + 1)
    position = {"overlayPosition": {"anchorCell": {"sheetId": sid, "rowIndex": anchor_row, "columnIndex": anchor_col},
                                    "widthPixels": 640, "heightPixels": 320}}
    if spec.type == "pie":
        chart_spec = {"title": spec.title, "pieChart": {"legendPosition": "RIGHT_LEGEND", "domain": source(spec.x),
                                                         "series": source(spec.y[0])}}
    else:
        chart_spec = {"title": spec.title, "basicChart": {
            "chartType": "LINE" if spec.type == "line" else "COLUMN", "legendPosition": "BOTTOM_LEGEND",
            "headerCount": 1, "domains": [{"domain": source(spec.x)}],
            "series": [{"series": source(y), "targetAxis": "LEFT_AXIS"} for y in spec.y]}}
        if spec.stacked:
            chart_spec["basicChart"]["stackedType"] = "STACKED"
    return {"addChart": {"chart": {"spec": chart_spec, "position": position}}}
