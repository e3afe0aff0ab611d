"""Load a batch of IRIS messages into the warehouse in one transaction.

For a batch (from Service Bus, a file drop or the API):

1. messages already in the ledger are skipped (a redelivery loads nothing twice);
2. bodies are decoded; a body that does not decode is quarantined whole;
3. records are grouped by dataset and typed column-wise (DuckDB ``TRY_CAST``); a record with a
   value that does not fit its column's type is quarantined, the rest load;
4. a new dataset gets a table, a new field a nullable column, each recorded once in
   ``iris_schema_changes`` and logged;
5. rows, ledger entries, quarantine rows and batch statistics are written in one transaction;
   a row whose natural key is already stored (the same row from IRIS and the API) is skipped.

The caller settles messages (completes them on Service Bus, deletes files) only after this returns.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import duckdb
import orjson
import pyarrow as pa

from ingest.iris.datasets import SPECS, DatasetShape, infer_type, snake
from ingest.iris.decode import DecodeError, Message, dataset_of, decode_body
from ingest.iris.tables import BATCHES, BOOKKEEPING, LEDGER, QUARANTINE, SCHEMA_CHANGES, data_table
from warehouse.base import Batch, Warehouse
from warehouse.duckdb import DUCKDB_TYPES
from warehouse.schema import ARROW_TYPES

log = logging.getLogger(__name__)

LEDGER_WINDOW = dt.timedelta(days=1)  # redeliveries keep their enqueued time; look a day either side


@dataclass
class BatchResult:
    """What one call to :meth:`IrisLoader.load` did."""

    batch_id: str
    messages: int = 0
    duplicate_messages: int = 0
    rows: int = 0
    inserted: int = 0
    duplicate_rows: int = 0
    quarantined: int = 0
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)


class IrisLoader:
    """Loads message batches into one warehouse; remembers table shapes between batches."""

    def __init__(self, wh: Warehouse):
        self.wh = wh
        self._columns: dict[str, dict[str, str]] = {}  # table → logical column types
        wh.ensure_tables(BOOKKEEPING)

    # ------------------------------------------------------------------ public
    def load(self, messages: Sequence[Message]) -> BatchResult:
        now = dt.datetime.now(dt.timezone.utc)
        result = BatchResult(uuid.uuid4().hex)
        unique = list({m.message_id: m for m in reversed(messages)}.values())[::-1]  # first of each id
        seen = self._already_loaded(unique)
        fresh = [m for m in unique if m.message_id not in seen]
        result.duplicate_messages = len(messages) - len(fresh)
        result.messages = len(fresh)

        quarantine: list[dict] = []
        ledger: list[dict] = []
        by_dataset: dict[str, list[tuple[Message, int, dict]]] = defaultdict(list)
        for msg in fresh:
            entry = self._ledger_row(msg, result.batch_id, now)
            ledger.append(entry)
            try:
                records = decode_body(msg.body)
            except DecodeError as exc:
                quarantine.append(self._quarantine_row(msg, msg.subject, None, str(exc),
                                                       msg.body.decode("utf-8", "replace"), now))
                entry["quarantined"] = 1
                continue
            entry["records"] = len(records)
            datasets = set()
            by_subject = dataset_of(msg, {})  # the subject decides for every record when it is present
            for i, record in enumerate(records):
                code = by_subject or dataset_of(msg, record)
                if code is None:
                    quarantine.append(self._quarantine_row(
                        msg, None, i, "no dataset: the message has no subject and the record no 'dataset' field",
                        orjson.dumps(record).decode(), now))
                    entry["quarantined"] += 1
                    continue
                datasets.add(code)
                by_dataset[code].append((msg, i, record))
            entry["dataset"] = ",".join(sorted(datasets)) or msg.subject

        ledger_by_id = {e["message_id"]: e for e in ledger}
        batches: list[Batch] = []
        counts: dict[str, dict] = {}
        for code, items in sorted(by_dataset.items()):
            typed, bad = self._typed(code, items, result)
            for (msg, i, record), reason in bad:
                quarantine.append(self._quarantine_row(msg, code, i, reason, orjson.dumps(record).decode(), now))
                ledger_by_id[msg.message_id]["quarantined"] += 1
            shape = self._shape_of(code)
            batches.append(Batch(shape.table, typed, key=shape.key, prune=shape.event_time))
            counts[code] = {"messages": len({m.message_id for m, _, _ in items}), "rows": typed.num_rows,
                            "last_enqueued_at": max((m.enqueued_at or m.received_at) for m, _, _ in items)}

        written = self.wh.write(
            [
                *batches,
                Batch(LEDGER.name, LEDGER.conform(pa.Table.from_pylist(ledger)), key=("message_id",),
                      prune="enqueued_date"),
                (QUARANTINE.name, QUARANTINE.conform(pa.Table.from_pylist(quarantine))),
            ]
        )
        for code, c in counts.items():
            c["inserted"] = written.get(self._shape_of(code).table, 0)
            c["duplicate_rows"] = c["rows"] - c["inserted"]
            result.rows += c["rows"]
            result.inserted += c["inserted"]
            result.duplicate_rows += c["duplicate_rows"]
        result.quarantined = len(quarantine)
        result.datasets = {code: {k: v for k, v in c.items() if k != "last_enqueued_at"} for code, c in counts.items()}
        # statistics are advisory: written after the data, outside its transaction
        stats = _statistics(result.batch_id, now, messages, {m.message_id for m in fresh}, counts, quarantine)
        self.wh.write({BATCHES.name: BATCHES.conform(pa.Table.from_pylist(stats))})
        return result

    # ------------------------------------------------------------------ ledger
    def _already_loaded(self, messages: Sequence[Message]) -> set[str]:
        if not messages:
            return set()
        dates = [_enqueued_date(m) for m in messages]
        rows = self.wh.query_rows(
            f"SELECT message_id FROM {self.wh.ref(LEDGER.name)} "
            f"WHERE enqueued_date BETWEEN @lo AND @hi AND {self.wh.in_list('message_id', 'ids')}",
            {"lo": min(dates) - LEDGER_WINDOW, "hi": max(dates) + LEDGER_WINDOW,
             "ids": [m.message_id for m in messages]},
        )
        return {r["message_id"] for r in rows}

    @staticmethod
    def _ledger_row(msg: Message, batch_id: str, now: dt.datetime) -> dict:
        return {
            "message_id": msg.message_id, "dataset": msg.subject, "source": msg.source,
            "enqueued_at": msg.enqueued_at, "enqueued_date": _enqueued_date(msg),
            "sequence_number": msg.sequence_number, "delivery_count": msg.delivery_count or 0,
            "records": 0, "quarantined": 0, "batch_id": batch_id, "ingested_at": now,
        }

    @staticmethod
    def _quarantine_row(msg: Message, dataset: str | None, index: int | None, reason: str, raw: str,
                        now: dt.datetime) -> dict:
        log.warning("quarantined %s%s: %s", msg.message_id, "" if index is None else f" record {index}", reason)
        return {"message_id": msg.message_id, "dataset": dataset, "source": msg.source, "record_index": index,
                "reason": reason, "raw": raw, "quarantined_at": now}

    # ------------------------------------------------------------------ shapes and typing
    def _shape_of(self, code: str) -> DatasetShape:
        shape = DatasetShape(code, SPECS.get(code))
        shape.columns = dict(self._table_columns(shape.table) or {})
        return shape

    def _table_columns(self, table: str) -> dict[str, str] | None:
        if table not in self._columns:
            found = self.wh.logical_columns(table)
            if found is None:
                return None
            self._columns[table] = {k: v for k, v in found.items() if not k.startswith("_")}
        return self._columns[table]

    def _typed(self, code: str, items: list[tuple[Message, int, dict]], result: BatchResult):
        """Typed Arrow rows for one dataset (schema evolved as needed) and the records that failed typing."""
        records = [record for _, _, record in items]
        fields: dict[str, None] = {}
        for record in records:
            fields.update(dict.fromkeys(record))
        spec = SPECS.get(code)
        known = {snake(k): v for k, v in spec.columns.items()} if spec else {}
        existing = self._table_columns(data_table(DatasetShape(code, spec)).name)
        target: dict[str, str] = {}  # column → logical type
        source: dict[str, str] = {}  # column → Elexon field
        raw: dict[str, list] = {}
        for name in fields:
            column = snake(name)
            if column in source or not column or column[0].isdigit():
                continue
            values = [r.get(name) for r in records]
            target[column] = (existing or {}).get(column) or (
                spec.columns.get(column) if spec and column in spec.columns else infer_type(name, values))
            source[column] = name
            raw[column] = values
        if spec:  # the spec's columns exist even if this batch lacks some of them
            for column, typ in spec.columns.items():
                target.setdefault(column, typ)
        self._evolve(code, spec, target, existing, items[0][0].message_id, result)

        columns = {c: _arrow_values(raw.get(c, [None] * len(records)), target[c]) for c in target}
        typed, flags = _cast(pa.table(columns), target)
        bad = []
        if any(flags):
            keep = []
            for i, flag in enumerate(flags):
                if flag:
                    column = flag.split(",")[0]
                    value = records[i].get(source.get(column, column))
                    bad.append((items[i], f"field {source.get(column, column)}: {value!r} is not a valid "
                                          f"{target[column]}"))
                else:
                    keep.append(i)
            typed = typed.take(pa.array(keep, pa.int64()))
            items = [items[i] for i in keep]
        n = typed.num_rows
        messages = [m for m, _, _ in items]
        typed = typed.append_column("_message_id", pa.array([m.message_id for m in messages], pa.string()))
        typed = typed.append_column("_source", pa.array([m.source for m in messages], pa.string()))
        typed = typed.append_column("_ingested_at", pa.array([dt.datetime.now(dt.timezone.utc)] * n,
                                                             ARROW_TYPES["TIMESTAMP"]))
        return typed, bad

    def _evolve(self, code: str, spec, target: dict[str, str], existing: dict[str, str] | None, first_message: str,
                result: BatchResult) -> None:
        """Create the table or add the columns this batch brings; record each change once."""
        shape = DatasetShape(code, spec, columns=dict(target))
        if existing is not None and set(target) <= set(existing):
            return
        now = dt.datetime.now(dt.timezone.utc)
        if existing is None:
            changes = [(shape.table, None, None, "new table")]
        else:
            changes = [(shape.table, c, t, "new column") for c, t in target.items() if c not in existing]
            shape.columns = {**existing, **{c: t for c, t in target.items() if c not in existing}}
        self.wh.ensure_tables([data_table(shape)])
        self._columns[shape.table] = {c: t for c, t in shape.columns.items()}
        rows = [{"table_name": t, "column_name": c, "column_type": typ, "change": what, "message_id": first_message,
                 "changed_at": now} for t, c, typ, what in changes]
        self.wh.write({SCHEMA_CHANGES.name: SCHEMA_CHANGES.conform(pa.Table.from_pylist(rows))})
        for t, c, typ, what in changes:
            text = f"{what} {t}" + (f".{c} {typ}" if c else "") + f" (first seen in message {first_message})"
            log.warning("schema change: %s", text)
            result.schema_changes.append(text)


# ---------------------------------------------------------------------- helpers
def _statistics(batch_id: str, now: dt.datetime, messages: Sequence[Message], fresh_ids: set[str],
                counts: dict[str, dict], quarantine: list[dict]) -> list[dict]:
    """One ``iris_batches`` row per dataset the batch touched (redeliveries and quarantine included)."""
    rows: dict[str | None, dict] = {}

    def row(code: str | None) -> dict:
        return rows.setdefault(code, {"batch_id": batch_id, "dataset": code, "source": _source(messages),
                                      "messages": 0, "duplicate_messages": 0, "rows": 0, "inserted": 0,
                                      "duplicate_rows": 0, "quarantined": 0, "last_enqueued_at": None,
                                      "committed_at": now})

    for code, c in counts.items():
        row(code).update(c)
    taken: set[str] = set()
    for msg in messages:
        if msg.message_id in fresh_ids and msg.message_id not in taken:
            taken.add(msg.message_id)
            continue
        row(dataset_of(msg, {}))["duplicate_messages"] += 1
    for q in quarantine:
        row(q["dataset"])["quarantined"] += 1
    return list(rows.values())


def _enqueued_date(msg: Message) -> dt.date:
    return (msg.enqueued_at or msg.received_at).astimezone(dt.timezone.utc).date()


def _source(messages: Sequence[Message]) -> str:
    return ",".join(sorted({m.source for m in messages})) or "iris"


def _arrow_values(values: list, logical: str) -> pa.Array:
    """Values as an Arrow array of the most natural type (JSON columns as JSON text)."""
    if logical == "JSON":
        return pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = None
    if array is None or pa.types.is_struct(array.type) or pa.types.is_list(array.type) or pa.types.is_null(array.type):
        return pa.array([None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values],
                        pa.string())
    return array


_cast_lock = threading.Lock()
_cast_con: duckdb.DuckDBPyConnection | None = None


@atexit.register
def _close_cast_connection() -> None:
    global _cast_con
    if _cast_con is not None:
        _cast_con.close()
        _cast_con = None


def _cast(raw: pa.Table, target: dict[str, str]) -> tuple[pa.Table, list[str]]:
    """TRY_CAST every column to its logical type; also a per-row list of the columns that failed."""
    global _cast_con
    selects, checks = [], []
    for column, logical in target.items():
        engine = DUCKDB_TYPES[logical]
        selects.append(f'TRY_CAST("{column}" AS {engine}) AS "{column}"')
        checks.append(f"""CASE WHEN "{column}" IS NOT NULL AND TRY_CAST("{column}" AS {engine}) IS NULL
                          THEN '{column}' END""")
    sql = f"SELECT {', '.join(selects)}, concat_ws(',', {', '.join(checks)}) AS __bad FROM raw"
    with _cast_lock:
        if _cast_con is None:
            _cast_con = duckdb.connect()
            _cast_con.execute("SET TimeZone = 'UTC'")
        _cast_con.register("raw", raw)
        try:
            out = _cast_con.sql(sql).to_arrow_table()
        finally:
            _cast_con.unregister("raw")
    flags = out.column("__bad").to_pylist()
    out = out.drop_columns(["__bad"])
    schema = pa.schema([pa.field(c, ARROW_TYPES[t]) for c, t in target.items()])
    return out.cast(schema), flags
