"""Engine-neutral table definitions: every backend creates tables from these.

Logical types map one-to-one onto DuckDB and BigQuery types and onto Arrow types, so a batch
produced by a parser can be checked against its table before it is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import pyarrow as pa

ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INT64": pa.int64(),
    "FLOAT64": pa.float64(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),  # an instant, stored in UTC
    "DATETIME": pa.timestamp("us"),  # a wall-clock time as printed, no zone
    "JSON": pa.string(),
}

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe SQL identifier (letters, digits, underscore), else raise."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a valid table or column name: {name!r}")
    return name


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # one of ARROW_TYPES
    description: str = ""

    def __post_init__(self) -> None:
        check_identifier(self.name)
        if self.type not in ARROW_TYPES:
            raise ValueError(f"column {self.name}: unknown type {self.type}")


@dataclass(frozen=True)
class Table:
    """A warehouse table: columns, an optional key, and physical-layout hints for BigQuery."""

    name: str
    columns: tuple[Column, ...]
    description: str = ""
    partition_by: str | None = None  # a DATE/TIMESTAMP column
    cluster_by: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_identifier(self.name)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, ARROW_TYPES[c.type]) for c in self.columns])

    def conform(self, batch: pa.Table) -> pa.Table:
        """Select and cast ``batch`` to this table's columns and types (missing columns → NULL)."""
        arrays, fields = [], []
        for col in self.columns:
            target = ARROW_TYPES[col.type]
            if col.name not in batch.column_names:
                arrays.append(pa.nulls(batch.num_rows, target))
            else:
                array = batch.column(col.name)
                # string_view is the same logical type; keep it so Polars → DuckDB stays zero-copy
                if array.type != target and not (target == pa.string() and array.type == pa.string_view()):
                    array = array.cast(target)
                arrays.append(array)
            fields.append(pa.field(col.name, arrays[-1].type))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))
