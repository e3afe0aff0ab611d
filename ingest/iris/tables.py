"""IRIS bookkeeping tables (ledger, quarantine, schema changes, batch stats) and data-table specs."""

from __future__ import annotations

from ingest.iris.datasets import DatasetShape
from warehouse.base import Warehouse
from warehouse.schema import Column, Table

META = (
    Column("_message_id", "STRING", "IRIS message id, file name, or API chunk the row came from"),
    Column("_source", "STRING", "iris, file or api"),
    Column("_ingested_at", "TIMESTAMP", "when the row was committed"),
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
        Column("duplicate_rows", "INT64", "rows skipped because their natural key was already stored"),
        Column("quarantined", "INT64"),
        Column("last_enqueued_at", "TIMESTAMP", "latest enqueued time among the batch's messages of the dataset"),
        Column("committed_at", "TIMESTAMP"),
    ),
    "Per batch and dataset: what was loaded, skipped and quarantined (feeds run.py status)",
    partition_by="committed_at",
)

BOOKKEEPING = (LEDGER, QUARANTINE, SCHEMA_CHANGES, BATCHES)


def data_table(shape: DatasetShape) -> Table:
    """The warehouse table for a dataset: its columns, then lineage columns."""
    columns = tuple(Column(name, typ) for name, typ in shape.columns.items()) + META
    return Table(shape.table, columns, f"Elexon {shape.code} rows from IRIS, file drops and the Insights API",
                 partition_by=shape.event_time, cluster_by=tuple(k for k in ("bm_unit",) if k in shape.columns))


def ensure_iris_schema(wh: Warehouse) -> None:
    wh.ensure_tables(BOOKKEEPING)
