"""Load a batch of IRIS messages into the warehouse in one transaction.

For a batch (from Service Bus, a file drop or the API):

1. messages already in the ledger are skipped (a redelivery loads nothing twice);
2. bodies are decoded; a body that does not decode is quarantined whole (with its raw text) and
   ledgered, except a file drop's: Elexon's client writes files in place, so a file may be read
   half-written and is rewritten on a redelivery; its complete version must still load (the same
   unreadable bytes again are a duplicate, recognised in the quarantine);
3. records are grouped by dataset and typed column-wise (:mod:`ingest.iris.typed`): a record with a
   value that does not fit its column exactly, or without its natural key, is quarantined with the
   reason and its raw JSON, the rest load;
4. a new dataset gets a table, a new field a nullable column, an inferred INT64 column that meets a
   fraction becomes FLOAT64; each change is recorded once in ``iris_schema_changes`` and logged;
5. rows, ledger entries and quarantine rows are written in one transaction. What a row whose
   natural key is already stored does depends on the dataset (``DatasetSpec.mode``): an identical
   row is a duplicate; a different one is a correction (latest wins, the old version kept in
   ``<table>_history``) or, for an immutable dataset, a duplicate too.

If the warehouse **rejects** the batch's data (:class:`~core.errors.DataRejected`: a column it
cannot bind, a value it cannot convert), the batch is retried message by message and only a
message that is still rejected is quarantined whole; the rest commit. If the warehouse is
**unavailable** (:class:`~core.errors.WarehouseUnavailable`) the error goes to the caller, which
keeps the messages and retries: nothing is quarantined for a fault of ours.

The caller settles messages (completes them on Service Bus, deletes files) only after this returns.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from itertools import repeat
from dataclasses import dataclass, field

import orjson
import pyarrow as pa

from core.errors import DataRejected, ElexonError
from ingest.iris.datasets import LATEST, MESSAGE_TIME, SPECS, VERSIONED, DatasetShape
from ingest.iris.decode import FILE_SOURCE, DecodeError, Message, dataset_of, decode_body
from ingest.iris.tables import (BATCHES, BOOKKEEPING, LEDGER, META, QUARANTINE, SCHEMA_CHANGES, data_table,
                                history_table)
from ingest.iris.typed import type_records
from warehouse.base import REPLACED, STALE, Batch, Replace, Warehouse
from warehouse.schema import ARROW_TYPES
from warehouse.sqltemplates import render

log = logging.getLogger(__name__)

LEDGER_WINDOW = dt.timedelta(days=1)  # redeliveries keep their enqueued time; look a day either side
_BOOKKEEPING_COLUMNS = ("_message_id", "_source", "_ingested_at", MESSAGE_TIME)


class _Unexpected(Exception):
    """An error that is neither the data's nor the warehouse's: a bug; isolated like rejected data."""


@dataclass
class BatchResult:
    """What one call to :meth:`IrisLoader.load` did."""

    batch_id: str
    messages: int = 0
    duplicate_messages: int = 0
    rows: int = 0
    inserted: int = 0
    duplicate_rows: int = 0
    corrections: int = 0
    stale_rows: int = 0
    quarantined: int = 0
    isolated: int = 0  # messages quarantined whole because the warehouse rejected their data
    datasets: dict[str, dict[str, int]] = field(default_factory=dict)
    schema_changes: list[str] = field(default_factory=list)
    unreadable_files: set[str] = field(default_factory=set)  # not ledgered: a changed file loads; keep it

    def add(self, other: "BatchResult") -> None:
        for name in ("messages", "duplicate_messages", "rows", "inserted", "duplicate_rows", "corrections",
                     "stale_rows", "quarantined", "isolated"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for code, counts in other.datasets.items():
            mine = self.datasets.setdefault(code, {})
            for k, v in counts.items():
                mine[k] = mine.get(k, 0) + v
        self.schema_changes += other.schema_changes
        self.unreadable_files |= other.unreadable_files


@dataclass
class _Group:
    """The records of one dataset in a batch, with the message each came from."""

    positions: list[int] = field(default_factory=list)  # the record's message, as its position in the batch
    indexes: list[int] = field(default_factory=list)  # the record's position in its message
    records: list[dict] = field(default_factory=list)

    def add_all(self, position: int, records: list[dict]) -> None:
        self.positions.extend(repeat(position, len(records)))
        self.indexes.extend(range(len(records)))
        self.records.extend(records)


@dataclass
class _Lineage:
    """Per-message lineage values of a batch as Arrow arrays, taken per row by message position."""

    ids: pa.Array
    sources: pa.Array
    times: pa.Array

    @classmethod
    def of(cls, messages: Sequence[Message]) -> "_Lineage":
        return cls(pa.array([m.message_id for m in messages], pa.string()),
                   pa.array([m.source for m in messages], pa.string()),
                   pa.array([_message_time(m) for m in messages], ARROW_TYPES["TIMESTAMP"]))


class IrisLoader:
    """Loads message batches into one warehouse; remembers table shapes between batches."""

    def __init__(self, wh: Warehouse):
        self.wh = wh
        self._columns: dict[str, dict[str, str]] = {}  # table → logical column types (data columns only)
        self._prepared: set[str] = set()  # tables whose history table / view this loader has ensured
        wh.ensure_tables(BOOKKEEPING)

    # ------------------------------------------------------------------ public
    def load(self, messages: Sequence[Message]) -> BatchResult:
        """Load ``messages`` (see the module docstring).

        Raises only :class:`~core.errors.WarehouseError` for a warehouse that cannot take the batch
        now (unavailable, or refusing our own statements): the caller keeps the messages and retries.
        """
        try:
            return self._load(messages)
        except (DataRejected, _Unexpected) as exc:
            self._columns.clear()  # the failed write may have left a schema change behind: re-read
            why = (f"the warehouse rejected its data: {exc}" if isinstance(exc, DataRejected)
                   else f"internal error while loading it ({exc}); please report it")
            if len(messages) > 1:
                log.warning("a batch of %d messages failed (%s); loading them one by one", len(messages), why)
                result = BatchResult(uuid.uuid4().hex)
                for message in messages:
                    result.add(self.load([message]))
                return result
            return self.quarantine_message(messages[0], why)

    def _load(self, messages: Sequence[Message]) -> BatchResult:
        try:
            return self._load_batch(messages)
        except ElexonError:
            raise
        except Exception as exc:  # noqa: BLE001 - a bug must not lose or block good messages
            log.debug("unexpected error loading a batch", exc_info=True)
            raise _Unexpected(f"{type(exc).__name__}: {exc}") from exc

    # ------------------------------------------------------------------ one batch
    def _load_batch(self, messages: Sequence[Message]) -> BatchResult:
        now = dt.datetime.now(dt.timezone.utc)
        result = BatchResult(uuid.uuid4().hex)
        unique = list({m.message_id: m for m in reversed(messages)}.values())[::-1]  # first of each id
        seen = self._already_loaded(unique)
        fresh = [m for m in unique if m.message_id not in seen]
        result.duplicate_messages = len(messages) - len(fresh)
        result.messages = len(fresh)
        repeated: set[str] = set()  # unreadable files quarantined before, byte for byte

        quarantine: list[dict] = []
        ledger: list[dict] = []
        groups: dict[str, _Group] = defaultdict(_Group)
        decoded: list[list[dict] | DecodeError] = []
        for msg in fresh:
            try:
                decoded.append(decode_body(msg.body))
            except DecodeError as exc:
                decoded.append(exc)
        kept = self._quarantined_bodies([m for m, d in zip(fresh, decoded)
                                         if isinstance(d, DecodeError) and m.source == FILE_SOURCE])
        for position, (msg, records) in enumerate(zip(fresh, decoded)):
            entry = self._ledger_row(msg, result.batch_id, now)
            if isinstance(records, DecodeError):
                exc, raw = records, msg.body.decode("utf-8", "replace")
                if msg.source == FILE_SOURCE:
                    # A file can still change: Elexon's client writes it in place (a poll may read it
                    # half-written) and rewrites it on a redelivery. So it is quarantined but not
                    # ledgered, and its complete version loads; the same bytes again are a duplicate.
                    result.unreadable_files.add(msg.message_id)
                    if (msg.message_id, raw) in kept:
                        result.messages -= 1
                        result.duplicate_messages += 1
                        repeated.add(msg.message_id)
                        continue
                else:
                    ledger.append(entry | {"quarantined": 1})
                quarantine.append(_quarantine_row(msg, msg.subject, None, str(exc), raw, now))
                continue
            ledger.append(entry)
            entry["records"] = len(records)
            by_subject = dataset_of(msg, {})  # the subject decides for every record when it is present
            if by_subject:
                if records:
                    groups[by_subject].add_all(position, records)
                entry["dataset"] = by_subject
                continue
            datasets = set()
            for i, record in enumerate(records):
                code = dataset_of(msg, record)
                if code is None:
                    quarantine.append(_quarantine_row(
                        msg, None, i, "no dataset: the message has no subject and the record no 'dataset' field",
                        orjson.dumps(record).decode(), now))
                    entry["quarantined"] += 1
                    continue
                datasets.add(code)
                group = groups[code]
                group.positions.append(position)
                group.indexes.append(i)
                group.records.append(record)
            entry["dataset"] = ",".join(sorted(datasets)) or msg.subject

        ledger_by_id = {e["message_id"]: e for e in ledger}
        lineage = _Lineage.of(fresh)
        batches: list[Batch] = []
        counts: dict[str, dict] = {}
        for code, group in sorted(groups.items()):
            shape, typed, bad = self._typed(code, group, lineage, fresh, result, now)
            for i, reason in bad:
                msg = fresh[group.positions[i]]
                quarantine.append(_quarantine_row(msg, code, group.indexes[i], reason,
                                                  orjson.dumps(group.records[i]).decode(), now))
                ledger_by_id[msg.message_id]["quarantined"] += 1
            spec = shape.spec
            replace = None
            if spec is not None and spec.mode in (LATEST, VERSIONED):
                compare = tuple(c for c in typed.column_names if c not in _BOOKKEEPING_COLUMNS)
                replace = Replace(spec.version_column, spec.history_table, compare)
            batches.append(Batch(shape.table, typed, key=shape.key, prune=shape.event_time, replace=replace))
            positions = set(group.positions)
            counts[code] = {"messages": len(positions), "rows": typed.num_rows,
                            "last_enqueued_at": max(_message_time(fresh[i]) for i in positions)}

        written = self.wh.write(
            [
                *batches,
                Batch(LEDGER.name, LEDGER.conform(pa.Table.from_pylist(ledger)), key=("message_id",),
                      prune="enqueued_date"),
                (QUARANTINE.name, QUARANTINE.conform(pa.Table.from_pylist(quarantine))),
            ]
        )
        for code, c in counts.items():
            shape = self._shape_of(code)
            history = written.get(shape.spec.history_table, 0) if shape.spec else 0
            c["inserted"] = written.get(shape.table, 0)
            c["corrections"] = written.get(shape.table + REPLACED, 0)
            c["stale_rows"] = written.get(shape.table + STALE, 0)
            # rows offered = new + replacing + superseded/stale (to history) + identical duplicates
            c["duplicate_rows"] = c["rows"] - c["inserted"] - (history - c["corrections"])
            result.rows += c["rows"]
            result.inserted += c["inserted"]
            result.duplicate_rows += c["duplicate_rows"]
            result.corrections += c["corrections"]
            result.stale_rows += c["stale_rows"]
        result.quarantined = len(quarantine)
        result.datasets = {code: {k: v for k, v in c.items() if k != "last_enqueued_at"} for code, c in counts.items()}
        self._write_statistics(result.batch_id, now, messages, {m.message_id for m in fresh} - repeated, counts,
                               quarantine)
        return result

    def quarantine_message(self, msg: Message, reason: str) -> BatchResult:
        """Quarantine one message whole (raw body and reason) and record it in the ledger, so it is
        not retried for ever; nothing else of it is loaded."""
        now = dt.datetime.now(dt.timezone.utc)
        result = BatchResult(uuid.uuid4().hex, messages=1, quarantined=1, isolated=1)
        if self._already_loaded([msg]):
            return BatchResult(result.batch_id, duplicate_messages=1)
        entry = self._ledger_row(msg, result.batch_id, now) | {"quarantined": 1}
        row = _quarantine_row(msg, dataset_of(msg, {}), None, reason[:4000], msg.body.decode("utf-8", "replace"), now)
        self.wh.write([
            Batch(LEDGER.name, LEDGER.conform(pa.Table.from_pylist([entry])), key=("message_id",), prune="enqueued_date"),
            (QUARANTINE.name, QUARANTINE.conform(pa.Table.from_pylist([row]))),
        ])
        self._write_statistics(result.batch_id, now, [msg], {msg.message_id}, {}, [row])
        return result

    def _write_statistics(self, batch_id: str, now: dt.datetime, messages: Sequence[Message], fresh_ids: set[str],
                          counts: dict[str, dict], quarantine: list[dict]) -> None:
        """Statistics are advisory: written after the data, outside its transaction."""
        stats = _statistics(batch_id, now, messages, fresh_ids, counts, quarantine)
        self.wh.write({BATCHES.name: BATCHES.conform(pa.Table.from_pylist(stats))})

    # ------------------------------------------------------------------ ledger
    def _quarantined_bodies(self, messages: Sequence[Message]) -> set[tuple[str, str]]:
        """(message id, raw body) of these messages' bodies already quarantined whole."""
        if not messages:
            return set()
        rows = self.wh.query_rows(
            f"SELECT message_id, raw FROM {self.wh.ref(QUARANTINE.name)} "
            f"WHERE record_index IS NULL AND {self.wh.in_list('message_id', 'ids')}",
            {"ids": [m.message_id for m in messages]},
        )
        return {(r["message_id"], r["raw"]) for r in rows}

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
            # before anything reads its shape: a table of ours carries our lineage columns; the user's never do
            self.wh.registry.claim_existing(table, found, {c.name: c.type for c in META[:3]},
                                            "snake_case columns of the dataset's fields and the lineage columns "
                                            + ", ".join(c.name for c in META))
            self._columns[table] = {k: v for k, v in found.items() if not k.startswith("_")}
        return self._columns[table]

    def _prepare(self, shape: DatasetShape, existing: dict[str, str]) -> None:
        """Once per loader, for a table made before: its history table and latest-revision view."""
        spec = shape.spec
        if shape.table in self._prepared or spec is None or spec.mode not in (LATEST, VERSIONED):
            return
        shape.columns = dict(existing)
        self.wh.ensure_tables([history_table(shape)])
        if spec.mode == VERSIONED:
            self._latest_view(shape)
        if spec.pairs:
            self._pairs_view(shape)
        self._prepared.add(shape.table)

    def _latest_view(self, shape: DatasetShape) -> None:
        spec = shape.spec
        view = shape.table + "_latest"
        self.wh.define_view(view, render("views/iris_latest_revision.sql.j2", self.wh, table=shape.table, view=view,
                                         partition=spec.latest_by,
                                         order=tuple(k for k in spec.key if k not in spec.latest_by)))

    def _pairs_view(self, shape: DatasetShape) -> None:
        spec = shape.spec
        column, value = spec.pairs
        keep = [c for c in spec.columns if c not in (column, "dataset")]
        view = shape.table + "_pairs"
        self.wh.define_view(view, render("views/iris_pairs.sql.j2", self.wh, table=shape.table, view=view,
                                         column=column, value=value, keep=keep))

    def _typed(self, code: str, group: _Group, lineage: _Lineage, fresh: Sequence[Message], result: BatchResult,
               now: dt.datetime):
        """(shape, typed Arrow rows with lineage, [(record, reason)] quarantined) for one dataset."""
        spec = SPECS.get(code)
        shape = DatasetShape(code, spec)
        existing = self._table_columns(shape.table)
        if existing is not None:
            self._prepare(shape, existing)
        typed = type_records(group.records, spec, existing)
        self._evolve(shape, typed.columns, typed.widened, existing, fresh[group.positions[0]].message_id, result, now)
        table = typed.table
        positions = pa.array(group.positions, pa.int64())
        if typed.bad:
            positions = positions.take(pa.array(typed.kept, pa.int64()))
        table = table.append_column("_message_id", lineage.ids.take(positions))
        table = table.append_column("_source", lineage.sources.take(positions))
        table = table.append_column("_ingested_at", pa.repeat(pa.scalar(now, ARROW_TYPES["TIMESTAMP"]), table.num_rows))
        table = table.append_column(MESSAGE_TIME, lineage.times.take(positions))
        return self._shape_of(code), table, sorted(typed.bad.items())

    def _evolve(self, shape: DatasetShape, target: dict[str, str], widened: dict[str, str],
                existing: dict[str, str] | None, first_message: str, result: BatchResult, now: dt.datetime) -> None:
        """Create the table, add the columns this batch brings, widen columns; record each change once."""
        if existing is not None and set(target) <= set(existing) and not widened:
            return
        if existing is None:
            changes = [(shape.table, None, None, "new table")]
        else:
            changes = [(shape.table, c, t, "new column") for c, t in target.items() if c not in existing]
            changes += [(shape.table, c, t, f"widened from {existing[c]}") for c, t in widened.items()
                        if c in existing]
        shape.columns = {**(existing or {}), **target}
        tables = [data_table(shape)]
        if shape.spec is not None and shape.spec.mode in (LATEST, VERSIONED):
            tables.append(history_table(shape))
        for column, typ in widened.items():
            if existing and column in existing:
                for t in tables:
                    if self.wh.table_columns(t.name) is not None:
                        self.wh.widen_column(t.name, column, typ)
        self.wh.ensure_tables(tables)
        if existing is None and shape.spec is not None and shape.spec.mode == VERSIONED:
            self._latest_view(shape)
        if existing is None and shape.spec is not None and shape.spec.pairs:
            self._pairs_view(shape)
        self._prepared.add(shape.table)
        self._columns[shape.table] = dict(shape.columns)
        rows = [{"table_name": t, "column_name": c, "column_type": typ, "change": what, "message_id": first_message,
                 "changed_at": now} for t, c, typ, what in changes]
        self.wh.write({SCHEMA_CHANGES.name: SCHEMA_CHANGES.conform(pa.Table.from_pylist(rows))})
        for t, c, typ, what in changes:
            text = f"{what} {t}" + (f".{c} {typ}" if c else "") + f" (first seen in message {first_message})"
            log.warning("schema change: %s", text)
            result.schema_changes.append(text)


