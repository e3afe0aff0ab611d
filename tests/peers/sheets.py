"""A local, stateful Google Sheets API v4 (the subset the dashboard uses), on 127.0.0.1.

``GET /v4/spreadsheets/{id}``, ``POST …:batchUpdate`` (addSheet, updateSheetProperties,
repeatCell, add/deleteConditionalFormatRule, addChart, deleteEmbeddedObject; applied atomically:
one bad request and nothing changes) and ``POST …/values:batchUpdate`` (ranges checked against
grid limits). Errors use Google's JSON shape, so gspread raises its real ``APIError``. Every
request is counted, and the spreadsheet is snapshotted after each one (to check that a tab never
goes blank during a refresh). Failures can be scripted per kind: metadata, batchUpdate, values.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


class SheetsApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _cell(a1: str) -> tuple[int, int]:
    m = re.fullmatch(r"([A-Z]+)([0-9]+)", a1)
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


class FakeSheets:
    def __init__(self):
        self.spreadsheets: dict[str, dict] = {}
        self.requests: list[tuple[str, str]] = []
        self.counts: Counter = Counter()
        self.failures: dict[str, list[int]] = defaultdict(list)
        self.snapshots: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def create(self, spreadsheet_id: str, title: str = "Dashboard", tabs: dict[str, tuple[int, int]] | None = None) -> None:
        sheets = []
        for i, (name, (rows, cols)) in enumerate((tabs or {"Sheet1": (1000, 26)}).items()):
            sheets.append(self._new_sheet(i, name, rows, cols, i))
        self.spreadsheets[spreadsheet_id] = {"title": title, "sheets": sheets}

    def fail(self, kind: str, *statuses: int) -> None:
        """Script failures for 'metadata', 'batchUpdate' or 'values'."""
        self.failures[kind].extend(statuses)

    def values(self, spreadsheet_id: str, tab: str) -> dict[tuple[int, int], object]:
        return self._sheet(self.spreadsheets[spreadsheet_id], tab)["cells"]

    def sheet(self, spreadsheet_id: str, tab: str) -> dict:
        return self._sheet(self.spreadsheets[spreadsheet_id], tab)

    def start(self) -> "FakeSheets":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ model
    @staticmethod
    def _new_sheet(sheet_id: int, title: str, rows: int, cols: int, index: int) -> dict:
        return {"properties": {"sheetId": sheet_id, "title": title, "index": index,
                               "gridProperties": {"rowCount": rows, "columnCount": cols}},
                "charts": [], "conditionalFormats": [], "cells": {}, "formats": {}}

    @staticmethod
    def _sheet(book: dict, title: str) -> dict:
        for s in book["sheets"]:
            if s["properties"]["title"] == title:
                return s
        raise SheetsApiError(400, f"Unable to parse range: '{title}'")

    @staticmethod
    def _by_id(book: dict, sheet_id: int) -> dict:
        for s in book["sheets"]:
            if s["properties"]["sheetId"] == sheet_id:
                return s
        raise SheetsApiError(400, f"No grid with id: {sheet_id}")

    def _metadata(self, spreadsheet_id: str, book: dict) -> dict:
        return {"spreadsheetId": spreadsheet_id, "properties": {"title": book["title"]},
                "sheets": [{"properties": s["properties"], "charts": s["charts"],
                            "conditionalFormats": s["conditionalFormats"]} for s in book["sheets"]]}

    def _check_range(self, sheet: dict, grid_range: dict) -> None:
        grid = sheet["properties"]["gridProperties"]
        if grid_range.get("endRowIndex", 0) > grid["rowCount"] or grid_range.get("endColumnIndex", 0) > grid["columnCount"]:
            raise SheetsApiError(400, f"Range {grid_range} exceeds grid limits of sheet "
                                      f"'{sheet['properties']['title']}'")

    def _batch_update(self, book: dict, requests_: list[dict]) -> list[dict]:
        replies = []
        for request in requests_:
            (kind, body), = request.items()
            if kind == "addSheet":
                props = body["properties"]
                if any(s["properties"]["title"] == props["title"] for s in book["sheets"]):
                    raise SheetsApiError(400, f"A sheet with the name \"{props['title']}\" already exists.")
                grid = props.get("gridProperties", {})
                sheet = self._new_sheet(props.get("sheetId", len(book["sheets"]) + 100), props["title"],
                                        grid.get("rowCount", 1000), grid.get("columnCount", 26), len(book["sheets"]))
                sheet["properties"]["gridProperties"].update(grid)
                book["sheets"].append(sheet)
                replies.append({"addSheet": {"properties": sheet["properties"]}})
            elif kind == "updateSheetProperties":
                sheet = self._by_id(book, body["properties"]["sheetId"])
                sheet["properties"]["gridProperties"].update(body["properties"].get("gridProperties", {}))
                replies.append({})
            elif kind == "repeatCell":
                sheet = self._by_id(book, body["range"]["sheetId"])
                rng = body["range"]
                if "startRowIndex" not in rng:
                    if body["cell"].get("userEnteredFormat") == {}:
                        sheet["formats"].clear()
                else:
                    self._check_range(sheet, rng)
                    for r in range(rng["startRowIndex"], rng["endRowIndex"]):
                        for c in range(rng["startColumnIndex"], rng["endColumnIndex"]):
                            fmt = sheet["formats"].setdefault((r, c), {})
                            fmt.update(copy.deepcopy(body["cell"]["userEnteredFormat"]))
                replies.append({})
            elif kind == "addConditionalFormatRule":
                sheet = self._by_id(book, body["rule"]["ranges"][0]["sheetId"])
                sheet["conditionalFormats"].insert(body.get("index", 0), body["rule"])
                replies.append({})
            elif kind == "deleteConditionalFormatRule":
                sheet = self._by_id(book, body["sheetId"])
                if body["index"] >= len(sheet["conditionalFormats"]):
                    raise SheetsApiError(400, f"No conditional format on sheet: {body['sheetId']} at index: {body['index']}")
                sheet["conditionalFormats"].pop(body["index"])
                replies.append({})
            elif kind == "addChart":
                chart = copy.deepcopy(body["chart"])
                anchor = chart["position"]["overlayPosition"]["anchorCell"]
                sheet = self._by_id(book, anchor["sheetId"])
                chart["chartId"] = 1 + max([c["chartId"] for s in book["sheets"] for c in s["charts"]] + [1000])
                sheet["charts"].append(chart)
                replies.append({"addChart": {"chart": chart}})
            elif kind == "deleteEmbeddedObject":
                for sheet in book["sheets"]:
                    sheet["charts"] = [c for c in sheet["charts"] if c["chartId"] != body["objectId"]]
                replies.append({})
            else:
                raise SheetsApiError(400, f"Invalid requests[0]: unsupported request {kind} (in this fake)")
        return replies

    def _values_update(self, book: dict, body: dict) -> int:
        if body.get("valueInputOption") not in ("RAW", "USER_ENTERED"):
            raise SheetsApiError(400, "'valueInputOption' is required but not specified")
        updated = 0
        for data in body.get("data", []):
            title, _, start = data["range"].rpartition("!")
            title = title[1:-1].replace("''", "'") if title.startswith("'") else title
            sheet = self._sheet(book, title)
            r0, c0 = _cell(start)
            rows = data.get("values", [])
            grid = sheet["properties"]["gridProperties"]
            if r0 + len(rows) > grid["rowCount"] or c0 + max((len(r) for r in rows), default=0) > grid["columnCount"]:
                raise SheetsApiError(400, f"Range ('{title}'!{start}) exceeds grid limits. Max rows: "
                                          f"{grid['rowCount']}, max columns: {grid['columnCount']}")
            for i, row in enumerate(rows):
                for j, value in enumerate(row):
                    if value == "":
                        sheet["cells"].pop((r0 + i, c0 + j), None)
                    else:
                        sheet["cells"][(r0 + i, c0 + j)] = value
                    updated += 1
        return updated

    # ------------------------------------------------------------------ HTTP
    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _error(self, status: int, message: str) -> None:
                state = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}.get(status, "UNAVAILABLE")
                self._send(status, {"error": {"code": status, "message": message, "status": state}})

            def _handle(self, method: str) -> None:
                path = unquote(urlparse(self.path).path)
                m = re.fullmatch(r"/v4/spreadsheets/([^/:]+)(:batchUpdate|/values:batchUpdate)?", path)
                if not m:
                    return self._error(404, f"not found: {path}")
                spreadsheet_id, action = m.groups()
                kind = {None: "metadata", ":batchUpdate": "batchUpdate", "/values:batchUpdate": "values"}[action]
                with fake.lock:
                    fake.requests.append((method, kind))
                    fake.counts[kind] += 1
                    if fake.failures[kind]:
                        return self._error(fake.failures[kind].pop(0), "scripted failure")
                    book = fake.spreadsheets.get(spreadsheet_id)
                    if book is None:
                        return self._error(404, "Requested entity was not found.")
                    try:
                        if kind == "metadata":
                            payload = fake._metadata(spreadsheet_id, book)
                        else:
                            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                            staged = copy.deepcopy(book)  # all or nothing, like the real API
                            if kind == "batchUpdate":
                                replies = fake._batch_update(staged, body.get("requests", []))
                                payload = {"spreadsheetId": spreadsheet_id, "replies": replies}
                            else:
                                payload = {"spreadsheetId": spreadsheet_id,
                                           "totalUpdatedCells": fake._values_update(staged, body)}
                            fake.spreadsheets[spreadsheet_id] = staged
                    except SheetsApiError as exc:
                        return self._error(exc.status, exc.message)
                    fake.snapshots.append((kind, copy.deepcopy(fake.spreadsheets[spreadsheet_id])))
                return self._send(200, payload)

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler
