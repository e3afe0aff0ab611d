"""Alert checks beside a worker: ingest pokes after each commit, a thread of its own checks.

The IRIS worker (and the file-drop replay) call :meth:`AlertMonitor.poke` after each committed
batch. The poke only sets a flag, so ingestion never waits for a rule or a webhook: the monitor's
thread runs :func:`alerts.events.check` over the data rules, at most once per
``min_interval_seconds``, and pokes that arrive meanwhile fold into the next check.
"""

from __future__ import annotations

import logging
import threading
import time

from alerts.events import check
from alerts.rules import IRIS_KINDS, check_targets
from core.config import Settings
from warehouse.base import Warehouse

log = logging.getLogger(__name__)


class AlertMonitor:
    def __init__(self, wh: Warehouse, settings: Settings, kinds=IRIS_KINDS, **check_options):
        self.wh = wh
        self.settings = settings
        self.kinds = kinds
        self.check_options = check_options
        self.checks = 0
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return any(r.kind in self.kinds for r in self.settings.alerts.rules)

    def start(self) -> "AlertMonitor":
        if self.active and self._thread is None:
            check_targets(self.settings.alerts)  # fail at start, not at the first alert
            self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
            self._thread.start()
        return self

    def poke(self, *_: object) -> None:
        """New data is committed (the worker's after-commit hook): check soon."""
        self._poked.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Run a last check for anything poked, then stop."""
        self._stop.set()
        self._poked.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        interval = self.settings.alerts.min_interval_seconds
        last = 0.0
        while True:
            self._poked.wait()
            if self._stop.is_set() and not self._poked.is_set():
                return
            wait = last + interval - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)  # a stop cuts the wait short: what was poked is checked once more, now
            self._poked.clear()
            last = time.monotonic()
            try:
                result = check(self.wh, self.settings, kinds=self.kinds, **self.check_options)
                self.checks += 1
                for line in result.lines()[1:]:
                    log.info("alerts: %s", line.strip())
            except Exception as exc:  # noqa: BLE001 - alerting never stops ingestion; the next poke retries
                log.error("alert check failed: %s", exc)
            if self._stop.is_set():
                return
