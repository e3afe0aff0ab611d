"""IRIS bookkeeping tables (ledger, quarantine, schema changes, batch stats) and data-table specs."""

from __future__ import annotations

from ingest.iris.datasets import MESSAGE_TIME, DatasetShape
from warehouse.base import HISTORY_COLUMNS, Warehouse
from warehouse.schema import Column, Table

META = (
    Column("_message_id", "STRING", "IRIS message id, file name, or API chunk the row came from"),
    Column("_source", "STRING", "iris, file or api"),
    Column("_ingested_at", "TIMESTAMP", "when the row was committed"),
    Column(MESSAGE_TIME, "TIMESTAMP", "when the message was published: Service Bus enqueued time, the file's "
                                      "arrival time, the API fetch time; orders versions of a row"),
)
HISTORY_META = (
    Column(HISTORY_COLUMNS[0], "STRING", "the message whose version of the row superseded this one"),
    Column(HISTORY_COLUMNS[1], "TIMESTAMP", "when it was superseded"),
)

LEDGER = Table(
    "iris_message_ledger",
    (
        Column("message_id", "STRING"),
        Column("dataset", "STRING"),
        Column("source", "STRING"),
        Column("enqueued_at", "TIMESTAMP", "Service Bus enqueued time (file drops: the file's modification time)"),
        Column("enqueued_date", "DATE", "date of enqueued_at (received time when unknown); bounds ledger look-ups"),
        Column("sequence_number", "INT64"),
        Column("delivery_count", "INT64"),
        Column("records", "INT64", "records in the message"),
        Column("quarantined", "INT64", "records (or the whole body) sent to quarantine"),
        Column("batch_id", "STRING"),
        Column("ingested_at", "TIMESTAMP"),
    ),
    "Every message loaded, written in the same transaction as its rows: a redelivered message is skipped",
    partition_by="enqueued_date",
)

QUARANTINE = Table(
    "iris_quarantine",
    (
        Column("message_id", "STRING"),
        Column("dataset", "STRING"),
        Column("source", "STRING"),
        Column("record_index", "INT64", "position of the record in the message; NULL when the whole body failed"),
        Column("reason", "STRING"),
        Column("raw", "STRING", "the raw body, or the raw record as JSON"),
        Column("quarantined_at", "TIMESTAMP"),
    ),
    "Bodies that do not decode and records that fail typing, kept verbatim",
)

SCHEMA_CHANGES = Table(
    "iris_schema_changes",
    (
        Column("table_name", "STRING"),
        Column("column_name", "STRING"),
        Column("column_type", "STRING"),
        Column("change", "STRING", "new table | new column"),
        Column("message_id", "STRING", "the first message that carried it"),
        Column("changed_at", "TIMESTAMP"),
    ),
    "Every table and column the loader created because the data carried something new",
)

BATCHES = Table(
    "iris_batches",
    (
        Column("batch_id", "STRING"),
        Column("dataset", "STRING"),
        Column("source", "STRING"),
        Column("messages", "INT64", "new messages with records of this dataset"),
        Column("duplicate_messages", "INT64", "messages skipped because the ledger had them"),
        Column("rows", "INT64", "typed rows offered"),
        Column("inserted", "INT64"),
        Column("duplicate_rows", "INT64", "rows skipped because an identical row was already stored"),
        Column("corrections", "INT64", "stored rows replaced by a newer version (the old one kept in history)"),
        Column("stale_rows", "INT64", "rows older than the stored version: kept in history, not applied"),
        Column("quarantined", "INT64"),
        Column("last_enqueued_at", "TIMESTAMP", "latest enqueued time among the batch's messages of the dataset"),
        Column("committed_at", "TIMESTAMP"),
    ),
    "Per batch and dataset: what was loaded, skipped and quarantined (feeds run.py status)",
    partition_by="committed_at",
)

OUTAGES = Table(
    "iris_outages",
    (
        Column("started_at", "TIMESTAMP", "first failed write"),
        Column("ended_at", "TIMESTAMP", "the write that succeeded"),
        Column("seconds", "FLOAT64"),
        Column("attempts", "INT64", "writes tried while it lasted"),
        Column("messages_held", "INT64", "messages kept locked (not dead-lettered, not quarantined) meanwhile"),
        Column("locks_lost", "INT64", "held messages whose lock could not be kept: redelivered, loaded once"),
        Column("error", "STRING", "the first error"),
    ),
    "Times the IRIS worker found the warehouse unavailable and held its batch until it came back",
    partition_by="started_at",
)

API_WINDOWS = Table(
    "iris_api_windows",
    (
        Column("dataset", "STRING"),
        Column("window_from", "TIMESTAMP"),
        Column("window_to", "TIMESTAMP"),
        Column("records", "INT64", "rows the API returned"),
        Column("fetched_at", "TIMESTAMP"),
    ),
    "Insights API windows fetched by gap fills (resumable backfills skip the complete ones)",
    partition_by="window_from",
)

BOOKKEEPING = (LEDGER, QUARANTINE, SCHEMA_CHANGES, BATCHES, OUTAGES)  # API_WINDOWS: made by a gap fill


def data_table(shape: DatasetShape) -> Table:
    """The warehouse table for a dataset: its columns, then lineage columns."""
    columns = tuple(Column(name, typ) for name, typ in shape.columns.items()) + META
    return Table(shape.table, columns, f"Elexon {shape.code} rows from IRIS, file drops and the Insights API",
                 partition_by=shape.event_time, cluster_by=tuple(k for k in ("bm_unit",) if k in shape.columns))


def history_table(shape: DatasetShape) -> Table:
    """Every superseded version of a latest-wins dataset's rows, with what superseded it."""
    current = data_table(shape)
    return Table(shape.spec.history_table, current.columns + HISTORY_META,
                 f"Superseded versions of {shape.table} rows (nothing Elexon sent is thrown away)",
                 partition_by=current.partition_by, cluster_by=current.cluster_by)


def ensure_iris_schema(wh: Warehouse) -> None:
    wh.ensure_tables(BOOKKEEPING)
