"""The BigQuery backend: the production warehouse, same tables and SQL as the DuckDB default.

Writes never stream rows. Each batch becomes a Parquet file loaded by a **load job** into a
short-lived staging table (load jobs are free and atomic); then one multi-statement
**transaction** applies the deletes and moves every staged batch into its table, with ``MERGE``
on the batch's natural key (the same keys DuckDB uses), so a file or message batch is either
wholly in or not at all, and a replay inserts nothing twice. A write of one unkeyed batch (batch
statistics, load errors) skips staging: a single load job is already atomic.

Tables get explicit schemas, day partitions on their event date (``settlement_date`` for P114)
and clustering on BM unit and run; schema evolution adds NULLABLE columns.

The client comes from :func:`make_client`: Application Default Credentials, a service-account
file, or anonymous credentials against ``BIGQUERY_API_ENDPOINT`` (an emulator, in tests).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import logging
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from core.errors import ConfigError
from core.google_keys import service_account_credentials
from warehouse.base import (REPLACED, STALE, Batch, Batches, DataRejected, Delete, Warehouse, WarehouseError,
                            WarehouseUnavailable, iter_batches)
from warehouse.latest import latest_statements
from warehouse.ownership import PROJECT
from warehouse.schema import Table, check_identifier
from warehouse.sqlparams import used_params

log = logging.getLogger(__name__)

BIGQUERY_TYPES = {
    "STRING": "STRING",
    "INT64": "INT64",
    "FLOAT64": "FLOAT64",
    "BOOL": "BOOL",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "DATETIME": "DATETIME",
    "JSON": "JSON",
}
# the REST API reports legacy names for some types
LOGICAL_TYPES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL"} | {t: t for t in BIGQUERY_TYPES}

STAGING_PREFIX = "_staging_"
STAGING_TTL = dt.timedelta(hours=6)  # a staging table a crashed process left behind expires by itself
_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{2,61}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


@dataclass(frozen=True)
class BigQueryOptions:
    """How to reach BigQuery; from settings ``[bigquery]`` and the environment."""

    location: str | None = None  # e.g. "EU", "europe-west2"; new datasets are created there
    credentials_file: str | None = None  # service-account JSON; else Application Default Credentials
    api_endpoint: str | None = None  # another endpoint with anonymous credentials (an emulator)
    maximum_bytes_billed: int | None = None  # a query that would scan more fails instead of billing


def parse_url(url: str) -> tuple[str, str]:
    """``bigquery://PROJECT/DATASET`` → (project, dataset), checked."""
    rest = url.removeprefix("bigquery://")
    project, _, dataset = rest.partition("/")
    dataset = dataset.rstrip("/")
    if not _PROJECT.match(project) or not _DATASET.match(dataset):
        raise WarehouseError(f"warehouse URL {url!r} should look like bigquery://PROJECT/DATASET "
                             "(project id: lower-case letters, digits, hyphens; dataset: letters, digits, underscores)")
    return project, dataset


def make_client(project: str, options: BigQueryOptions):
    """A ``google.cloud.bigquery.Client`` for ``project``.

    With ``api_endpoint`` the client talks to that endpoint with anonymous credentials (an
    emulator); with ``credentials_file`` it uses that service account; otherwise Application
    Default Credentials (``gcloud auth application-default login``, a VM's or Cloud Run's account).
    """
    from google.api_core.client_options import ClientOptions
    from google.cloud import bigquery

    if options.api_endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(project=project, credentials=AnonymousCredentials(), location=options.location,
                               client_options=ClientOptions(api_endpoint=options.api_endpoint))
    credentials = None
    if options.credentials_file:
        credentials = service_account_credentials(options.credentials_file,
                                                  ["https://www.googleapis.com/auth/cloud-platform"])
    try:
        return bigquery.Client(project=project, credentials=credentials, location=options.location)
    except Exception as exc:  # google.auth.exceptions.DefaultCredentialsError and friends
        raise WarehouseUnavailable(f"cannot create a BigQuery client for project {project}: "
                                   f"{str(exc).splitlines()[0].rstrip('.')}. Set GOOGLE_APPLICATION_CREDENTIALS to a "
                                   "service-account file or run 'gcloud auth application-default login'") from None


