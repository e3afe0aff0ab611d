"""Records (decoded JSON objects) → one typed Arrow table per dataset, column-wise and exact.

The common case is one C-level conversion: the records become an Arrow struct array with one
child per field, built with types that cannot lose information silently (integers are read as
float64 and checked to be whole, timestamps and dates as text and parsed by Arrow). Only when that
conversion fails (a value of the wrong kind somewhere) does a column fall back to a value-by-value
check, which names the record and field at fault. The rules:

* a value is never rounded or truncated: an Elexon-declared integer that arrives fractional
  (``levelFrom: 12.7``) quarantines its record; a column we inferred as INT64 is widened to FLOAT64
  instead (the caller records the schema change);
* a record missing a natural-key field is quarantined (it could never be told apart from others),
  except a settlement dataset's ``side``, taken from the sign of its volume where it has one;
* a field whose column name would clash with our bookkeeping columns (they start with ``_``) is
  stored as ``payload`` + its name: ``_message_id`` → ``payload_message_id``; a field name that is
  not a valid column name gets a ``f_`` prefix;
* missing fields are NULL; fields nobody has seen before get a column typed from their values.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ingest.iris.datasets import DatasetSpec, infer_type, snake
from warehouse.schema import ARROW_TYPES

RESERVED_PREFIX = "_"  # bookkeeping columns (_message_id, _source, …) start with this
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_EXACT_FLOAT = 2.0 ** 53  # float64 holds every integer up to here exactly
_BUILD = {"STRING": pa.string(), "INT64": pa.float64(), "FLOAT64": pa.float64(), "BOOL": pa.bool_(),
          "DATE": pa.string(), "TIMESTAMP": pa.string(), "DATETIME": pa.string()}
_FRACTION = re.compile(r"(\.\d{6})\d+")
_DATE_ONLY = re.compile(r"^\d{4}-\d\d-\d\d$")


def column_for(field_name: str) -> str:
    """The column a payload field is stored in (see the module docstring for the rule)."""
    column = snake(field_name)
    if column.startswith(RESERVED_PREFIX):
        column = "payload" + column
    if not _IDENT.match(column):
        column = ("f_" + column)[:128]
    return column


@dataclass
class Typed:
    """One dataset's records, typed."""

    table: pa.Table  # one row per kept record, one column per entry of ``columns``
    kept: list[int]  # index (into the records given) of each row of ``table``
    bad: dict[int, str] = field(default_factory=dict)  # record index → why it was quarantined
    columns: dict[str, str] = field(default_factory=dict)  # column → logical type, as the table should be
    sources: dict[str, str] = field(default_factory=dict)  # column → Elexon field name
    widened: dict[str, str] = field(default_factory=dict)  # column → its new, wider type


