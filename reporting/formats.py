"""Cell formats shared by every target: Excel/Sheets number patterns and on-screen text."""

from __future__ import annotations

import datetime as dt
from typing import Any

#: format name → (Sheets numberFormat type, pattern; Excel uses the same pattern)
PATTERNS: dict[str, tuple[str, str]] = {
    "text": ("TEXT", "@"),
    "int": ("NUMBER", "#,##0"),
    "number": ("NUMBER", "#,##0.00"),
    "mwh": ("NUMBER", "#,##0.000"),
    "mw": ("NUMBER", "#,##0.0"),
    "gbp": ("CURRENCY", "£#,##0.00"),
    "gbp_per_mwh": ("CURRENCY", "£#,##0.00"),
    "pct": ("PERCENT", "0.0%"),
    "hz": ("NUMBER", "0.000"),
    "date": ("DATE", "yyyy-mm-dd"),
    "datetime": ("DATE_TIME", "yyyy-mm-dd hh:mm:ss"),
}
SHEETS_EPOCH = dt.datetime(1899, 12, 30)


def excel_pattern(fmt: str) -> str:
    return "General" if fmt == "text" else PATTERNS[fmt][1]


def naive_utc(value: Any) -> Any:
    """Spreadsheets have no time zones: UTC wall-clock time, zone dropped."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def serial(value: Any) -> Any:
    """A value as Sheets stores it when written RAW: dates and times as serial day numbers."""
    value = naive_utc(value)
    if isinstance(value, dt.datetime):
        return (value - SHEETS_EPOCH).total_seconds() / 86400
    if isinstance(value, dt.date):
        return (value - SHEETS_EPOCH.date()).days
    if value is None:
        return ""
    return value


def display(value: Any, fmt: str) -> str:
    """A value as text, formatted as the spreadsheet would show it (for HTML and the CLI)."""
    if value is None or value == "":
        return ""
    value = naive_utc(value)
    if fmt == "date" and isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    if fmt == "datetime" and isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if fmt == "int":
            return f"{value:,.0f}"
        if fmt in ("gbp", "gbp_per_mwh"):
            return f"-£{abs(value):,.2f}" if value < 0 else f"£{value:,.2f}"
        if fmt == "pct":
            return f"{value:.1%}"
        if fmt == "mwh":
            return f"{value:,.3f}"
        if fmt == "mw":
            return f"{value:,.1f}"
        if fmt == "hz":
            return f"{value:.3f}"
        if fmt == "number":
            return f"{value:,.2f}"
    return str(value)


def matches(rule: str, value: Any, target: Any) -> bool:
    """Whether a conditional rule colours ``value`` (used by the HTML page; spreadsheets evaluate their own)."""
    if value is None or value == "":
        return False
    try:
        if rule == "less_than":
            return float(value) < float(target)
        if rule == "greater_than":
            return float(value) > float(target)
    except (TypeError, ValueError):
        return False
    if rule == "equals":
        return str(value) == str(target)
    if rule == "not_equals":
        return str(value) != str(target)
    return False
