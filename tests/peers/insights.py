"""A local BMRS Insights API serving ``/datasets/{X}/stream`` on 127.0.0.1.

Rows are synthesised for the requested window, inclusive at both ends as the real API is, with
the documented row shapes and the live API's ``…Z`` timestamps: FREQ every 15 s, FUELINST one row
per fuel type every 5 minutes (by publish time), BOALF one acceptance every 10 minutes. A window
longer than ``max_window`` gets Elexon's 400 answer; failures can be scripted.

The settlement endpoints (``/balancing/settlement/...``, one date, side or period per path) answer
``{"data": [...]}`` with the rows a test puts in ``settlement[path]``: an empty list for a day
path not given, a 404 for a period path not given (as the live API does for periods 49-50).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from ingest.iris.generate import FUEL_TYPES, _sp

UTC = dt.timezone.utc


def _t(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def _z(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _ticks(lo: dt.datetime, hi: dt.datetime, step: dt.timedelta):
    epoch = dt.datetime(2000, 1, 1, tzinfo=UTC)
    t = epoch + ((lo - epoch) // step) * step
    if t < lo:
        t += step
    while t <= hi:
        yield t
        t += step


def rows_for(dataset: str, lo: dt.datetime, hi: dt.datetime) -> list[dict]:
    if dataset == "FREQ":
        return [{"dataset": "FREQ", "measurementTime": _z(t), "frequency": round(50 + ((t.minute * 60 + t.second) % 97 - 48) / 1000, 3)}
                for t in _ticks(lo, hi, dt.timedelta(seconds=15))]
    if dataset == "FUELINST":
        rows = []
        for publish in _ticks(lo, hi, dt.timedelta(minutes=5)):
            start = publish - dt.timedelta(minutes=5)
            day, sp = _sp(start)
            rows += [{"dataset": "FUELINST", "publishTime": _z(publish), "startTime": _z(start), "settlementDate": day,
                      "settlementPeriod": sp, "fuelType": fuel, "generation": 1000 + i} for i, fuel in enumerate(FUEL_TYPES)]
        return rows
    if dataset == "BOALF":
        rows = []
        for start in _ticks(lo, hi, dt.timedelta(minutes=10)):
            day, sp = _sp(start)
            number = int(start.timestamp()) // 600
            rows.append({"dataset": "BOALF", "settlementDate": day, "settlementPeriodFrom": sp, "settlementPeriodTo": sp,
                         "timeFrom": _z(start), "timeTo": _z(start + dt.timedelta(minutes=5)), "levelFrom": 100,
                         "levelTo": 120, "acceptanceNumber": number, "acceptanceTime": _z(start - dt.timedelta(minutes=2)),
                         "deemedBoFlag": False, "soFlag": True, "amendmentFlag": "ORI", "storFlag": False,
                         "rrFlag": False, "nationalGridBmUnit": "MRWD-1", "bmUnit": "T_MRWD-1"})
        return rows
    return []


class FakeInsights:
    PARAMS = {"FREQ": ("measurementDateTimeFrom", "measurementDateTimeTo"),
              "FUELINST": ("publishDateTimeFrom", "publishDateTimeTo")}

    def __init__(self, max_window: dict[str, dt.timedelta] | None = None):
        self.max_window = max_window or {}
        self.bmunits: list[dict] = [
            {"nationalGridBmUnit": "AFLEX001", "elexonBmUnit": "V__AFLEX001", "eic": None, "fuelType": "OTHER",
             "leadPartyName": "VLP Co", "bmUnitType": "V", "fpnFlag": False},
            {"nationalGridBmUnit": "DRAX-1", "elexonBmUnit": "T_DRAX-1", "eic": "48W00000DRAXX-1", "fuelType": "BIOMASS",
             "leadPartyName": "Drax", "bmUnitType": "T", "fpnFlag": True},
        ]
        self.failures: dict[str, list[int]] = defaultdict(list)
        self.requests: list[tuple[str, dict]] = []
        self.counts: Counter = Counter()
        self.settlement: dict[str, list[dict]] = {}
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def fail(self, dataset: str, *statuses: int | str) -> None:
        """The next requests for ``dataset`` get these HTTP statuses; ``"html"``: a 200 with an HTML
        page (a proxy's or a maintenance page), not JSON."""
        self.failures[dataset].extend(statuses)

    def start(self) -> "FakeInsights":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int | str, payload) -> None:
                body, kind = json.dumps(payload).encode(), "application/json"
                if status == "html":
                    status, body, kind = 200, b"<html><body>Service temporarily unavailable</body></html>", "text/html"
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path == "/reference/bmunits/all":
                    fake.counts["bmunits"] += 1
                    if fake.failures["bmunits"]:
                        return self._send(fake.failures["bmunits"].pop(0), {"error": "scripted failure"})
                    return self._send(200, fake.bmunits)
                if url.path.startswith("/balancing/settlement/"):
                    fake.requests.append((url.path, params))
                    fake.counts[url.path.split("/")[3]] += 1
                    if url.path in fake.settlement:
                        return self._send(200, {"data": fake.settlement[url.path]})
                    per_period = url.path.startswith("/balancing/settlement/stack/")
                    return self._send(404, {"error": "not found"}) if per_period else self._send(200, {"data": []})
                parts = url.path.strip("/").split("/")
                if len(parts) != 3 or parts[0] != "datasets" or parts[2] != "stream":
                    return self._send(404, {"error": "not found"})
                dataset = parts[1].upper()
                fake.requests.append((dataset, params))
                fake.counts[dataset] += 1
                if fake.failures[dataset]:
                    return self._send(fake.failures[dataset].pop(0), {"error": "scripted failure"})
                lo_name, hi_name = fake.PARAMS.get(dataset, ("from", "to"))
                try:
                    lo, hi = _t(params[lo_name]), _t(params[hi_name])
                except (KeyError, ValueError):
                    return self._send(400, {"errors": {lo_name: [f"{lo_name} and {hi_name} are required"]}})
                limit = fake.max_window.get(dataset)
                if limit and hi - lo > limit:
                    return self._send(400, {"errors": {"": [
                        f"The date range between From and To inclusive must not exceed {limit}"]}})
                return self._send(200, rows_for(dataset, lo, hi))

        return Handler
