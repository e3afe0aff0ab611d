"""The embedded DuckDB backend: one local file, zero credentials, the default warehouse.

DuckDB lets one process at a time open a database file for writing. A command opens the file on
first use and keeps it until :meth:`close`; long-running workers call :meth:`idle` between units of
work so ``status``/``report`` from another terminal can get in. Opening retries while another
process holds the lock instead of failing at once. One object may be shared by threads (the
scheduler's jobs): every operation holds its lock, so they take turns on the one connection.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from warehouse.base import Batch, Batches, Delete, Warehouse, WarehouseError, iter_batches
from warehouse.schema import Table, check_identifier
from warehouse.sqlparams import to_duckdb_params, used_params

log = logging.getLogger(__name__)

DUCKDB_TYPES = {
    "STRING": "VARCHAR",
    "INT64": "BIGINT",
    "FLOAT64": "DOUBLE",
    "BOOL": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMPTZ",
    "DATETIME": "TIMESTAMP",
    "JSON": "JSON",
}

LOGICAL_TYPES = {v: k for k, v in DUCKDB_TYPES.items()} | {"TIMESTAMP WITH TIME ZONE": "TIMESTAMP", "INTEGER": "INT64"}

def _normalise(table: pa.Table) -> pa.Table:
    """DuckDB sums integers into HUGEINT (decimal(38,0) in Arrow); BigQuery gives INT64. Match it."""
    for i, f in enumerate(table.schema):
        if pa.types.is_decimal(f.type) and f.type.scale == 0:
            table = table.set_column(i, f.name, table.column(i).cast(pa.int64()))
    return table


def _unregister(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Drop a registered Arrow view; after a failed statement DuckDB refuses until the rollback,
    and the original error is the one worth reporting."""
    try:
        con.unregister(view)
    except duckdb.Error:
        pass


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0):
        self.path = str(path)
        self.url = f"duckdb:///{self.path}"
        self.lock_timeout_s = lock_timeout_s
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------ connection
    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            if self._con is None:
                self._con = self._open()
            return self._con

    def _open(self) -> duckdb.DuckDBPyConnection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        retrying = Retrying(
            retry=retry_if_exception(_is_lock_error),
            wait=wait_random_exponential(multiplier=0.05, max=2),
            stop=stop_after_delay(self.lock_timeout_s),
            reraise=True,
            before_sleep=lambda rs: log.info("warehouse %s is locked by another process; waiting", self.path),
        )
        try:
            con = retrying(duckdb.connect, self.path)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open DuckDB warehouse {self.path}: {exc}") from None
        con.execute("SET TimeZone = 'UTC'")
        return con

    def idle(self) -> None:
        if self.path != ":memory:":  # closing an in-memory database would discard it
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # ------------------------------------------------------------ schema
    def table_columns(self, table: str) -> dict[str, str] | None:
        with self._lock:
            rows = self.con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position",
                [table],
            ).fetchall()
        return {name: typ for name, typ in rows} or None

    def table_names(self) -> set[str]:
        with self._lock:
            rows = self.con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()
        return {name for (name,) in rows}

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        with self._lock:
            for table in tables:
                existing = self.table_columns(table.name)
                if existing is None:
                    cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in table.columns)
                    self.con.execute(f"CREATE TABLE IF NOT EXISTS {table.name} ({cols})")
                    continue
                for col in table.columns:
                    if col.name not in existing:
                        log.info("adding column %s.%s %s", table.name, col.name, col.type)
                        self.con.execute(f'ALTER TABLE {table.name} ADD COLUMN "{col.name}" {DUCKDB_TYPES[col.type]}')

    # ------------------------------------------------------------ data
    def write(self, batches: Batches, deletes: Sequence[Delete] = ()) -> dict[str, int]:
        written: dict[str, int] = {}
        with self._lock:
            con = self.con
            con.execute("BEGIN TRANSACTION")
            try:
                for d in deletes:
                    if d.column is None:
                        con.execute(f"DELETE FROM {check_identifier(d.table)}")
                    else:
                        con.execute(
                            f"DELETE FROM {check_identifier(d.table)} WHERE \"{check_identifier(d.column)}\" = ?", [d.value]
                        )
                for batch in iter_batches(batches):
                    if batch.data.num_rows:
                        written[batch.table] = written.get(batch.table, 0) + self._insert(con, batch)
                con.execute("COMMIT")
            except BaseException as exc:
                con.execute("ROLLBACK")
                if isinstance(exc, duckdb.Error):
                    raise WarehouseError(f"write to {self.path} rolled back: {exc}") from exc
                raise
        return written

    @staticmethod
    def _insert(con: duckdb.DuckDBPyConnection, batch: Batch) -> int:
        table = check_identifier(batch.table)
        view = f"_batch_{table}"
        if not batch.key:
            con.register(view, batch.data)
            try:
                return con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM {view}").fetchone()[0]
            finally:
                _unregister(con, view)
        # keep the first row per key in the batch, and only keys the table does not have yet
        data = batch.data.append_column("__ord", pa.array(range(batch.data.num_rows), pa.int64()))
        key = [check_identifier(k) for k in batch.key]
        match = " AND ".join(f'e."{k}" IS NOT DISTINCT FROM b."{k}"' for k in key)
        params: list = []
        if batch.prune:
            prune = check_identifier(batch.prune)
            low, high = pc.min_max(batch.data.column(prune)).values()
            if low.is_valid:
                match = f'(e."{prune}" BETWEEN ? AND ? OR e."{prune}" IS NULL) AND {match}'
                params = [low.as_py(), high.as_py()]
        con.register(view, data)
        try:
            return con.execute(
                f"""INSERT INTO {table} BY NAME
                SELECT * EXCLUDE (__ord, __first) FROM (
                    SELECT *, row_number() OVER (PARTITION BY {", ".join(f'"{k}"' for k in key)} ORDER BY __ord) AS __first
                    FROM {view}
                ) AS b
                WHERE __first = 1 AND NOT EXISTS (SELECT 1 FROM {table} AS e WHERE {match})""",
                params,
            ).fetchone()[0]
        finally:
            _unregister(con, view)

    def logical_columns(self, table: str) -> dict[str, str] | None:
        columns = self.table_columns(table)
        if columns is None:
            return None
        return {name: LOGICAL_TYPES.get(typ, "STRING") for name, typ in columns.items()}

    def plan_scans(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[str, list[str], str]]:
        """(table, columns read, pushed-down filters) for every table scan of ``sql``'s optimised plan.

        Shows which partitions and columns a query needs (what BigQuery would bill for it).
        Late materialisation is turned off for the plan so each scan carries the query's own filters.
        """
        with self._lock:
            self.con.execute("SET late_materialization_max_rows = 0")
            try:
                plan = self.con.execute("EXPLAIN (FORMAT JSON) " + to_duckdb_params(sql),
                                        used_params(sql, params) or None).fetchall()
            finally:
                self.con.execute("RESET late_materialization_max_rows")
        found: list[tuple[str, list[str], str]] = []

        def walk(node: dict) -> None:
            if node.get("name", "").strip() in ("SEQ_SCAN", "TABLE_SCAN"):
                extra = node.get("extra_info", {})
                columns = extra.get("Projections") or []
                filters = extra.get("Filters") or ""
                found.append((extra.get("Table", "").rsplit(".", 1)[-1],
                              [columns] if isinstance(columns, str) else list(columns),
                              " AND ".join(filters) if isinstance(filters, list) else filters))
            for child in node.get("children", []):
                walk(child)

        for root in json.loads(plan[0][1]):
            walk(root)
        return found

    def in_list(self, column: str, param: str) -> str:
        return f"{check_identifier(column)} IN (SELECT unnest(@{check_identifier(param)}))"

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._lock:
            try:
                return _normalise(self.con.sql(to_duckdb_params(sql), params=used_params(sql, params)).to_arrow_table())
            except AttributeError:  # a statement without a result
                return pa.table({})
            except duckdb.Error as exc:
                raise WarehouseError(f"query failed on {self.path}: {exc}") from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            try:
                self.con.execute(to_duckdb_params(sql), used_params(sql, params) or None)
            except duckdb.Error as exc:
                raise WarehouseError(f"statement failed on {self.path}: {exc}") from exc