def type_records(records: list[dict], spec: DatasetSpec | None, existing: dict[str, str] | None) -> Typed:
    """Type ``records`` of one dataset for a table whose columns are ``existing`` (None: no table yet)."""
    existing = existing or {}
    declared = spec.columns if spec else {}
    names = sorted(set().union(*map(dict.keys, records))) if records else []
    sources: dict[str, list[str]] = {}
    for name in names:
        sources.setdefault(column_for(name), []).append(name)

    columns: dict[str, str] = {}
    for column, fields in sources.items():
        columns[column] = existing.get(column) or declared.get(column) or infer_type(
            fields[0], [r.get(f) for r in records for f in fields])
    for column, typ in declared.items():  # the spec's columns exist even if this batch lacks them
        columns.setdefault(column, existing.get(column, typ))
    for column, typ in existing.items():
        columns.setdefault(column, typ)

    bad: dict[int, str] = {}
    for column, fields in sources.items():
        if len(fields) > 1:  # two field names for one column: ambiguous only where both are present
            for i, r in enumerate(records):
                present = [f for f in fields if r.get(f) is not None]
                if len(present) > 1 and len({orjson.dumps(r[f]) for f in present}) > 1:
                    bad.setdefault(i, f"fields {' and '.join(present)} both map to column {column} with "
                                      f"different values")

    simple = {c: t for c, t in columns.items() if c in sources and t != "JSON"}
    arrays: dict[str, pa.Array] = {}
    struct = _struct(records, {sources[c][0]: t for c, t in simple.items() if len(sources[c]) == 1})
    widened: dict[str, str] = {}
    for column, typ in columns.items():
        if column not in sources:
            arrays[column] = pa.nulls(len(records), ARROW_TYPES[typ])
            continue
        fields = sources[column]
        if typ == "JSON":
            values = _values(records, fields)
            arrays[column] = pa.array([None if v is None else orjson.dumps(v).decode() for v in values], pa.string())
            continue
        raw = struct.field(fields[0]) if struct is not None and len(fields) == 1 else None
        array, failures, wider = _convert(raw, records, fields, typ, may_widen=column not in declared)
        if wider:
            widened[column] = wider
            columns[column] = typ = wider
        for i, reason in failures.items():
            bad.setdefault(i, f"field {fields[0]}: {reason}")
        arrays[column] = array

    if spec and spec.side_from and "side" in arrays and arrays["side"].null_count and spec.side_from in arrays:
        signed = arrays[spec.side_from]  # a row without a side: the sign of its volume says which
        derived = pc.if_else(pc.greater_equal(signed, 0), "offer", "bid")
        arrays["side"] = pc.coalesce(arrays["side"], derived)
    if spec:
        for key in spec.key:
            if key in arrays:
                for i in _null_rows(arrays[key]):
                    bad.setdefault(i, f"missing natural-key field {sources.get(key, [key])[0]} "
                                      f"(the key of {spec.code} is {', '.join(spec.key)})")
            else:
                for i in range(len(records)):
                    bad.setdefault(i, f"missing natural-key field {key} (the key of {spec.code} is {', '.join(spec.key)})")

    table = pa.table({c: arrays[c] for c in columns})
    kept = list(range(len(records)))
    if bad:
        kept = [i for i in kept if i not in bad]
        table = table.take(pa.array(kept, pa.int64()))
    return Typed(table, kept, bad, columns, {c: f[0] for c, f in sources.items()}, widened)


# ---------------------------------------------------------------------------------------- helpers
def _struct(records: list[dict], types: dict[str, str]) -> pa.StructArray | None:
    """All simple fields in one C-level pass; None when any value has the wrong kind (then per column)."""
    if not types:
        return None
    try:
        return pa.array(records, pa.struct([(f, _BUILD[t]) for f, t in types.items()]))
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return None


def _values(records: list[dict], fields: list[str]) -> list:
    if len(fields) == 1:
        f = fields[0]
        return [r.get(f) for r in records]
    return [next((r[f] for f in fields if r.get(f) is not None), None) for r in records]


def _null_rows(array: pa.Array) -> list[int]:
    if not array.null_count:
        return []
    return pc.indices_nonzero(pc.is_null(array)).to_pylist()


def _convert(raw: pa.Array | None, records: list[dict], fields: list[str], typ: str,
             may_widen: bool) -> tuple[pa.Array, dict[int, str], str | None]:
    """(typed array, {record: reason}, widened type) for one column."""
    if raw is None:  # the fast struct pass failed somewhere: build this column on its own
        values = _values(records, fields)
        try:
            raw = pa.array(values, _BUILD[typ])
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return _by_value(values, typ, may_widen)
        if typ == "INT64" and any(isinstance(v, int) and abs(v) > _EXACT_FLOAT for v in values):
            return _by_value(values, typ, may_widen)
    if typ in ("INT64", "FLOAT64") and _has_booleans(raw, records, fields):  # Arrow reads true as 1.0
        return _by_value(_values(records, fields), typ, may_widen)
    if typ == "STRING" or typ == "BOOL" or typ == "FLOAT64":
        return raw, {}, None
    if typ == "INT64":
        whole = pc.equal(pc.floor(raw), raw)
        if pc.all(whole).as_py() is not False and not pc.any(pc.greater(pc.abs(raw), _EXACT_FLOAT)).as_py():
            return raw.cast(pa.int64()), {}, None
        return _by_value(_values(records, fields), typ, may_widen)
    try:
        return _parse_times(raw, typ), {}, None
    except (pa.ArrowInvalid, ValueError):
        return _by_value(_values(records, fields), typ, may_widen)


