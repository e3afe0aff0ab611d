"""Render the jinja2 SQL templates in ``sql/`` for a given warehouse.

Templates receive structure only: validated identifiers (``ref('table')``), the run-precedence
expression and the engine's dialect. Values are never pasted into SQL text; they travel as
``@name`` query parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jinja2

from core.settlement import RUN_RANK
from warehouse.base import Warehouse
from warehouse.schema import check_identifier

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(SQL_DIR),
    undefined=jinja2.StrictUndefined,
    autoescape=False,
    keep_trailing_newline=True,
)
_env.globals["staged"] = {}  # CTE -> where the engine kept its rows (reporting.reports.Stage); none by default


def run_rank(column: str) -> str:
    """SQL expression ranking a settlement-run column: II=1 … DF=7 (higher wins), unknown=0."""
    check_identifier(column.split(".")[-1])
    whens = " ".join(f"WHEN '{run}' THEN {rank}" for run, rank in RUN_RANK.items())
    return f"(CASE {column} {whens} ELSE 0 END)"


def render(template: str, wh: Warehouse, **context: Any) -> str:
    """Render ``sql/<template>`` for warehouse ``wh``.

    Templates get ``ref('table')`` (a validated, engine-qualified table name), ``run_rank(col)``
    and ``sql``: the engine's :class:`~warehouse.dialects.Dialect` macros.
    """
    return _env.get_template(template).render(
        ref=lambda name: wh.ref(check_identifier(name)),
        run_rank=run_rank,
        dialect=wh.dialect,
        sql=wh.sql,
        **context,
    )
