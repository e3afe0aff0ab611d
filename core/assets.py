"""What an asset row is (the units a user reports on), and its validation.

Shared by the settings file (``[[reporting.assets]]``) and ``run.py assets import FILE.csv``, so both
accept the same fields and refuse the same mistakes. Ids are kept exactly as written (only
surrounding spaces are removed): reports join them to settlement data on exact ids.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("battery", "vlp", "demand_side", "generator", "wind", "solar", "pumped_storage", "interconnector", "other")
REQUIRED = ("bm_unit_id", "name", "kind", "power_mw", "energy_mwh")
OPTIONAL = ("lead_party", "notes")
FIELDS = REQUIRED + OPTIONAL
_ID = re.compile(r"^[A-Za-z0-9_\-./+]{1,32}$")


@dataclass(frozen=True)
class Asset:
    bm_unit_id: str
    name: str
    kind: str
    power_mw: float | None = None
    energy_mwh: float | None = None
    lead_party: str | None = None
    notes: str | None = None


_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d*)?$")


def _number(value: Any, column: str) -> tuple[float | None, str | None]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if isinstance(value, str):
        value = value.strip()
        if "," in value and not _THOUSANDS.match(value):  # "1,5" is not 15
            return None, f"{column} {value!r} is not a number (a decimal point, not a comma: 1.5)"
    try:
        number = float(value.replace(",", "") if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return None, f"{column} {value!r} is not a number (MW/MWh, blank if unknown)"
    if number != number or number < 0 or number > 100_000:
        return None, f"{column} {value!r} must be between 0 and 100,000"
    return number, None


def parse_asset(row: Mapping[str, Any]) -> tuple[Asset | None, list[str]]:
    """The asset in ``row`` (a CSV row or a settings table), or the problems with it, each naming the field."""
    problems = []
    unit = str(row.get("bm_unit_id") or "").strip()
    if not unit:
        problems.append("bm_unit_id is empty")
    elif not _ID.match(unit):
        problems.append(f"bm_unit_id {unit!r} is not a BM unit id (letters, digits, _ - . / +; e.g. 2__FBPGM002, "
                        "V__AFLEX001, T_DRAXX-1)")
    kind = str(row.get("kind") or "").strip().lower().replace("-", "_").replace(" ", "_")
    if kind not in KINDS:
        problems.append(f"kind {row.get('kind')!r} is not one of {', '.join(KINDS)}")
    power, problem = _number(row.get("power_mw"), "power_mw")
    problems += [problem] if problem else []
    energy, problem = _number(row.get("energy_mwh"), "energy_mwh")
    problems += [problem] if problem else []
    text = {k: (str(row.get(k)).strip() if row.get(k) is not None else "") for k in ("name", "lead_party", "notes")}
    for key, value in text.items():
        if len(value) > 200 or any(ord(c) < 32 for c in value):
            problems.append(f"{key} is longer than 200 characters or holds control characters")
    if problems:
        return None, problems
    return Asset(unit, text["name"] or unit, kind, power, energy, text["lead_party"] or None, text["notes"] or None), []


def column_key(header: str) -> str:
    """A CSV header cell as a column name: case, spaces and punctuation ignored (``Power (MW)`` → ``power_mw``)."""
    return re.sub(r"[^a-z0-9]+", "_", header.strip().lower()).strip("_")


def check_columns(columns: list[str]) -> list[str]:
    """Problems with a header (or a settings table's keys): every required column, no unknown ones."""
    problems = []
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED)})")
    unknown = [c for c in columns if c not in FIELDS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(map(repr, unknown))} (columns: {', '.join(FIELDS)})")
    return problems
