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
    detail: str = ""  # why rows were skipped, where the import can say


@dataclass
class LegacyImport:
    source: str
    dataset: str
    target: str  # as named in the warehouse (with the table prefix)
    mapped: dict[str, str]  # project column → legacy column
    missing: list[str]  # project columns the legacy table does not have (NULL)
    ignored: list[str]  # legacy columns not imported
    order_by: str = ""  # the legacy column that picks the newest copy of a key
    quarantine: str = "iris_quarantine"
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
                    f"{self.total('imported'):,} imported, {self.total('skipped'):,} skipped (already stored, "
                    f"or an older copy in the legacy table), {self.total('quarantined'):,} quarantined "
                    f"({self.quarantine}, source legacy)" + (f"; {done} of {len(self.chunks)} chunks done before" if done else ""))
        lines = [head] + [f"  skipped: {c.detail}" for c in self.chunks if c.detail and c.skipped]
        lines.append("  columns: " + ", ".join(f"{theirs} -> {ours}" for ours, theirs in self.mapped.items()))
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
    if code == P114_BPI:
        return import_legacy_p114(wh, source, chunk_days, on_chunk)
    if code not in SPECS:
        raise ArgumentError(f"unknown dataset {code!r}; datasets: {', '.join(sorted(SPECS))}, or {P114_BPI} for a "
                            f"table of S0142 BPI fields")
    spec = SPECS[code]
    legacy = _legacy_columns(wh, source)
    fields, mapped, missing, ignored = plan_fields(code, legacy)
    target = Table(spec.table, tuple(Column(f["column"], f["type"]) for f in fields) + META,
                   f"Elexon {code} rows from IRIS, file drops and the Insights API", partition_by=spec.event_time,
                   cluster_by=tuple(k for k in ("bm_unit",) if k in mapped))
    wh.ensure_tables([target, LEGACY_IMPORTS, *BOOKKEEPING])
    result = LegacyImport(source, code, wh.physical(spec.table), mapped, missing, ignored,
                          quarantine=wh.physical("iris_quarantine"))

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
    params = {"message_id": f"legacy:{source}", "dataset": code, "now": dt.datetime.now(dt.timezone.utc)}
    chunks: list[tuple[dt.datetime | None, dt.datetime | None]] = [(None, None)]
    if chunk_days > 0:
        span = wh.query_rows(render("legacy/import_iris.sql.j2", wh, action="range", chunked=False, **context))[0]
        if span["first_event"] is not None:
            chunks = _day_chunks(span["first_event"].astimezone(dt.timezone.utc).date(), span["last_event"], chunk_days)

    def run(p: dict, chunked: bool, chunk: ChunkResult) -> None:
        counts = wh.query_rows(render("legacy/import_iris.sql.j2", wh, action="count", chunked=chunked, **context), p)[0]
        wh.execute(render("legacy/import_iris.sql.j2", wh, action="quarantine", chunked=chunked, **context), p)
        wh.execute(render("legacy/import_iris.sql.j2", wh, action="insert", chunked=chunked, **context), p)
        chunk.rows_read, chunk.quarantined, chunk.imported = counts["rows_read"], counts["quarantined"], counts["to_import"]
        chunk.skipped = chunk.rows_read - chunk.quarantined - chunk.imported

    _run_chunks(wh, result, chunks, params, run, on_chunk)
    return result


#: ``--dataset S0142_BPI``: a legacy P114 table, into the project's BPI table as partial rows
P114_BPI = "S0142_BPI"
#: the BPI columns a legacy P114 table may carry, each with the names it may go by (compared lower case,
#: without underscores): the four that identify a row are needed, and at least one value
P114_KEYS = {
    "settlement_date": ("settlementdate", "settdate", "date"),
    "settlement_period": ("settlementperiod", "period", "sp"),
    "settlement_run": ("settlementrun", "settlementruntype", "runtype", "run"),
    "bm_unit_id": ("bmunitid", "bmunit", "elexonbmunit"),
}
P114_VALUES = {
    "metered_volume_mwh": ("meteredvolumemwh", "meteredvolume", "bmunitmeteredvolume", "bmunitmeteredvolumemwh"),
    "fpn_mwh": ("fpnmwh", "fpn", "finalphysicalnotification"),
    "transmission_loss_multiplier": ("transmissionlossmultiplier", "tlm"),
    "absvd_mwh": ("absvdmwh", "absvd"),
    "trading_unit": ("tradingunit", "tradingunitname"),
}