# ---------------------------------------------------------------------- helpers
def _quarantine_row(msg: Message, dataset: str | None, index: int | None, reason: str, raw: str,
                    now: dt.datetime) -> dict:
    log.warning("quarantined %s%s: %s", msg.message_id, "" if index is None else f" record {index}", reason)
    return {"message_id": msg.message_id, "dataset": dataset, "source": msg.source, "record_index": index,
            "reason": reason, "raw": raw, "quarantined_at": now}


def _statistics(batch_id: str, now: dt.datetime, messages: Sequence[Message], fresh_ids: set[str],
                counts: dict[str, dict], quarantine: list[dict]) -> list[dict]:
    """One ``iris_batches`` row per dataset the batch touched (redeliveries and quarantine included)."""
    rows: dict[str | None, dict] = {}
    source = _source(messages)

    def row(code: str | None) -> dict:
        if code not in rows:
            rows[code] = {"batch_id": batch_id, "dataset": code, "source": source, "messages": 0,
                          "duplicate_messages": 0, "rows": 0, "inserted": 0, "duplicate_rows": 0, "corrections": 0,
                          "stale_rows": 0, "quarantined": 0, "last_enqueued_at": None, "committed_at": now}
        return rows[code]

    for code, c in counts.items():
        row(code).update(c)
    taken: set[str] = set()
    for msg in messages:
        if msg.message_id in fresh_ids and msg.message_id not in taken:
            taken.add(msg.message_id)
            continue
        row(dataset_of(msg, {}))["duplicate_messages"] += 1
    if quarantine:
        published = {m.message_id: _message_time(m) for m in reversed(messages)}  # the first copy's time
        for q in quarantine:
            r = row(q["dataset"])
            r["quarantined"] += 1
            if r["last_enqueued_at"] is None:
                r["last_enqueued_at"] = published.get(q["message_id"])
    return list(rows.values())


def _message_time(msg: Message) -> dt.datetime:
    """When the message was published: Service Bus enqueued time, the file's arrival, the API fetch."""
    return msg.enqueued_at or msg.received_at


def _enqueued_date(msg: Message) -> dt.date:
    return _message_time(msg).astimezone(dt.timezone.utc).date()


def _source(messages: Sequence[Message]) -> str:
    return ",".join(sorted({m.source for m in messages})) or "iris"