def _has_booleans(raw: pa.Array, records: list[dict], fields: list[str]) -> bool:
    """Whether a JSON true/false hides among the numbers (only 0.0 and 1.0 can be one: check just those)."""
    suspects = pc.indices_nonzero(pc.fill_null(pc.is_in(raw, value_set=_ZERO_ONE), False)).to_pylist()
    return any(type(records[i].get(f)) is bool for i in suspects for f in fields)


_ZERO_ONE = pa.array([0.0, 1.0])


def _parse_times(raw: pa.Array, typ: str) -> pa.Array:
    target = ARROW_TYPES[typ]
    if typ == "DATE":
        return raw.cast(target)
    try:
        return raw.cast(target)
    except pa.ArrowInvalid:  # more than 6 fraction digits, a space for the T, no zone (taken as UTC)
        text = pc.replace_substring_regex(raw, _FRACTION.pattern, r"\1")
        text = pc.replace_substring_regex(text, r"^(\d{4}-\d\d-\d\d) ", r"\1T")
        if typ == "TIMESTAMP":
            text = pc.if_else(pc.match_substring_regex(text, r"(Z|[+-]\d\d:?\d\d)$"), text,
                              pc.binary_join_element_wise(text, "Z", ""))
        return text.cast(target)


def _by_value(values: list, typ: str, may_widen: bool) -> tuple[pa.Array, dict[int, str], str | None]:
    """The slow, exact path: check every value; name each one that does not fit."""
    bad: dict[int, str] = {}
    if typ == "INT64":
        fractional = [i for i, v in enumerate(values) if isinstance(v, float) and not v.is_integer()]
        if fractional and may_widen and all(_is_number(v) or v is None for v in values):
            return pa.array([None if v is None else float(v) for v in values], pa.float64()), {}, "FLOAT64"
    out = []
    for i, v in enumerate(values):
        try:
            out.append(_exact(v, typ))
        except _Unfit as exc:
            bad[i] = f"{v!r} is not a valid {typ}: {exc}"
            out.append(None)
        except (TypeError, ValueError):
            bad[i] = f"{v!r} is not a valid {typ}"
            out.append(None)
    return pa.array(out, ARROW_TYPES[typ]), bad, None


class _Unfit(ValueError):
    """A value that cannot be stored exactly, with the reason worth telling the user."""


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _exact(v, typ: str):
    """``v`` as a Python value of ``typ``, or an error: never rounds, never guesses."""
    if v is None:
        return None
    if typ == "STRING":
        if isinstance(v, str):
            return v
        if isinstance(v, (bool, int, float)):
            return orjson.dumps(v).decode()
        return orjson.dumps(v).decode()
    if typ == "INT64":
        if isinstance(v, bool):
            raise TypeError
        if isinstance(v, int):
            if not -(2 ** 63) <= v < 2 ** 63:
                raise _Unfit("out of the INT64 range")
            return v
        if isinstance(v, float):
            if not v.is_integer():
                raise _Unfit("not a whole number, and the field is declared an integer")
            return int(v)
        if isinstance(v, str) and re.fullmatch(r"[+-]?\d+", v.strip()):
            return int(v)
        raise TypeError
    if typ == "FLOAT64":
        if _is_number(v):
            return float(v)
        if isinstance(v, str):
            return float(v)  # ValueError names the text
        raise TypeError
    if typ == "BOOL":
        if isinstance(v, bool):
            return v
        if isinstance(v, str) and v.lower() in ("true", "false"):
            return v.lower() == "true"
        raise TypeError
    if typ in ("TIMESTAMP", "DATETIME"):
        if not isinstance(v, str):
            raise TypeError
        text = _FRACTION.sub(r"\1", v.strip()).replace("Z", "+00:00")
        if _DATE_ONLY.match(text):
            raise _Unfit("a date without a time")
        t = dt.datetime.fromisoformat(text)
        if typ == "DATETIME":
            return t.replace(tzinfo=None)
        return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    if typ == "DATE":
        if not isinstance(v, str):
            raise TypeError
        return dt.date.fromisoformat(v.strip())
    raise TypeError(f"unknown type {typ}")
