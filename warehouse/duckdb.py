"""The embedded DuckDB backend: one local file, zero credentials, the default warehouse.

DuckDB lets one process at a time open a database file for writing. A command opens the file on
first use and keeps it until :meth:`close`; long-running workers call :meth:`idle` between units of
work so ``status``/``report`` from another terminal can get in. Opening retries while another
process holds the lock instead of failing at once. One object may be shared by threads (the
scheduler's jobs): every operation holds its lock, so they take turns on the one connection.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from warehouse.base import (REPLACED, STALE, Batch, Batches, DataRejected, Delete, Warehouse, WarehouseError,
                            WarehouseUnavailable, iter_batches)
from warehouse.latest import latest_statements
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


def _min_max(column: pa.ChunkedArray) -> tuple[pa.Scalar, pa.Scalar]:
    import pyarrow.compute as pc  # only the latest-wins writes need it; importing it costs a P114 load 0.1 s

    return tuple(pc.min_max(column).values())


def _unregister(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Drop a registered Arrow view; after a failed statement DuckDB refuses until the rollback,
    and the original error is the one worth reporting."""
    try:
        con.unregister(view)
    except duckdb.Error:
        pass


def _is_lock_error(exc: BaseException) -> bool:
    return isinstance(exc, duckdb.IOException) and "lock" in str(exc).lower()


# the data's shape or values: isolating the message or record that carries them fixes it
_REJECTED = (duckdb.BinderException, duckdb.CatalogException, duckdb.ConversionException, duckdb.ConstraintException,
             duckdb.OutOfRangeException, duckdb.TypeMismatchException, duckdb.InvalidInputException)
# the statement itself (a query's syntax): neither the data's fault nor an outage
_STATEMENT = (duckdb.ParserException, duckdb.SyntaxException, duckdb.NotImplementedException)


def translate(exc: duckdb.Error, what: str, *, data: bool) -> WarehouseError:
    """A DuckDB exception as the project's kind: rejected data (in a write), a bad statement, or
    unavailable (I/O, disk full, lock, a failed commit, an invalidated database: everything else)."""
    text = f"{what}: {exc}"
    if isinstance(exc, _REJECTED):
        return DataRejected(text) if data else WarehouseError(text)
    if isinstance(exc, _STATEMENT):
        return WarehouseError(text)
    return WarehouseUnavailable(text)


