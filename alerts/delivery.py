"""Sending alert messages through apprise (one URL per target), with retries and a clear outcome.

A send is tried ``attempts`` times with exponential backoff; the outcome (ok, attempts, the
error apprise logged, redacted) is returned for ``alert_deliveries``. Nothing here raises for a
target that is down: an alert that cannot be delivered is recorded, never fatal.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from tenacity import Retrying, retry_if_result, stop_after_attempt, wait_exponential

from core.logs import redact
from core.settlement import LONDON

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    ok: bool
    attempts: int
    error: str | None = None


@dataclass
class Message:
    title: str
    body: str
    level: str = "warning"  # apprise notify type: info | success | warning | failure


def when(t: dt.datetime | None) -> str:
    """``2026-05-06 06:00:15 UTC (07:00:15 BST Europe/London)``."""
    if t is None:
        return "-"
    t = t.astimezone(dt.timezone.utc)
    local = t.astimezone(LONDON)
    day = "" if local.date() == t.date() else f"{local:%Y-%m-%d} "
    return f"{t:%Y-%m-%d %H:%M:%S} UTC ({day}{local:%H:%M:%S} {local:%Z} Europe/London)"


class Notifier:
    """Delivers :class:`Message` s to the named apprise targets."""

    def __init__(self, targets: dict[str, str], attempts: int = 3, wait_s: float = 1.0, wait_max_s: float = 30.0):
        self.targets = targets
        self.attempts = attempts
        self.wait = wait_exponential(multiplier=wait_s, max=wait_max_s)

    def send(self, target: str, message: Message) -> Outcome:
        import apprise

        url = self.targets.get(target)
        if url is None:
            return Outcome(False, 0, f"no target {target!r} in [alerts.targets]")
        notifier = apprise.Apprise()
        if not notifier.add(url):
            return Outcome(False, 0, f"apprise does not accept the URL of target {target}")
        errors: list[str] = []

        def attempt() -> bool:
            library = logging.getLogger("apprise")
            propagate = library.propagate
            # apprise's own lines (two per try) stay out of the log unless debugging: the outcome is logged once
            library.propagate = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
            try:
                with apprise.LogCapture(level=logging.WARNING, fmt="%(message)s") as captured:
                    result = notifier.notify(body=message.body, title=message.title,
                                             notify_type=getattr(apprise.NotifyType, message.level.upper()))
                    if not result:
                        said = "; ".join(line.strip() for line in captured.getvalue().splitlines() if line.strip())
                        errors.append(said[:500] or "apprise reported a failure")
            finally:
                library.propagate = propagate
            return bool(result)

        retrying = Retrying(stop=stop_after_attempt(self.attempts), wait=self.wait,
                            retry=retry_if_result(lambda sent: not sent), retry_error_callback=lambda state: False)
        try:
            ok = retrying(attempt)
        except Exception as exc:  # noqa: BLE001 - a plugin that raises is a failed send, recorded like any other
            ok = False
            errors.append(f"{type(exc).__name__}: {exc}")
        tries = retrying.statistics.get("attempt_number", 1)
        error = None if ok else redact(errors[-1] if errors else "failed")
        if not ok:
            log.warning("alert to %s failed after %d attempt(s): %s", target, tries, error)
        return Outcome(ok, tries, error)
