"""Fill IRIS gaps from the BMRS Insights API (no key needed) into the same ``bmrs_*`` tables.

``/datasets/{X}/stream`` answers a bare JSON array of the same row objects IRIS carries; the
settlement datasets (``/balancing/settlement/...``) answer one date (or period) and one side per
path, and each row is stored with the side asked for. A range
is split into chunks no longer than the dataset's range limit (``datasets.py``); ``to`` is
inclusive, so a row on a chunk boundary comes back twice and is dropped by the natural key (the
count is reported). A 400 answer about the range halves the window; 429, 5xx and timeouts are
retried with exponential backoff and jitter. Rows load with ``_source = 'api'``; a row IRIS
already delivered is not stored again.

**Resumable by window**: each window fetched is recorded in ``iris_api_windows`` once its rows are
committed, and a later fill of the same dataset skips a window already fetched at least
``SETTLED_AFTER`` after it ended (its data was complete then); a window fetched while it was still
being published is fetched again. A six-year BOD backfill (about 52,000 one-hour requests) killed
half-way restarts where it stopped.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import pyarrow as pa
import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from core.errors import ArgumentError, InsightsError
from core.settlement import iso_utc, periods_in_day
from ingest.iris.datasets import SPECS, DatasetSpec
from ingest.iris.decode import Message, decode_body
from ingest.iris.load import IrisLoader
from ingest.iris.tables import API_WINDOWS

log = logging.getLogger(__name__)

INSIGHTS_URL = "https://data.elexon.co.uk/bmrs/api/v1"


class _RangeTooLong(Exception):
    pass


class _Retryable(Exception):
    pass


SETTLED_AFTER = dt.timedelta(hours=6)  # a window fetched this long after its end is not fetched again


@dataclass
class FillSummary:
    dataset: str
    start: dt.datetime
    end: dt.datetime
    windows: int = 0  # planned
    skipped: int = 0  # fetched by an earlier fill (complete then)
    done: int = 0
    requests: int = 0
    records: int = 0
    inserted: int = 0
    duplicate_rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def lines(self) -> list[str]:
        return [
            f"Insights API gap fill {self.dataset} {self.start:%Y-%m-%d %H:%M} .. {self.end:%Y-%m-%d %H:%M} UTC: "
            f"{self.requests} requests in {self.seconds:,.1f} s"
            + (f"; {self.skipped:,} of {self.windows:,} windows already fetched by an earlier fill" if self.skipped else ""),
            f"  rows            {self.records:,} received, {self.inserted:,} new, "
            f"{self.duplicate_rows:,} already stored (IRIS or a chunk edge), {self.quarantined:,} quarantined",
        ]


class InsightsClient:
    def __init__(self, base_url: str | None = None, *, timeout: float = 120, attempts: int = 6,
                 backoff_max_s: float = 60, session: requests.Session | None = None):
        self.base_url = (base_url or INSIGHTS_URL).rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_max_s = backoff_max_s
        self.session = session or requests.Session()

    def fetch(self, spec: DatasetSpec, start: dt.datetime, end: dt.datetime) -> bytes:
        """The raw body for one window (``start`` and ``end`` inclusive, as the API treats them); for a
        per-date endpoint, every side (and period) of the settlement date ``start`` falls on, as one
        JSON array whose rows carry the side they were asked for."""
        api = spec.api
        if api.per_date:
            return self._fetch_day(spec, start.date())
        return self.get(api.path, {api.from_param: iso_utc(start), api.to_param: iso_utc(end)})

    def _fetch_day(self, spec: DatasetSpec, day: dt.date) -> bytes:
        api = spec.api
        periods = range(1, periods_in_day(day) + 1) if "{period}" in api.path else [None]
        rows: list[dict] = []
        for side in api.sides or [None]:
            for period in periods:
                path = api.path.format(date=day.isoformat(), side=side, period=period)
                body = self.get(path, {}, missing_ok=True)
                got = decode_body(body) if body else []
                if side:
                    for row in got:
                        row.setdefault("side", side)
                rows.extend(got)
        return orjson.dumps(rows)

    def get(self, path: str, params: dict, *, missing_ok: bool = False) -> bytes:
        """One GET, retried; ``missing_ok``: a 404 (a period the day does not have) is an empty answer."""
        what = f"{path} {params}" if params else path

        def once() -> bytes:
            try:
                response = self.session.get(self.base_url + path, params=params, timeout=self.timeout)
            except (requests.Timeout, requests.ConnectionError) as exc:
                errno = re.search(r"\[Errno [^\]]+\] [^'\")]+", str(exc))  # e.g. Name or service not known
                raise _Retryable(f"{type(exc).__name__}" + (f" ({errno.group(0)})" if errno else "")) from None
            if response.status_code in (429, 403) or response.status_code >= 500:
                raise _Retryable(f"HTTP {response.status_code}: {response.text[:200]}")
            if response.status_code == 400 and "exceed" in response.text.lower():
                raise _RangeTooLong(response.text[:300])
            if response.status_code == 404 and missing_ok:
                return b""
            if response.status_code != 200:
                raise InsightsError(f"{what}: HTTP {response.status_code}: {response.text[:300]}")
            try:  # a proxy's or a maintenance page's 200 is not an answer: loading it would mark the window done
                orjson.loads(response.content)
            except orjson.JSONDecodeError:
                kind = response.headers.get("Content-Type", "no content type")
                raise _Retryable(f"HTTP 200 with a body that is not JSON ({kind}): {response.text[:80]!r}") from None
            return response.content

        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            wait=wait_random_exponential(multiplier=1, max=self.backoff_max_s),
            stop=stop_after_attempt(self.attempts),
            before_sleep=lambda s: log.warning("%s: %s; retrying", what, s.outcome.exception()),
        )
        try:
            return retrying(once)
        except RetryError as exc:
            raise InsightsError(f"{what}: gave up after {self.attempts} attempts: {exc.last_attempt.exception()}") from None


def windows(start: dt.datetime, end: dt.datetime, chunk: dt.timedelta) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    """Consecutive windows covering start..end, none longer than ``chunk``; each ends where the next begins."""
    at = start
    while at < end:
        stop = min(at + chunk, end)
        yield at, stop
        at = stop


def fill_gap(
    loader: IrisLoader,
    dataset: str,
    start: dt.datetime,
    end: dt.datetime,
    *,
    client: InsightsClient | None = None,
    on_chunk: Callable[[FillSummary], None] | None = None,
    resume: bool = True,
) -> FillSummary:
    """Load ``dataset`` rows for ``start``..``end`` (UTC) from the Insights API (``resume``: skip the
    windows an earlier fill fetched complete)."""
    code = dataset.upper()
    spec = SPECS.get(code)
    if spec is None or spec.api is None:
        known = ", ".join(sorted(c for c, s in SPECS.items() if s.api))
        raise InsightsError(f"no Insights API endpoint is known for dataset {dataset!r}; known: {known}")
    if end <= start:
        raise ArgumentError(f"the end {end} is not after the start {start}")
    client = client or InsightsClient()
    summary = FillSummary(code, start, end)
    started = time.perf_counter()
    if spec.api.per_date:  # one window per settlement date, the UTC days the range touches
        start = dt.datetime.combine(start.date(), dt.time(), tzinfo=dt.timezone.utc)
    planned = list(windows(start, end, spec.api.chunk))
    wh = loader.wh
    wh.ensure_tables([API_WINDOWS])
    done = _complete_windows(wh, code, start, end) if resume else []
    pending = [w for w in planned if not any(a <= w[0] and w[1] <= b for a, b in done)]
    summary.windows, summary.skipped = len(planned), len(planned) - len(pending)
    if on_chunk:
        on_chunk(summary)
    while pending:
        lo, hi = pending.pop(0)
        summary.requests += 1
        try:
            body = client.fetch(spec, lo, hi)
        except _RangeTooLong as exc:
            if hi - lo <= dt.timedelta(minutes=2):
                raise InsightsError(f"{code}: the API refuses even a {hi - lo} window: {exc}") from None
            mid = lo + (hi - lo) / 2
            log.warning("%s: window %s..%s too long for the API (%s); halving it", code, lo, hi, exc)
            pending[:0] = [(lo, mid), (mid, hi)]
            continue
        fetched = dt.datetime.now(dt.timezone.utc)
        message = Message(
            message_id=f"api:{code}:{iso_utc(lo)}:{iso_utc(hi)}:{fetched:%Y%m%dT%H%M%S.%f}",
            body=body,
            subject=code,
            source="api",
            enqueued_at=fetched,
        )
        result = loader.load([message])
        wh.write({API_WINDOWS.name: API_WINDOWS.conform(pa.Table.from_pylist([
            {"dataset": code, "window_from": lo, "window_to": hi, "records": result.rows + result.quarantined,
             "fetched_at": fetched}]))})
        summary.done += 1
        summary.records += result.rows + result.quarantined
        summary.inserted += result.inserted
        summary.duplicate_rows += result.duplicate_rows
        summary.quarantined += result.quarantined
        summary.seconds = time.perf_counter() - started
        if on_chunk:
            on_chunk(summary)
    summary.seconds = time.perf_counter() - started
    return summary


def _complete_windows(wh, code: str, start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]]:
    """Windows of ``code`` inside start..end that an earlier fill fetched after their data was complete."""
    rows = wh.query_rows(
        f"SELECT window_from, window_to, fetched_at FROM {wh.ref(API_WINDOWS.name)} "
        "WHERE dataset = @code AND window_from >= @lo AND window_from < @hi",
        {"code": code, "lo": start - dt.timedelta(days=7), "hi": end})
    return sorted((r["window_from"], r["window_to"]) for r in rows if r["fetched_at"] - r["window_to"] >= SETTLED_AFTER)
