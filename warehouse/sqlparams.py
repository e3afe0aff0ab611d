"""``@name`` query parameters in SQL text: which ones a statement uses, and DuckDB's spelling."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# comments and string literals are matched (and left alone) before a @parameter can be;
# ``@@name`` is a BigQuery system variable, not a parameter
_PARAM = re.compile(r"--[^\n]*|/\*.*?\*/|'(?:[^']|'')*'|@@[A-Za-z_.]+|@([A-Za-z_][A-Za-z0-9_]*)", re.DOTALL)


def to_duckdb_params(sql: str) -> str:
    """Rewrite BigQuery-style ``@name`` parameters as DuckDB ``$name`` (string literals untouched)."""
    return _PARAM.sub(lambda m: f"${m.group(1)}" if m.group(1) else m.group(0), sql)


def used_params(sql: str, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The parameters ``sql`` refers to (DuckDB rejects extra ones; BigQuery needs a type for each)."""
    names = {m.group(1) for m in _PARAM.finditer(sql) if m.group(1)}
    return {k: v for k, v in (params or {}).items() if k in names}
