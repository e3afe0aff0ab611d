"""``run.py import legacy``: a table the user's own scripts filled with an IRIS / Insights dataset, into
the project's table for that dataset, typed and deduplicated inside the warehouse.

The legacy table may name its columns like Elexon (``measurementTime``) or in snake_case
(``measurement_time``) and hold values as STRING or typed, timestamps in ISO 8601 or BigQuery's
format. Each field of the dataset is cast to its type in SQL (``sql/legacy/import_iris.sql.j2``);
a row whose value does not convert, or that lacks a key field, goes to ``iris_quarantine`` with the
field named (source ``legacy``); good rows go in under the dataset's natural key, one per key (the
newest), only where the key is new: rows already stored from IRIS or the API are kept. Rows carry
``_source = 'legacy'`` and ``_message_id = 'legacy:<table>'``.

Chunks (``--chunk-days``) are recorded in ``legacy_imports`` as they finish: a re-run skips them, and
re-running a chunk adds nothing twice (natural keys). On BigQuery nothing is downloaded; one chunk
(the default) reads the legacy table once.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

from core.errors import ArgumentError, InputFileError
from ingest.iris.datasets import _T as LOGICAL, SPECS, snake
from ingest.iris.tables import BOOKKEEPING, META
from warehouse.base import Warehouse
from warehouse.schema import Column, Table
from warehouse.sqltemplates import render

log = logging.getLogger(__name__)

LEGACY_IMPORTS = Table(
    "legacy_imports",
    (Column("source", "STRING"), Column("dataset", "STRING"), Column("chunk_from", "TIMESTAMP"),
     Column("chunk_to", "TIMESTAMP"), Column("rows_read", "INT64"), Column("imported", "INT64"),
     Column("skipped", "INT64", "good rows whose key was already stored (or repeated in the legacy table)"),
     Column("quarantined", "INT64"), Column("finished_at", "TIMESTAMP")),
    "Chunks of legacy tables imported by python run.py import legacy (a finished chunk is not read again)",
)
#: columns of the user's own bookkeeping that date a row's arrival (the newest copy of a key wins)
INGESTED = ("_ingested_utc", "_ingested_at", "ingested_at")


def read_mapping(path: str) -> list[tuple[str, str]]:
    """(legacy table, dataset code) per line of a mapping CSV with the columns ``table,dataset``."""
    import csv

    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except OSError as exc:
        raise InputFileError(f"{path}: {exc.strerror}") from None
    if not rows or not {"table", "dataset"} <= set(rows[0]):
        raise InputFileError(f"{path}: expected the columns table,dataset (one legacy table per line)")
    bad = [i for i, r in enumerate(rows, start=2) if not (r["table"] or "").strip() or not (r["dataset"] or "").strip()]
    if bad:
        raise InputFileError(f"{path}: line {bad[0]}: both table and dataset are needed")
    return [(r["table"].strip(), r["dataset"].strip().upper()) for r in rows]


@dataclass
class ChunkResult:
    chunk_from: dt.datetime | None
    chunk_to: dt.datetime | None
    rows_read: int = 0
    imported: int = 0
    skipped: int = 0
    quarantined: int = 0
    already_done: bool = False


@dataclass
class LegacyImport:
    source: str
    dataset: str
    target: str
    mapped: dict[str, str]  # project column → legacy column
    missing: list[str]  # project columns the legacy table does not have (NULL)
    ignored: list[str]  # legacy columns not imported
    order_by: str = ""  # the legacy column that picks the newest copy of a key
    chunks: list[ChunkResult] = field(default_factory=list)

    def total(self, what: str) -> int:
        return sum(getattr(c, what) for c in self.chunks)

    def lines(self) -> list[str]:
        done = sum(c.already_done for c in self.chunks)
        if done == len(self.chunks):
            head = (f"{self.source} -> {self.target} ({self.dataset}): already imported (legacy_imports records it); "
                    f"nothing read again")
        else:
            head = (f"{self.source} -> {self.target} ({self.dataset}): {self.total('rows_read'):,} rows read, "
                    f"{self.total('imported'):,} imported, {self.total('skipped'):,} skipped (key already stored, "
                    f"or an older copy in the legacy table), {self.total('quarantined'):,} quarantined "
                    f"(iris_quarantine, source legacy)" + (f"; {done} of {len(self.chunks)} chunks done before" if done else ""))
        lines = [head, "  columns: " + ", ".join(f"{theirs} -> {ours}" for ours, theirs in self.mapped.items())]
        if self.order_by:
            lines.append(f"  the newest copy of a key by: {self.order_by}")
        if self.missing:
            lines.append("  not in the legacy table (NULL): " + ", ".join(self.missing))
        if self.ignored:
            lines.append("  not imported (not fields of the dataset): " + ", ".join(self.ignored))
        return lines


def plan_fields(code: str, legacy: dict[str, str]) -> tuple[list[dict], dict[str, str], list[str], list[str]]:
    """Which legacy column feeds each field of dataset ``code`` (camelCase or snake_case, any case)."""
    spec = SPECS[code]
    by_lower = {c.lower(): c for c in legacy}
    fields, mapped, missing = [], {}, []
    for name, typ in spec.fields.items():
        column = snake(name)
        source = by_lower.get(name.lower()) or by_lower.get(column.lower())
        fields.append({"column": column, "type": LOGICAL[typ], "source": source})
        if source:
            mapped[column] = source
        else:
            missing.append(column)
    lacking = [k for k in spec.key if k not in mapped]
    if lacking:
        raise ArgumentError(f"the legacy table has no column for the {code} key field(s) {', '.join(lacking)} "
                            f"(looked for the Elexon name and its snake_case)")
    ignored = [c for c in legacy if c not in mapped.values()]
    return fields, mapped, missing, ignored


def import_legacy(wh: Warehouse, source: str, code: str, chunk_days: int = 0,
                  on_chunk: Callable[[ChunkResult, int, int], None] | None = None) -> LegacyImport:
    """Import legacy table ``source`` as dataset ``code`` (see the module docstring)."""
    code = code.upper()
    if code not in SPECS:
        raise ArgumentError(f"unknown dataset {code!r}; datasets: {', '.join(sorted(SPECS))}")
    spec = SPECS[code]
    try:
        legacy = wh.source_columns(source)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    if legacy is None:
        raise InputFileError(f"no table {source} in {wh.url}")
    fields, mapped, missing, ignored = plan_fields(code, legacy)
    target = Table(spec.table, tuple(Column(f["column"], f["type"]) for f in fields) + META,
                   f"Elexon {code} rows from IRIS, file drops and the Insights API", partition_by=spec.event_time,
                   cluster_by=tuple(k for k in ("bm_unit",) if k in mapped))
    wh.ensure_tables([target, LEGACY_IMPORTS, *BOOKKEEPING])
    result = LegacyImport(source, code, spec.table, mapped, missing, ignored)

    if spec.version and spec.version in mapped:
        result.order_by = mapped[spec.version]
        order = wh_cast(wh, "s." + result.order_by, dict((f["column"], f["type"]) for f in fields)[spec.version])
    else:
        ingested = next((legacy_col for legacy_col in legacy if legacy_col.lower() in INGESTED), None)
        result.order_by = ingested or mapped[spec.event_time]
        order = wh_cast(wh, f"s.{result.order_by}", "TIMESTAMP")
        if ingested:
            result.ignored.remove(ingested)
    context = {"fields": fields, "key": list(spec.key), "event_time": spec.event_time, "target": spec.table,
               "source": wh.source_ref(source), "order_expr": order}
    now = dt.datetime.now(dt.timezone.utc)
    params = {"message_id": f"legacy:{source}", "dataset": code, "now": now}

    chunks: list[tuple[dt.datetime | None, dt.datetime | None]] = [(None, None)]
    if chunk_days > 0:
        span = wh.query_rows(render("legacy/import_iris.sql.j2", wh, action="range", chunked=False, **context))[0]
        if span["first_event"] is not None:
            start = dt.datetime.combine(span["first_event"].astimezone(dt.timezone.utc).date(), dt.time(),
                                        tzinfo=dt.timezone.utc)
            chunks = []
            while start <= span["last_event"]:
                chunks.append((start, start + dt.timedelta(days=chunk_days)))
                start += dt.timedelta(days=chunk_days)
    done = {(r["chunk_from"], r["chunk_to"]) for r in wh.query_rows(
        f"SELECT chunk_from, chunk_to FROM {wh.ref(LEGACY_IMPORTS.name)} WHERE source = @source AND dataset = @dataset",
        {"source": source, "dataset": code})}
    for i, (chunk_from, chunk_to) in enumerate(chunks):
        chunk = ChunkResult(chunk_from, chunk_to)
        if (chunk_from, chunk_to) in done:
            chunk.already_done = True
        else:
            chunked = chunk_from is not None
            p = params | ({"chunk_from": chunk_from, "chunk_to": chunk_to, "first_chunk": i == 0} if chunked else {})
            counts = wh.query_rows(render("legacy/import_iris.sql.j2", wh, action="count", chunked=chunked, **context), p)[0]
            wh.execute(render("legacy/import_iris.sql.j2", wh, action="quarantine", chunked=chunked, **context), p)
            wh.execute(render("legacy/import_iris.sql.j2", wh, action="insert", chunked=chunked, **context), p)
            chunk.rows_read, chunk.quarantined, chunk.imported = counts["rows_read"], counts["quarantined"], counts["to_import"]
            chunk.skipped = chunk.rows_read - chunk.quarantined - chunk.imported
            wh.write({LEGACY_IMPORTS.name: LEGACY_IMPORTS.conform(pa.Table.from_pylist([{
                "source": source, "dataset": code, "chunk_from": chunk_from, "chunk_to": chunk_to,
                "rows_read": chunk.rows_read, "imported": chunk.imported, "skipped": chunk.skipped,
                "quarantined": chunk.quarantined, "finished_at": dt.datetime.now(dt.timezone.utc)}]))})
        result.chunks.append(chunk)
        if on_chunk:
            on_chunk(chunk, i + 1, len(chunks))
    return result


def wh_cast(wh: Warehouse, expr: str, logical_type: str) -> str:
    from warehouse.dialects import DIALECTS

    return DIALECTS[wh.dialect].safe_cast(expr, logical_type)
