"""The warehouse interface every backend implements (DuckDB embedded default; BigQuery later).

Writes go through Arrow tables, never row-by-row inserts, and a call to :meth:`Warehouse.write`
is one atomic unit: every batch (and every delete) in it lands, or none does. SQL text uses
BigQuery-style ``@name`` query parameters; backends translate them to their own markers, so one
SQL source serves every engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from core.errors import DataRejected, WarehouseError, WarehouseUnavailable  # noqa: F401 - re-exported
from warehouse.schema import Table, check_identifier


@dataclass(frozen=True)
class Replace:
    """Latest wins, with history: how a keyed :class:`Batch` treats a key that is already stored.

    A row identical to the stored one on ``compare`` changes nothing. A row with different values
    replaces the stored row when its ``version`` is not older (ties go to the incoming row); the
    replaced row moves to ``history`` with ``_replaced_by`` = the replacing row's ``by`` column and
    ``_replaced_at``. A row older than the stored one goes straight to ``history`` (replaced by the
    stored row), so a late, older message never overwrites a newer one and nothing is lost. Within
    one batch the same rules pick the newest row of each key (later rows win ties).
    """

    version: str
    history: str
    compare: tuple[str, ...]
    by: str = "_message_id"


@dataclass(frozen=True)
class Batch:
    """Rows for one table. With a ``key``, a row is written only if no row with the same key exists
    in the table (or earlier in the batch), unless ``replace`` says latest wins; ``prune`` names a
    column that bounds the existing rows to compare against (the batch's min..max of it), so the
    check reads only that range."""

    table: str
    data: pa.Table
    key: tuple[str, ...] = ()
    prune: str | None = None
    replace: Replace | None = None


#: extra counts a write reports for a latest-wins batch, as ``f"{table}{suffix}"`` keys
REPLACED, STALE = "#replaced", "#stale"
HISTORY_COLUMNS = ("_replaced_by", "_replaced_at")


Batches = Mapping[str, pa.Table] | Iterable[Batch | tuple[str, pa.Table]]


def iter_batches(batches: Batches) -> Iterable[Batch]:
    items = batches.items() if isinstance(batches, Mapping) else batches
    for item in items:
        yield item if isinstance(item, Batch) else Batch(item[0], item[1])


@dataclass(frozen=True)
class Delete:
    """Delete the rows of ``table`` where ``column`` equals ``value``, or every row when ``column``
    is None (inside an atomic write)."""

    table: str
    column: str | None = None
    value: Any = None


class Warehouse(ABC):
    """A place to keep tables: create them, append Arrow batches atomically, run SQL."""

    url: str
    dialect: str  # "duckdb" | "bigquery"
    #: ``[warehouse] table_prefix``: every table and view the project makes is called prefix + its name, so
    #: the project can live in a dataset beside the user's own tables of the same names. Code speaks of
    #: tables by their plain (logical) names; only a backend, through :meth:`physical`, adds the prefix.
    table_prefix: str = ""

    def physical(self, name: str) -> str:
        """The name table ``name`` has in the engine (the table prefix, then the name)."""
        return self.table_prefix + check_identifier(name)

    def _logical_names(self, physical: Iterable[str]) -> set[str]:
        """The project's names among the engine's ``physical`` ones (those with the prefix, without it)."""
        n = len(self.table_prefix)
        return {name[n:] for name in physical if name.startswith(self.table_prefix) and len(name) > n}

    @abstractmethod
    def ensure_tables(self, tables: Iterable[Table]) -> None:
        """Create missing tables; add columns a table lacks (schema evolution is additive)."""

    @abstractmethod
    def write(self, batches: Batches, deletes: Sequence[Delete] = ()) -> dict[str, int]:
        """Apply ``deletes`` then append every batch, all or nothing; return rows written per table
        (for a latest-wins batch also ``table#replaced``, ``table#stale`` and the history table's rows).

        ``batches`` may be a mapping (table → Arrow) or an iterable of :class:`Batch` or
        ``(table, arrow)`` pairs; an iterable is consumed inside the transaction, so an exception
        it raises rolls everything back and is re-raised unchanged.
        """

    @abstractmethod
    def widen_column(self, table: str, column: str, logical_type: str) -> None:
        """Change ``column`` of ``table`` to a wider type (INT64 → FLOAT64) keeping every value."""

    @abstractmethod
    def logical_columns(self, table: str) -> dict[str, str] | None:
        """Column name → logical type (STRING, INT64, …) of ``table``, or None if it does not exist."""

    @abstractmethod
    def in_list(self, column: str, param: str) -> str:
        """SQL for "``column`` is one of the values of list parameter ``@param``"."""

    @abstractmethod
    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query with ``@name`` parameters and return the result as Arrow."""

    @abstractmethod
    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement that returns nothing (DDL, view definitions)."""

    @abstractmethod
    def table_columns(self, table: str) -> dict[str, str] | None:
        """Column name → engine type of ``table``, or None if it does not exist."""

    @abstractmethod
    def table_names(self) -> set[str]:
        """Plain names of every table and view under the table prefix (every one, without a prefix)."""

    @property
    def sql(self):
        """This engine's SQL macros (:class:`~warehouse.dialects.Dialect`)."""
        from warehouse.dialects import DIALECTS

        return DIALECTS[self.dialect]

    def ref(self, name: str) -> str:
        """How SQL text refers to table ``name`` on this engine (prefixed, and qualified where needed)."""
        return self.physical(name)

    # ------------------------------------------------------------ ownership (warehouse/ownership.py)
    @abstractmethod
    def object_info(self, name: str) -> tuple[str, str | None] | None:
        """('table', None) or ('view', its definition) for an object called ``name``, or None (metadata only)."""

    @abstractmethod
    def create_table(self, table: Table) -> None:
        """Create ``table`` as declared (no ownership check: :meth:`ensure_tables` is the one to call)."""

    @abstractmethod
    def read_rows(self, name: str) -> list[dict[str, Any]]:
        """Every row of a small table, without a billed query."""

    def source_ref(self, name: str) -> str:
        """How SQL refers to a table the project does not own (a legacy table to import from): as the
        user named it, without the table prefix."""
        return check_identifier(name)

    def source_columns(self, name: str) -> dict[str, str] | None:
        """Column → logical type of a table the project does not own, or None if there is none."""
        return self.logical_columns(name)

    @property
    def registry(self):
        """The tables and views this project owns; it never touches any other."""
        from warehouse.ownership import Registry

        if getattr(self, "_registry", None) is None:
            self._registry = Registry(self)
        return self._registry

    def define_view(self, name: str, sql: str) -> None:
        """Run ``sql`` (CREATE OR REPLACE VIEW ``name`` …) if ``name`` is ours or new; raises NotOurTable if not."""
        new = self.registry.claim_view(name)
        self.execute(sql)
        if new:
            self.registry.record([name], "view")

    def query_rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        return self.query(sql, params).to_pylist()

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        result = self.query(sql, params)
        return result.column(0)[0].as_py() if result.num_rows else None

    #: whether ``keep`` keeps anything: where it does not, queries compute a shared CTE each time
    keeps_results = False

    def keep(self, name: str, sql: str, params: Mapping[str, Any] | None = None) -> str:
        """Compute ``sql`` once and keep its rows for this handle's later queries (until ``forget``); return
        what to read them by in SQL. Only where ``keeps_results``."""
        raise NotImplementedError

    def forget(self, name: str) -> None:
        """Drop what ``keep(name, …)`` kept."""

    def reader(self) -> "Warehouse":
        """A handle for read-only queries on another thread, concurrently with this one (close it after)."""
        return self

    def idle(self) -> None:
        """Release resources between units of work (lets other processes in on file engines)."""

    def close(self) -> None:
        """Release every resource."""

    def __enter__(self) -> "Warehouse":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
