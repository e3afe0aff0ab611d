"""Logging set-up and secret redaction: one place that keeps secrets out of every log line.

Code that holds a secret registers it with :func:`register_secret`; from then on every log record
and every message passed through :func:`redact` shows ``***`` instead. Redaction is installed on
the root handlers, so library loggers (urllib3 logs full request URLs at DEBUG) are covered too.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading

_secrets: set[str] = set()
_lock = threading.Lock()
# key=VALUE style query parameters and Authorization headers are redacted even if never registered
_PATTERNS = [
    re.compile(r"(?i)([?&](?:key|secret|token|password|sig|code)=)[^&\s'\"]+"),
    re.compile(r"(?i)(authorization:\s*(?:bearer|basic)\s+)\S+"),
    re.compile(r"(?i)(SharedAccessKey=)[^;\s'\"]+"),
    re.compile(r"(?i)(\"private_key\"\s*:\s*\")[^\"]+"),
]


def register_secret(value: str | None) -> None:
    """Never show ``value`` in logs or redacted messages (values shorter than 4 chars are ignored)."""
    if value and len(value) >= 4:
        with _lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every registered secret and secret-looking parameter replaced by ``***``."""
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        text = text.replace(secret, "***")
    for pattern in _PATTERNS:
        text = pattern.sub(r"\1***", text)
    return text


class RedactingFilter(logging.Filter):
    """Formats each record's message once, redacted, so no argument can leak a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message (and exception)."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:
            payload["exception"] = record.exc_text
        return json.dumps(payload, ensure_ascii=False)


#: Libraries that log every connection attempt and token refresh at INFO (the Azure SDK: three lines
#: per reconnect try): below WARNING they show only at DEBUG; our own line says what matters.
CHATTY_LIBRARIES = ("azure",)


def setup_logging(level: str = "INFO", json_lines: bool = False, stream=None) -> None:
    """Configure the root logger once: level, plain or JSON-lines format, redaction on every record."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
