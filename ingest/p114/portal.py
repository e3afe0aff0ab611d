"""Elexon Portal P114 client: list S0142 files by publication date and download them.

``GET /p114/list?key=…&date=YYYY-MM-DD&filter=s0142`` → JSON keyed by file name (``[]`` when
empty); ``GET /p114/download?key=…&filename=…`` → the gzip file. The scripting key comes from
``ELEXON_PORTAL_KEY``; it is registered for redaction, so it never appears in a log line or an
error message (urllib3 logs full URLs at DEBUG). A 200 answer that is not JSON (list) or not gzip
(download) is an error: the Portal reports some failures, such as "Scripting Error 001", that way.
Retries with exponential backoff and jitter on HTTP 5xx and timeouts only.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import requests
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from core.errors import PortalError
from core.logs import redact, register_secret

log = logging.getLogger(__name__)

PORTAL_URL = "https://downloads.elexonportal.co.uk"
KEY_ENV = "ELEXON_PORTAL_KEY"
GZIP_MAGIC = b"\x1f\x8b"


class _Retryable(Exception):
    """A 5xx answer or a timeout: worth another attempt."""


class PortalClient:
    """Talks to the Elexon Portal's P114 endpoints (or a stand-in at ``base_url``)."""

    def __init__(
        self,
        key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | tuple[float, float] = (15, 300),
        attempts: int = 5,
        backoff_max_s: float = 60,
        session: requests.Session | None = None,
    ):
        self.key = key or ""
        if not self.key:
            raise PortalError(f"{KEY_ENV} is not set: put your Elexon Portal scripting key in that environment variable")
        register_secret(self.key)
        self.base_url = (base_url or PORTAL_URL).rstrip("/")
        self.timeout = timeout
        self.attempts = attempts
        self.backoff_max_s = backoff_max_s
        self.session = session or requests.Session()

    def list_s0142(self, publication_date: dt.date) -> list[str]:
        """Names of the S0142 files published on ``publication_date`` (not the settlement date)."""
        what = f"Portal listing for {publication_date}"
        params = {"date": publication_date.isoformat(), "filter": "s0142"}
        content = self._retrying(what, lambda: self._fetch("/p114/list", params, what).content)
        try:
            body = json.loads(content)
        except ValueError:
            raise PortalError(f"{what}: the Portal answered with text, not JSON: {_snippet(content)}") from None
        if isinstance(body, dict):
            names = list(body)
        elif isinstance(body, list):
            names = [item if isinstance(item, str) else str(item.get("filename", "")) for item in body]
        else:
            raise PortalError(f"{what}: unexpected JSON {type(body).__name__}: {_snippet(content)}")
        return sorted(n for n in names if n.upper().startswith("S0142"))

    def download(self, filename: str, directory: str | Path) -> Path:
        """Download ``filename`` into ``directory`` atomically (``.part`` then rename); return its path."""
        if not filename or "/" in filename or "\\" in filename or filename.startswith("."):
            raise PortalError(f"refusing unsafe file name from the Portal: {filename!r}")
        target = Path(directory) / filename
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(target.name + ".part")
        what = f"Portal download of {filename}"

        def fetch_once() -> None:
            response = self._fetch("/p114/download", {"filename": filename}, what, stream=True)
            try:
                with part.open("wb") as out:
                    chunks = response.iter_content(chunk_size=1 << 20)
                    first = next(chunks, b"")
                    if not first.startswith(GZIP_MAGIC):
                        raise PortalError(f"{what}: the Portal answered with text, not gzip: {_snippet(first)}")
                    out.write(first)
                    for chunk in chunks:
                        out.write(chunk)
            except requests.RequestException as exc:
                raise self._classify(exc, what) from None
            finally:
                response.close()

        try:
            self._retrying(what, fetch_once)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        part.replace(target)
        return target

    def _fetch(self, path: str, params: dict[str, str], what: str, stream: bool = False) -> requests.Response:
        """One HTTP attempt; 5xx and timeouts raise :class:`_Retryable`, other failures PortalError."""
        try:
            response = self.session.get(
                self.base_url + path, params={"key": self.key, **params}, timeout=self.timeout, stream=stream
            )
        except requests.RequestException as exc:
            raise self._classify(exc, what) from None
        if response.status_code >= 500:
            response.close()
            raise _Retryable(f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise PortalError(f"{what}: HTTP {response.status_code}: {_snippet(response.content)}")
        return response

    @staticmethod
    def _classify(exc: requests.RequestException, what: str) -> Exception:
        text = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, requests.Timeout) or "timed out" in text.lower():
            return _Retryable(f"timed out ({type(exc).__name__})")
        return PortalError(f"{what}: {text}")

    def _retrying(self, what: str, fn):
        retrying = Retrying(
            retry=retry_if_exception_type(_Retryable),
            wait=wait_random_exponential(multiplier=1, max=self.backoff_max_s),
            stop=stop_after_attempt(self.attempts),
            before_sleep=lambda state: log.warning(
                "%s: %s; retrying (attempt %d of %d)", what, state.outcome.exception(), state.attempt_number + 1,
                self.attempts,
            ),
        )
        try:
            return retrying(fn)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise PortalError(f"{what}: gave up after {self.attempts} attempts; last error: {last}") from None


def _snippet(body: bytes, limit: int = 200) -> str:
    text = body[:limit].decode("utf-8", errors="replace").strip()
    return repr(redact(text))