def _plain(name: str) -> str:
    return name.lower().replace("_", "")


def plan_p114(legacy: dict[str, str]) -> tuple[dict[str, str], list[dict], list[str], list[str]]:
    """Which legacy column feeds each BPI column: (keys, values, missing values, ignored legacy columns)."""
    from ingest.p114.tables import BPI

    by_plain = {_plain(c): c for c in legacy}
    types = {c.name: c.type for c in BPI.columns}

    def find(names: tuple[str, ...]) -> str | None:
        return next((by_plain[n] for n in names if n in by_plain), None)

    keys = {column: find(names) for column, names in P114_KEYS.items()}
    lacking = [c for c, source in keys.items() if source is None]
    if lacking:
        raise ArgumentError(f"the legacy table has no column for {', '.join(lacking)} (looked for "
                            + "; ".join(f"{c}: {', '.join(P114_KEYS[c])}" for c in lacking) + ", any case)")
    values = [{"column": c, "type": types[c], "source": find(names)} for c, names in P114_VALUES.items()]
    missing = [v["column"] for v in values if v["source"] is None]
    values = [v for v in values if v["source"] is not None]
    if not values:
        raise ArgumentError("the legacy table has none of the BPI values (" + ", ".join(P114_VALUES) + "): nothing "
                            "to import")
    used = set(keys.values()) | {v["source"] for v in values}
    return keys, values, missing, [c for c in legacy if c not in used]


def import_legacy_p114(wh: Warehouse, source: str, chunk_days: int = 0,
                       on_chunk: Callable[[ChunkResult, int, int], None] | None = None) -> "LegacyImport":
    """Import the user's P114 table ``source`` into the BPI table as partial rows (``layout = legacy:partial``).

    Each settlement date and run of the legacy table becomes one manifest row, file name
    ``legacy:<source>:<date>:<run>``; a date and run the manifest already has (a real S0142 file, or
    an earlier import) is skipped. A real file of the date outranks legacy rows in the canonical views.
    """
    from core.settlement import RUN_PRECEDENCE
    from ingest.iris.tables import BOOKKEEPING
    from ingest.p114.tables import ensure_p114_schema

    legacy = _legacy_columns(wh, source)
    keys, values, missing, ignored = plan_p114(legacy)
    ensure_p114_schema(wh)
    wh.ensure_tables([LEGACY_IMPORTS, *BOOKKEEPING])
    ingested = next((c for c in legacy if c.lower() in INGESTED), None)
    if ingested:
        ignored.remove(ingested)
    result = LegacyImport(source, P114_BPI, wh.physical("elexon_p114_s0142_bpi"),
                          {**keys, **{v["column"]: v["source"] for v in values}}, missing, ignored,
                          order_by=ingested or "", quarantine=wh.physical("iris_quarantine"))
    context = {"keys": keys, "values": values, "runs": list(RUN_PRECEDENCE), "source": wh.source_ref(source),
               "order_expr": wh_cast(wh, f"s.{ingested}", "TIMESTAMP") if ingested else "NULL"}
    now = dt.datetime.now(dt.timezone.utc)
    params = {"message_id": f"legacy:{source}", "dataset": P114_BPI, "now": now, "file_prefix": f"legacy:{source}:",
              "source_label": f"legacy {source}"}
    chunks: list[tuple] = [(None, None)]
    if chunk_days > 0:
        span = wh.query_rows(render("legacy/import_p114_bpi.sql.j2", wh, action="range", chunked=False, **context),
                             params)[0]
        if span["first_day"] is not None:
            chunks = _day_chunks(span["first_day"], span["last_day"], chunk_days)

    def run(p: dict, chunked: bool, chunk: ChunkResult) -> None:
        counts = wh.query_rows(render("legacy/import_p114_bpi.sql.j2", wh, action="count", chunked=chunked, **context), p)[0]
        for action in ("quarantine", "insert", "manifest"):
            wh.execute(render("legacy/import_p114_bpi.sql.j2", wh, action=action, chunked=chunked, **context), p)
        chunk.rows_read, chunk.quarantined, chunk.imported = counts["rows_read"], counts["quarantined"], counts["to_import"]
        chunk.skipped = chunk.rows_read - chunk.quarantined - chunk.imported
        chunk.detail = (f"{counts['repeated']:,} repeated in the legacy table (the newest copy kept"
                        + (f", by {ingested}" if ingested else "") + f"); {counts['groups_read'] - counts['new_groups']:,} of "
                        f"{counts['groups_read']:,} settlement date/run pairs already loaded (a real S0142 file or an "
                        f"earlier import), their rows skipped")

    _run_chunks(wh, result, chunks, params, run, on_chunk)
    return result


