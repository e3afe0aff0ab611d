"""The few SQL constructs DuckDB and BigQuery spell differently, as template macros.

Templates write everything else in the subset both engines share (no QUALIFY, no COUNTIF, no
bare ``UNION``, ``x / NULLIF(y, 0)`` rather than SAFE_DIVIDE, STARTS_WITH for prefixes: ``LIKE 'V__%'``
would treat ``_`` as a wildcard). Each macro returns SQL text built from identifiers and
``@parameters`` only: values are never pasted in.
"""

from __future__ import annotations

import re

from warehouse.schema import check_identifier

_EXPR = re.compile(r"^[A-Za-z0-9_.@() +\-*/]+$")


def _expr(text: str) -> str:
    """Guard: a macro argument must be a column/parameter expression, never free text."""
    if not _EXPR.match(text):
        raise ValueError(f"not a simple SQL expression: {text!r}")
    return text


class Dialect:
    name = "generic"
    float64 = "FLOAT64"  # the 64-bit float type, for CAST(NULL AS {{ sql.float64 }})
    int64 = "INT64"  # the 64-bit integer type

    def in_list(self, column: str, param: str) -> str:
        raise NotImplementedError

    def list_rows(self, param: str, column: str) -> str:
        """A FROM-clause item yielding one row per value of list parameter ``@param``, in column ``column``."""
        raise NotImplementedError

    def periods_in_day(self, day: str) -> str:
        """Settlement periods (46/48/50) in the Europe/London day ``day`` (a DATE expression)."""
        raise NotImplementedError

    def date_series(self, first: str, last: str, column: str) -> str:
        """A FROM-clause item yielding one row per date ``first``..``last`` in column ``column``."""
        raise NotImplementedError

    def seconds_between(self, start: str, end: str) -> str:
        """Whole seconds from TIMESTAMP ``start`` to ``end``."""
        raise NotImplementedError

    def add_days(self, day: str, days: str) -> str:
        """DATE ``day`` plus ``days`` days, as a DATE."""
        raise NotImplementedError

    def star_except(self, *columns: str) -> str:
        """Every column but ``columns`` (``SELECT * EXCLUDE`` / ``* EXCEPT``)."""
        raise NotImplementedError

    def utc_date(self, ts: str) -> str:
        """The UTC calendar date of TIMESTAMP ``ts``."""
        return f"CAST({_expr(ts)} AS DATE)"

    def json_items(self, column: str, alias: str) -> str:
        """A FROM-clause item: one row per element of the JSON array in ``column``, named ``alias``."""
        raise NotImplementedError

    def json_text(self, item: str, key: str) -> str:
        """The value of ``key`` in JSON object ``item``, as text."""
        raise NotImplementedError

    def json_timestamp(self, item: str, key: str) -> str:
        """An ISO 8601 timestamp at ``key`` of JSON object ``item``, as a TIMESTAMP."""
        raise NotImplementedError

    def json_number(self, item: str, key: str) -> str:
        return f"CAST({self.json_text(item, key)} AS {self.float64})"

    def safe_cast(self, expr: str, logical_type: str) -> str:
        """``expr`` as ``logical_type`` (STRING, INT64, FLOAT64, BOOL, DATE, TIMESTAMP, JSON), NULL where it does not convert."""
        raise NotImplementedError

    def row_json(self, alias: str) -> str:
        """The whole row of table alias ``alias`` as JSON text (column names kept)."""
        raise NotImplementedError

    def london_midnight(self, day: str) -> str:
        """The UTC instant a Europe/London settlement day ``day`` (a DATE expression) begins."""
        raise NotImplementedError

    def add_minutes(self, ts: str, minutes: str) -> str:
        """Timestamp ``ts`` plus ``minutes`` (an integer expression)."""
        raise NotImplementedError

    def number_table(self, last: int, column: str = "n") -> str:
        """A subquery with integers 1..``last`` (portable: a chain of UNION ALL)."""
        check_identifier(column)
        return "(" + " UNION ALL ".join(f"SELECT {i} AS {column}" for i in range(1, last + 1)) + ")"