class DuckDBWarehouse(Warehouse):
    dialect = "duckdb"

    def __init__(self, path: str | Path, lock_timeout_s: float = 60.0, table_prefix: str = ""):
        self.path = str(path)
        self.table_prefix = table_prefix
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
            con.execute("SET TimeZone = 'UTC'")
        except duckdb.Error as exc:
            raise WarehouseUnavailable(f"cannot open DuckDB warehouse {self.path}: {exc}") from None
        return con

    def _reset(self) -> None:
        """Drop the connection after a fault (DuckDB may have invalidated it); the next use reopens."""
        con, self._con = self._con, None
        if con is not None:
            try:
                con.close()
            except duckdb.Error:
                pass

    def reader(self) -> "DuckDBWarehouse":
        # a cursor is a connection of its own to the same database: DuckDB runs their queries in parallel
        clone = copy.copy(self)
        clone._lock = threading.RLock()
        with self._lock:
            clone._con = self.con.cursor()
        clone._con.execute("SET TimeZone = 'UTC'")
        return clone

    keeps_results = True

    def keep(self, name: str, sql: str, params: Mapping[str, Any] | None = None) -> str:
        # a temporary table lives on this connection only: a reader's are its own and go when it closes
        self.execute(f"CREATE OR REPLACE TEMP TABLE {check_identifier(name)} AS {sql}", params)
        return f"temp.main.{name}"

    def forget(self, name: str) -> None:
        self.execute(f"DROP TABLE IF EXISTS temp.main.{check_identifier(name)}")

    def idle(self) -> None:
        if self.path != ":memory:":  # closing an in-memory database would discard it
            self.close()

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    # ------------------------------------------------------------ schema
    def _catalog(self, sql: str, params: list | None = None) -> list[tuple]:
        with self._lock:
            try:
                return self.con.execute(sql, params).fetchall()
            except duckdb.Error as exc:
                self._reset()
                raise translate(exc, f"cannot read the catalog of {self.path}", data=False) from exc

    def table_columns(self, table: str) -> dict[str, str] | None:
        return self._engine_columns(self.physical(table))

    def _engine_columns(self, physical: str) -> dict[str, str] | None:
        rows = self._catalog("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [physical])
        return {name: typ for name, typ in rows} or None

    def _all_columns(self) -> dict[str, dict[str, str]]:
        """Physical table -> its columns, in one catalog read (one per table costs ~10 ms each)."""
        columns: dict[str, dict[str, str]] = {}
        for table, name, typ in self._catalog(
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'main' ORDER BY table_name, ordinal_position"):
            columns.setdefault(table, {})[name] = typ
        return columns

    def table_names(self) -> set[str]:
        return self._logical_names(name for (name,) in self._catalog(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'"))

    def object_info(self, name: str) -> tuple[str, str | None] | None:
        name = self.physical(name)
        rows = self._catalog("SELECT table_type FROM information_schema.tables WHERE table_schema = 'main' "
                             "AND table_name = ?", [name])
        if not rows:
            return None
        if rows[0][0] != "VIEW":
            return "table", None
        sql = self._catalog("SELECT sql FROM duckdb_views() WHERE schema_name = 'main' AND view_name = ?", [name])
        return "view", sql[0][0] if sql else None

    def source_columns(self, name: str) -> dict[str, str] | None:
        columns = self._engine_columns(check_identifier(name))
        return None if columns is None else {c: LOGICAL_TYPES.get(t, "STRING") for c, t in columns.items()}

    def read_rows(self, name: str) -> list[dict[str, Any]]:
        return self.query_rows(f"SELECT * FROM {self.physical(name)}")

    def create_table(self, table: Table) -> None:
        cols = ", ".join(f'"{c.name}" {DUCKDB_TYPES[c.type]}' for c in table.columns)
        with self._lock:
            try:
                self.con.execute(f"CREATE TABLE IF NOT EXISTS {self.physical(table.name)} ({cols})")
            except duckdb.Error as exc:
                raise translate(exc, f"cannot create table {table.name} in {self.path}", data=True) from exc

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        with self._lock:
            created = []
            try:
                catalog = self._all_columns()
                for table in tables:
                    existing = catalog.get(self.physical(table.name))
                    if self.registry.claim_table(table, existing is not None):
                        self.create_table(table)
                        created.append(table.name)
                        continue
                    for col in table.columns:
                        if col.name not in existing:
                            log.info("adding column %s.%s %s", table.name, col.name, col.type)
                            self.con.execute(
                                f'ALTER TABLE {self.physical(table.name)} ADD COLUMN "{col.name}" '
                                f'{DUCKDB_TYPES[col.type]}')
            except duckdb.Error as exc:
                error = translate(exc, f"cannot create or alter tables in {self.path}", data=True)
                if isinstance(error, WarehouseUnavailable):
                    self._reset()
                raise error from exc
            finally:
                self.registry.record(created, "table")

    def widen_column(self, table: str, column: str, logical_type: str) -> None:
        with self._lock:
            try:
                self.con.execute(f'ALTER TABLE {self.physical(table)} ALTER COLUMN "{check_identifier(column)}" '
                                 f"TYPE {DUCKDB_TYPES[logical_type]}")
            except duckdb.Error as exc:
                raise translate(exc, f"cannot widen {table}.{column} to {logical_type}", data=True) from exc

    # ------------------------------------------------------------ data
    def write(self, batches: Batches, deletes: Sequence[Delete] = ()) -> dict[str, int]:
        written: dict[str, int] = {}
        with self._lock:
            try:
                con = self.con
                con.execute("BEGIN TRANSACTION")
            except duckdb.Error as exc:
                self._reset()
                raise translate(exc, f"cannot start a write in {self.path}", data=False) from exc
            try:
                for d in deletes:
                    if d.column is None:
                        con.execute(f"DELETE FROM {self.physical(d.table)}")
                    else:
                        con.execute(
                            f"DELETE FROM {self.physical(d.table)} WHERE \"{check_identifier(d.column)}\" = ?", [d.value]
                        )
                for batch in iter_batches(batches):
                    if batch.data.num_rows:
                        for table, n in self._insert(con, batch).items():
                            written[table] = written.get(table, 0) + n
                con.execute("COMMIT")
            except BaseException as exc:
                self._rollback(con)
                if isinstance(exc, duckdb.Error):
                    error = translate(exc, f"write to {self.path} rolled back", data=True)
                    if isinstance(error, WarehouseUnavailable):
                        self._reset()
                    raise error from exc
                raise
        return written

    def _rollback(self, con: duckdb.DuckDBPyConnection) -> None:
        """Roll back, tolerating a transaction DuckDB already ended (a failed commit, a full disk):
        the original error is the one worth reporting."""
        try:
            con.execute("ROLLBACK")
        except duckdb.Error as exc:
            log.debug("rollback after a failed write: %s", exc)
            self._reset()

    def _insert(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, int]:
        if batch.replace is not None:
            return self._insert_latest(con, batch)
        return {batch.table: self._insert_rows(con, batch)}

    def _insert_latest(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> dict[str, int]:
        """A latest-wins batch (see :class:`~warehouse.base.Replace` and :mod:`warehouse.latest`)."""
        table, r = self.physical(batch.table), batch.replace
        view = f"_batch_{table}"
        params: dict[str, Any] = {"now": dt.datetime.now(dt.timezone.utc)}
        prune = ""
        if batch.prune:
            low, high = _min_max(batch.data.column(batch.prune))
            if low.is_valid:
                prune = f'(t."{check_identifier(batch.prune)}" BETWEEN @lo AND @hi OR t."{batch.prune}" IS NULL)'
                params |= {"lo": low.as_py(), "hi": high.as_py()}
        key = [f'"{check_identifier(k)}"' for k in batch.key]
        con.register(view, batch.data.append_column("__ord", pa.array(range(batch.data.num_rows), pa.int64())))
        try:
            # the common case first: rows whose key is new go straight in; only when some key is already
            # stored (or repeats in the batch) do the latest-wins statements run, and the rows just
            # inserted then compare identical to themselves and are left alone
            inserted = 0
            if batch.data.group_by(list(batch.key)).aggregate([]).num_rows == batch.data.num_rows:
                match = " AND ".join(f"t.{k} = w.{k}" for k in key) + (f" AND {prune}" if prune else "")
                sql = (f"INSERT INTO {table} BY NAME SELECT * EXCLUDE (__ord) FROM {view} AS w "
                       f"WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})")
                inserted = con.execute(to_duckdb_params(sql), used_params(sql, params)).fetchone()[0]
                if inserted == batch.data.num_rows:
                    return {batch.table: inserted}
            stored = [name for (name,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'main' AND table_name = ? "
                "ORDER BY ordinal_position", [table]).fetchall()]
            counts = {}
            for label, sql in latest_statements(lambda name: f'"{check_identifier(name)}"', table,
                                                self.physical(r.history), view, batch.data.column_names, stored,
                                                batch.key, r, prune=prune):
                counts[label] = con.execute(to_duckdb_params(sql), used_params(sql, params)).fetchone()[0]
        finally:
            _unregister(con, view)
        name = batch.table
        return {name: inserted + counts["merge"], name + REPLACED: counts["replaced"], name + STALE: counts["stale"],
                r.history: counts["superseded"] + counts["replaced"] + counts["stale"]}

    def _insert_rows(self, con: duckdb.DuckDBPyConnection, batch: Batch) -> int:
        table = self.physical(batch.table)
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
            low, high = _min_max(batch.data.column(prune))
            if low.is_valid:
                match = f'(e."{prune}" BETWEEN ? AND ? OR e."{prune}" IS NULL) AND {match}'
                params = [low.as_py(), high.as_py()]
        # a batch without repeated keys (the usual case) needs no ranking of its rows
        unique = batch.data.group_by(list(batch.key)).aggregate([]).num_rows == batch.data.num_rows
        rows = f"SELECT * FROM {view}" if unique else (
            f"SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY {', '.join(f'{chr(34)}{k}{chr(34)}' for k in key)} "
            f"ORDER BY __ord) AS __first FROM {view}) WHERE __first = 1")
        con.register(view, data)
        try:
            return con.execute(
                f"""INSERT INTO {table} BY NAME
                SELECT * EXCLUDE (__ord{'' if unique else ', __first'}) FROM ({rows}) AS b
                WHERE NOT EXISTS (SELECT 1 FROM {table} AS e WHERE {match})""",
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
                raise translate(exc, f"query failed on {self.path}", data=False) from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            try:
                self.con.execute(to_duckdb_params(sql), used_params(sql, params) or None)
            except duckdb.Error as exc:
                raise translate(exc, f"statement failed on {self.path}", data=False) from exc