def _legacy_columns(wh: Warehouse, source: str) -> dict[str, str]:
    """Column → logical type of the user's table ``source``; a clear error if there is none."""
    try:
        legacy = wh.source_columns(source)
    except ValueError as exc:
        raise ArgumentError(str(exc)) from None
    if legacy is None:
        raise InputFileError(f"no table {source} in {wh.url}")
    return legacy


def _day_chunks(first: dt.date, last: dt.datetime | dt.date, days: int) -> list[tuple[dt.datetime, dt.datetime]]:
    """Chunks of ``days`` days (UTC midnights) from ``first`` through ``last``."""
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.timezone.utc)
    if not isinstance(last, dt.datetime):
        last = dt.datetime.combine(last, dt.time(), tzinfo=dt.timezone.utc)
    chunks = []
    while start <= last:
        chunks.append((start, start + dt.timedelta(days=days)))
        start += dt.timedelta(days=days)
    return chunks


def _run_chunks(wh: Warehouse, result: "LegacyImport", chunks: list[tuple], params: dict,
                run: Callable[[dict, bool, ChunkResult], None],
                on_chunk: Callable[[ChunkResult, int, int], None] | None) -> None:
    """Run each chunk not yet recorded in ``legacy_imports`` (``run`` fills its counts), recording it after."""
    done = {(r["chunk_from"], r["chunk_to"]) for r in wh.query_rows(
        f"SELECT chunk_from, chunk_to FROM {wh.ref(LEGACY_IMPORTS.name)} WHERE source = @source AND dataset = @dataset",
        {"source": result.source, "dataset": result.dataset})}
    for i, (chunk_from, chunk_to) in enumerate(chunks):
        chunk = ChunkResult(chunk_from, chunk_to)
        if (chunk_from, chunk_to) in done:
            chunk.already_done = True
        else:
            chunked = chunk_from is not None
            run(params | ({"chunk_from": chunk_from, "chunk_to": chunk_to, "first_chunk": i == 0} if chunked else {}),
                chunked, chunk)
            wh.write({LEGACY_IMPORTS.name: LEGACY_IMPORTS.conform(pa.Table.from_pylist([{
                "source": result.source, "dataset": result.dataset, "chunk_from": chunk_from, "chunk_to": chunk_to,
                "rows_read": chunk.rows_read, "imported": chunk.imported, "skipped": chunk.skipped,
                "quarantined": chunk.quarantined, "finished_at": dt.datetime.now(dt.timezone.utc)}]))})
        result.chunks.append(chunk)
        if on_chunk:
            on_chunk(chunk, i + 1, len(chunks))


def wh_cast(wh: Warehouse, expr: str, logical_type: str) -> str:
    return wh.sql.safe_cast(expr, logical_type)