class DuckDBDialect(Dialect):
    name = "duckdb"
    float64 = "DOUBLE"
    int64 = "BIGINT"

    def star_except(self, *columns: str) -> str:
        return f"* EXCLUDE ({', '.join(check_identifier(c) for c in columns)})"

    def in_list(self, column: str, param: str) -> str:
        return f"{_expr(column)} IN (SELECT unnest(@{check_identifier(param)}))"

    def list_rows(self, param: str, column: str) -> str:
        return f"(SELECT unnest(@{check_identifier(param)}) AS {check_identifier(column)})"

    def periods_in_day(self, day: str) -> str:
        d = _expr(day)
        return (f"CAST((epoch(timezone('Europe/London', CAST(CAST({d} AS DATE) + 1 AS TIMESTAMP))) "
                f"- epoch(timezone('Europe/London', CAST(CAST({d} AS DATE) AS TIMESTAMP)))) / 1800 AS BIGINT)")

    def date_series(self, first: str, last: str, column: str) -> str:
        check_identifier(column)
        return (f"(SELECT CAST(unnest(generate_series(CAST({_expr(first)} AS TIMESTAMP), "
                f"CAST({_expr(last)} AS TIMESTAMP), INTERVAL 1 DAY)) AS DATE) AS {column})")

    def seconds_between(self, start: str, end: str) -> str:
        # floor each side, as BigQuery's UNIX_SECONDS does
        return f"(CAST(floor(epoch({_expr(end)})) AS BIGINT) - CAST(floor(epoch({_expr(start)})) AS BIGINT))"

    def add_days(self, day: str, days: str) -> str:
        return f"CAST(CAST({_expr(day)} AS DATE) + CAST({_expr(days)} AS INTEGER) AS DATE)"

    def london_midnight(self, day: str) -> str:
        return f"timezone('Europe/London', CAST(CAST({_expr(day)} AS DATE) AS TIMESTAMP))"

    def add_minutes(self, ts: str, minutes: str) -> str:
        return f"({_expr(ts)} + to_minutes(CAST({_expr(minutes)} AS BIGINT)))"

    def safe_cast(self, expr: str, logical_type: str) -> str:
        types = {"STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "BOOL": "BOOLEAN", "DATE": "DATE",
                 "TIMESTAMP": "TIMESTAMPTZ", "JSON": "JSON"}
        return f"TRY_CAST({_expr(expr)} AS {types[logical_type]})"

    def row_json(self, alias: str) -> str:
        return f"CAST(to_json({check_identifier(alias)}) AS VARCHAR)"

    def json_items(self, column: str, alias: str) -> str:
        return f"unnest(CAST(json_extract({_expr(column)}, '$[*]') AS JSON[])) AS {check_identifier(alias)}_items({alias})"

    def json_text(self, item: str, key: str) -> str:
        return f"json_extract_string({_expr(item)}, '$.{check_identifier(key)}')"

    def json_timestamp(self, item: str, key: str) -> str:
        return f"CAST({self.json_text(item, key)} AS TIMESTAMPTZ)"


class BigQueryDialect(Dialect):
    name = "bigquery"

    def star_except(self, *columns: str) -> str:
        return f"* EXCEPT ({', '.join(check_identifier(c) for c in columns)})"

    def in_list(self, column: str, param: str) -> str:
        return f"{_expr(column)} IN UNNEST(@{check_identifier(param)})"

    def list_rows(self, param: str, column: str) -> str:
        return f"UNNEST(@{check_identifier(param)}) AS {check_identifier(column)}"

    def periods_in_day(self, day: str) -> str:
        d = _expr(day)
        return (f"DIV(TIMESTAMP_DIFF(TIMESTAMP(DATE_ADD({d}, INTERVAL 1 DAY), 'Europe/London'), "
                f"TIMESTAMP({d}, 'Europe/London'), MINUTE), 30)")

    def date_series(self, first: str, last: str, column: str) -> str:
        check_identifier(column)
        return f"UNNEST(GENERATE_DATE_ARRAY({_expr(first)}, {_expr(last)})) AS {column}"

    def seconds_between(self, start: str, end: str) -> str:
        return f"(UNIX_SECONDS({_expr(end)}) - UNIX_SECONDS({_expr(start)}))"

    def add_days(self, day: str, days: str) -> str:
        return f"DATE_ADD({_expr(day)}, INTERVAL {_expr(days)} DAY)"

    def london_midnight(self, day: str) -> str:
        return f"TIMESTAMP({_expr(day)}, 'Europe/London')"

    def add_minutes(self, ts: str, minutes: str) -> str:
        return f"TIMESTAMP_ADD({_expr(ts)}, INTERVAL {_expr(minutes)} MINUTE)"

    def safe_cast(self, expr: str, logical_type: str) -> str:
        if logical_type == "JSON":
            return f"SAFE.PARSE_JSON(CAST({_expr(expr)} AS STRING))"
        return f"SAFE_CAST({_expr(expr)} AS {logical_type})"

    def row_json(self, alias: str) -> str:
        return f"TO_JSON_STRING({check_identifier(alias)})"

    def json_items(self, column: str, alias: str) -> str:
        return f"UNNEST(JSON_QUERY_ARRAY({_expr(column)})) AS {check_identifier(alias)}"

    def json_text(self, item: str, key: str) -> str:
        return f"JSON_VALUE({_expr(item)}, '$.{check_identifier(key)}')"

    def json_timestamp(self, item: str, key: str) -> str:
        return f"TIMESTAMP({self.json_text(item, key)})"


DIALECTS = {"duckdb": DuckDBDialect(), "bigquery": BigQueryDialect()}