def _is_concurrent_update(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "concurrent update" in text or "could not serialize access" in text


# BigQuery error reasons that mean "this data / this statement built from it" (everything else:
# quota, permissions, backend, network, credentials is unavailability, ours to wait out)
_DATA_REASONS = {"invalid", "invalidQuery"}


def translate(exc: BaseException, what: str, *, data: bool) -> WarehouseError:
    """A Google client exception as the project's kind (see :mod:`core.errors`)."""
    from google.api_core import exceptions

    text = f"BigQuery: {what}: {_message(exc)}"
    if isinstance(exc, WarehouseError):
        return exc
    if isinstance(exc, exceptions.BadRequest):
        reasons = {e.get("reason") for e in (getattr(exc, "errors", None) or []) if isinstance(e, dict)}
        if data and (reasons & _DATA_REASONS or not reasons):
            return DataRejected(text)
        return WarehouseError(text)
    if isinstance(exc, exceptions.NotFound):
        return WarehouseError(text)
    return WarehouseUnavailable(text)


class BigQueryWarehouse(Warehouse):
    dialect = "bigquery"

    def __init__(self, project: str, dataset: str, options: BigQueryOptions | None = None, client=None,
                 table_prefix: str = ""):
        self.project, self.dataset = project, dataset
        self.table_prefix = table_prefix
        self.options = options or BigQueryOptions()
        self.url = f"bigquery://{project}/{dataset}"
        self._client = client
        self._schemas: dict[str, dict[str, str]] = {}  # table → column → BigQuery type
        self._dataset_ready = False
        self._views_applied: set[str] = set()
        self._lock = threading.RLock()

    # ------------------------------------------------------------ connection
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                self._client = make_client(self.project, self.options)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def ref(self, name: str) -> str:
        return f"`{self._table_id(name)}`"

    def _table_id(self, name: str) -> str:
        return f"{self.project}.{self.dataset}.{self.physical(name)}"

    def _ensure_dataset(self) -> None:
        if self._dataset_ready:
            return
        from google.cloud import bigquery

        ds = bigquery.Dataset(f"{self.project}.{self.dataset}")
        ds.location = self.options.location
        self._call(f"create dataset {self.project}.{self.dataset}", self.client.create_dataset, ds, exists_ok=True)
        self._dataset_ready = True

    def _call(self, what: str, fn, *args, data: bool = True, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # noqa: BLE001 - every client failure becomes one of ours
            raise translate(exc, f"{what} failed", data=data) from exc

    # ------------------------------------------------------------ schema
    def _get_table(self, table_id: str, name: str):
        """The table's metadata (schema, type, view text), or None if there is none."""
        from google.api_core.exceptions import NotFound

        try:
            return self.client.get_table(table_id)
        except NotFound:
            return None
        except (WarehouseError, ConfigError):
            raise
        except Exception as exc:
            raise translate(exc, f"cannot read table {name}", data=False) from exc

    def table_columns(self, table: str) -> dict[str, str] | None:
        t = self._get_table(self._table_id(table), table)
        if t is None:
            return None
        columns = {f.name: LOGICAL_TYPES.get(f.field_type, f.field_type) for f in t.schema}
        self._schemas[table] = columns
        return columns

    def table_names(self) -> set[str]:
        from google.api_core.exceptions import NotFound

        try:
            names = self._logical_names(t.table_id for t in self.client.list_tables(f"{self.project}.{self.dataset}"))
            return {name for name in names if not name.startswith(STAGING_PREFIX)}
        except NotFound:
            return set()
        except (WarehouseError, ConfigError):
            raise
        except Exception as exc:
            raise translate(exc, f"cannot list tables of {self.dataset}", data=False) from exc

    def logical_columns(self, table: str) -> dict[str, str] | None:
        columns = self.table_columns(table)
        return None if columns is None else {k: LOGICAL_TYPES.get(v, "STRING") for k, v in columns.items()}

    def object_info(self, name: str) -> tuple[str, str | None] | None:
        t = self._get_table(self._table_id(name), name)
        if t is None:
            return None
        return ("view", t.view_query) if t.table_type == "VIEW" else ("table", None)

    def _source_id(self, name: str) -> str:
        parts = name.split(".")
        if not 1 <= len(parts) <= 3 or not all(re.match(r"^[A-Za-z0-9_-]+$", p) for p in parts):
            raise ValueError(f"not a table name: {name!r} (table, dataset.table or project.dataset.table)")
        return ".".join([self.project, self.dataset][: 3 - len(parts)] + parts)

    def source_ref(self, name: str) -> str:
        return f"`{self._source_id(name)}`"

    def source_columns(self, name: str) -> dict[str, str] | None:
        t = self._get_table(self._source_id(name), name)
        if t is None:
            return None
        return {f.name: LOGICAL_TYPES.get(f.field_type, "STRING") for f in t.schema}

    def read_rows(self, name: str) -> list[dict[str, Any]]:
        # tabledata.list: free, unlike a query (the ownership check costs no query bytes)
        rows = self._call(f"read {name}", self.client.list_rows, self._table_id(name), data=False)
        return [dict(r.items()) for r in rows]

    def create_table(self, table: Table) -> None:
        from google.cloud import bigquery

        self._ensure_dataset()
        bt = bigquery.Table(self._table_id(table.name), schema=[_field(c) for c in table.columns])
        bt.description = table.description or None
        bt.labels = {"created_by": PROJECT}
        if table.partition_by:
            bt.time_partitioning = bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=table.partition_by)
        if table.cluster_by:
            bt.clustering_fields = list(table.cluster_by)[:4]
        self._call(f"create table {table.name}", self.client.create_table, bt, exists_ok=True)
        self._schemas[table.name] = {c.name: BIGQUERY_TYPES[c.type] for c in table.columns}

    def ensure_tables(self, tables: Iterable[Table]) -> None:
        self._ensure_dataset()
        created = []
        try:
            for table in tables:
                existing = self._schemas.get(table.name) or self.table_columns(table.name)
                if self.registry.claim_table(table, existing is not None):
                    self.create_table(table)
                    created.append(table.name)
                    continue
                missing = [c for c in table.columns if c.name not in existing]
                if missing:
                    bt = self._call(f"read table {table.name}", self.client.get_table, self._table_id(table.name))
                    for col in missing:
                        log.info("adding column %s.%s %s", table.name, col.name, col.type)
                    bt.schema = [*bt.schema, *(_field(c) for c in missing)]
                    self._call(f"add columns to {table.name}", self.client.update_table, bt, ["schema"])
                    self._schemas[table.name] = existing | {c.name: BIGQUERY_TYPES[c.type] for c in missing}
        finally:
            self.registry.record(created, "table")

    def widen_column(self, table: str, column: str, logical_type: str) -> None:
        sql = (f"ALTER TABLE {self.ref(table)} ALTER COLUMN `{check_identifier(column)}` "
               f"SET DATA TYPE {BIGQUERY_TYPES[logical_type]}")
        self._call(f"widen {table}.{column} to {logical_type}", lambda: self.client.query(sql).result())
        self._schemas.pop(table, None)

    def _columns(self, table: str) -> dict[str, str]:
        columns = self._schemas.get(table) or self.table_columns(table)
        if columns is None:
            raise WarehouseError(f"BigQuery: table {table} does not exist (create it with ensure_tables first)")
        return columns

    # ------------------------------------------------------------ data
    def write(self, batches: Batches, deletes: Sequence[Delete] = ()) -> dict[str, int]:
        staged: list[tuple[Batch, str]] = []
        applied = False
        try:
            items = [b for b in iter_batches(batches) if b.data.num_rows]
            if not items and not deletes:
                return {}
            if not deletes and len(items) == 1 and not items[0].key and "JSON" not in {
                    self._columns(items[0].table).get(c) for c in items[0].data.column_names}:
                return {items[0].table: self._load(items[0].table, items[0].data)}
            for b in items:
                staged.append((b, self._new_staging(b)))
            self._load_all([(name, b) for b, name in staged])
            written = self._apply(staged, deletes)  # the script drops the staging tables
            applied = True
            return written
        finally:
            for _, name in staged:
                self._schemas.pop(name, None)
                if applied:
                    continue
                try:
                    self.client.delete_table(self._table_id(name), not_found_ok=True)
                except Exception as exc:  # it expires by itself
                    log.warning("could not drop staging table %s: %s", name, _message(exc))

    def _new_staging(self, batch: Batch) -> str:
        """Create a staging table shaped like ``batch`` (JSON staged as STRING), expiring on its own."""
        from google.cloud import bigquery

        target = self._columns(batch.table)
        unknown = [c for c in batch.data.column_names if c not in target]
        if unknown:
            raise DataRejected(f"BigQuery: {batch.table} has no column(s) {', '.join(unknown)}")
        name = f"{STAGING_PREFIX}{batch.table}_{uuid.uuid4().hex[:12]}"
        types = {c: "STRING" if target[c] == "JSON" else target[c] for c in batch.data.column_names}
        self._schemas[name] = types | {"__ord": "INT64"}
        bt = bigquery.Table(self._table_id(name), schema=[bigquery.SchemaField(c, t) for c, t in self._schemas[name].items()])
        bt.expires = dt.datetime.now(dt.timezone.utc) + STAGING_TTL
        self._call(f"create staging table for {batch.table}", self.client.create_table, bt)
        return name

    def _load_all(self, jobs: list[tuple[str, Batch]]) -> None:
        """Start every staging load job, then wait for all (they run concurrently)."""
        started = [(batch, self._start_load(name, batch.data.append_column(
            "__ord", pa.array(range(batch.data.num_rows), pa.int64())))) for name, batch in jobs]
        for batch, job in started:
            self._call(f"load of {batch.data.num_rows} rows for {batch.table}", job.result)

    def _load(self, table: str, data: pa.Table) -> int:
        job = self._start_load(table, data)
        self._call(f"load of {data.num_rows} rows into {table}", job.result)
        return job.output_rows if job.output_rows is not None else data.num_rows

    def _start_load(self, table: str, data: pa.Table):
        """A load job appending ``data`` (as Parquet, with the table's schema) to ``table``."""
        from google.cloud import bigquery

        columns = self._columns(table)
        schema = [bigquery.SchemaField(c, columns[c]) for c in data.column_names]
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition="WRITE_APPEND",
            schema=schema,
        )
        buf = io.BytesIO()
        pq.write_table(_parquet_ready(data), buf)
        buf.seek(0)
        return self._call(f"start load into {table}", self.client.load_table_from_file, buf, self._table_id(table),
                          job_config=config, rewind=True)

    def _apply(self, staged: list[tuple[Batch, str]], deletes: Sequence[Delete]) -> dict[str, int]:
        """One transaction: deletes, then each staged batch merged (keyed) or inserted into its table."""
        from google.cloud import bigquery

        params: dict[str, Any] = {}
        statements = []
        for i, d in enumerate(deletes):
            if d.column is None:
                statements.append(f"DELETE FROM {self.ref(d.table)} WHERE TRUE;")
            else:
                params[f"del_{i}"] = d.value
                statements.append(f"DELETE FROM {self.ref(d.table)} WHERE `{check_identifier(d.column)}` = @del_{i};")
        labels: list[tuple[int, str]] = []  # (batch index, what each count is)
        for i, (batch, stage) in enumerate(staged):
            for label, sql in self._merge_sql(i, batch, stage, params):
                statements.append(sql + ";")
                statements.append("SET counts = ARRAY_CONCAT(counts, [@@row_count]);")
                labels.append((i, label))
        drops = [f"DROP TABLE IF EXISTS {self.ref(stage)};" for _, stage in staged]  # DDL: after the commit
        script = "\n".join(["DECLARE counts ARRAY<INT64> DEFAULT [];", "BEGIN TRANSACTION;", *statements,
                            "COMMIT TRANSACTION;", *drops, "SELECT counts;"])
        config = bigquery.QueryJobConfig(query_parameters=_parameters(params))
        retrying = Retrying(retry=retry_if_exception(_is_concurrent_update), wait=wait_random_exponential(0.5, max=20),
                            stop=stop_after_attempt(6), reraise=True,
                            before_sleep=lambda rs: log.info("BigQuery: concurrent update; retrying the write"))
        tables = ", ".join(sorted({b.table for b, _ in staged} | {d.table for d in deletes}))
        try:
            rows = retrying(lambda: list(self.client.query(script, job_config=config).result()))
        except Exception as exc:
            raise translate(exc, f"write to {tables} rolled back", data=True) from exc
        counts = list(rows[0][0]) if rows else []
        written: dict[str, int] = {}

        def add(table: str, n) -> None:
            written[table] = written.get(table, 0) + int(n or 0)

        by_batch: dict[int, dict[str, int]] = {}
        for (i, label), n in zip(labels, counts):
            by_batch.setdefault(i, {})[label] = int(n or 0)
        for i, (batch, _) in enumerate(staged):
            c = by_batch.get(i, {})
            if batch.replace is None:
                add(batch.table, c.get("insert", 0))
                continue
            add(batch.table, c.get("merge", 0))
            add(batch.table + REPLACED, c.get("replaced", 0))
            add(batch.table + STALE, c.get("stale", 0))
            add(batch.replace.history, c.get("superseded", 0) + c.get("replaced", 0) + c.get("stale", 0))
        return written

    def _merge_sql(self, i: int, batch: Batch, stage: str, params: dict[str, Any]) -> list[tuple[str, str]]:
        """(label, statement) pairs moving staged batch ``i`` into its table."""
        target = self._columns(batch.table)
        cols = [check_identifier(c) for c in batch.data.column_names]
        names = ", ".join(f"`{c}`" for c in cols)
        if not batch.key:
            select = ", ".join(f"PARSE_JSON(`{c}`)" if target[c] == "JSON" else f"`{c}`" for c in cols)
            return [("insert", f"INSERT INTO {self.ref(batch.table)} ({names}) SELECT {select} FROM {self.ref(stage)}")]
        key = [check_identifier(k) for k in batch.key]
        prune_sql = ""
        if batch.prune:
            prune = check_identifier(batch.prune)
            low, high = pc.min_max(batch.data.column(prune)).values()
            if low.is_valid:
                params[f"lo_{i}"], params[f"hi_{i}"] = low.as_py(), high.as_py()
                prune_sql = f"(t.`{prune}` BETWEEN @lo_{i} AND @hi_{i} OR t.`{prune}` IS NULL)"
        if batch.replace is not None:
            params["now"] = dt.datetime.now(dt.timezone.utc)
            json_cols = frozenset(c for c in cols if target.get(c) == "JSON")
            return latest_statements(lambda name: f"`{check_identifier(name)}`", self.ref(batch.table),
                                     self.ref(batch.replace.history), self.ref(stage), cols, list(target), key,
                                     batch.replace, prune=prune_sql, json=json_cols)
        values = ", ".join(f"PARSE_JSON(s.`{c}`)" if target[c] == "JSON" else f"s.`{c}`" for c in cols)
        match = " AND ".join(f"t.`{k}` IS NOT DISTINCT FROM s.`{k}`" for k in key)
        if prune_sql:
            match = f"{prune_sql} AND {match}"
        # the first row of each key in the batch, as DuckDB keeps it
        return [("insert", f"MERGE {self.ref(batch.table)} AS t USING ("
                 f"SELECT * EXCEPT (__first) FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY "
                 f"{', '.join(f'`{k}`' for k in key)} ORDER BY __ord) AS __first FROM {self.ref(stage)}) "
                 f"WHERE __first = 1) AS s ON {match} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})")]

    # ------------------------------------------------------------ queries
    def in_list(self, column: str, param: str) -> str:
        return f"{check_identifier(column)} IN UNNEST(@{check_identifier(param)})"

    def _job_config(self, sql: str, params: Mapping[str, Any] | None, **kwargs):
        from google.cloud import bigquery

        config = bigquery.QueryJobConfig(query_parameters=_parameters(used_params(sql, params)), **kwargs)
        if self.options.maximum_bytes_billed:
            config.maximum_bytes_billed = self.options.maximum_bytes_billed
        return config

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        try:
            job = self.client.query(sql, job_config=self._job_config(sql, params))
            return job.result().to_arrow(create_bqstorage_client=False)
        except (WarehouseError, ConfigError):
            raise
        except Exception as exc:
            raise translate(exc, "query failed", data=False) from exc

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        # a view definition this process has already applied is not sent again (a DDL job takes seconds)
        is_view = sql.lstrip().upper().startswith("CREATE OR REPLACE VIEW") or "\nCREATE OR REPLACE VIEW" in sql.upper()
        if is_view and sql in self._views_applied:
            return
        try:
            self.client.query(sql, job_config=self._job_config(sql, params)).result()
        except (WarehouseError, ConfigError):
            raise
        except Exception as exc:
            raise translate(exc, "statement failed", data=False) from exc
        if is_view:
            self._views_applied.add(sql)

    def dry_run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Bytes the query would scan (and bill), without running it."""
        try:
            job = self.client.query(sql, job_config=self._job_config(sql, params, dry_run=True, use_query_cache=False))
        except (WarehouseError, ConfigError):
            raise
        except Exception as exc:
            raise translate(exc, "dry run failed", data=False) from exc
        return int(job.total_bytes_processed or 0)


# ---------------------------------------------------------------------------------------- helpers
def _field(column):
    from google.cloud import bigquery

    return bigquery.SchemaField(column.name, BIGQUERY_TYPES[column.type], mode="NULLABLE",
                                description=column.description or None)


def _parquet_ready(data: pa.Table) -> pa.Table:
    """string_view (from Polars) as plain strings: every Parquet reader understands those."""
    for i, f in enumerate(data.schema):
        if f.type == pa.string_view() or f.type == pa.large_string():
            data = data.set_column(i, f.name, data.column(i).cast(pa.string()))
    return data


def _parameters(params: Mapping[str, Any] | None) -> list:
    """``@name`` query parameters typed from their Python values."""
    from google.cloud import bigquery

    out = []
    for name, value in (params or {}).items():
        if isinstance(value, (list, tuple, set, frozenset)):
            items = list(value)
            out.append(bigquery.ArrayQueryParameter(name, _scalar_type(items[0]) if items else "STRING", items))
        else:
            out.append(bigquery.ScalarQueryParameter(name, _scalar_type(value), value))
    return out


def _scalar_type(value: Any) -> str:
    if value is None:
        return "STRING"
    if isinstance(value, bool):
        return "BOOL"
    if isinstance(value, int):
        return "INT64"
    if isinstance(value, float):
        return "FLOAT64"
    if isinstance(value, decimal.Decimal):
        return "NUMERIC"
    if isinstance(value, dt.datetime):
        return "TIMESTAMP" if value.tzinfo else "DATETIME"
    if isinstance(value, dt.date):
        return "DATE"
    if isinstance(value, str):
        return "STRING"
    raise WarehouseError(f"cannot pass a {type(value).__name__} as a BigQuery query parameter")


def _message(exc: BaseException) -> str:
    """The useful part of a Google API error (its message, not the request dump)."""
    errors = getattr(exc, "errors", None)
    if errors:
        first = errors[0]
        if isinstance(first, dict) and first.get("message"):
            return str(first["message"])
    message = getattr(exc, "message", None)
    return str(message or exc).split("\n\nLocation:")[0]
