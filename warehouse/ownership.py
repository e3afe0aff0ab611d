"""Which tables and views this project created: it never alters, writes to, replaces or drops any other.

The registry is a table of its own (``warehouse_objects``: name, kind, when). A backend asks
:class:`Registry` before it creates or alters a table or defines a view:

* not there: create it, then record it;
* recorded: ours, go on (add columns, replace the view);
* there but not recorded: someone else's, unless it is plainly one an earlier version of this
  project made before the registry existed (adopted, recorded, logged):

  - a table whose every column is one of ours with the same type, holding at least
    :data:`ADOPT_SHARE` of our columns (the user's tables in their own layouts, camelCase or a
    handful of fields, never pass);
  - a view whose definition names at least one of our recorded tables and no other table or view
    of the warehouse.

  Anything else is :class:`NotOurTable`, naming the object, what it holds, what we expected, and
  the ways out. Nothing is changed before the check.

On BigQuery the check reads metadata only (the table's schema, the view's text, the registry
through the tabledata API): it costs no query bytes.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from typing import TYPE_CHECKING, NoReturn

import pyarrow as pa

from core.errors import NotOurTable
from warehouse.schema import Column, Table

if TYPE_CHECKING:
    from warehouse.base import Warehouse

log = logging.getLogger(__name__)

REGISTRY = Table(
    "warehouse_objects",
    (Column("name", "STRING", "a table or view this project created (or adopted from an earlier version)"),
     Column("kind", "STRING", "table or view"),
     Column("recorded_at", "TIMESTAMP", "when it was recorded"),
     Column("adopted", "BOOL", "true: found from an earlier version of the project, before this registry")),
    "Tables and views this project created; it never alters, writes to, replaces or drops any other",
)
ADOPT_SHARE = 0.8
PROJECT = "elexon-pipeline"  # the BigQuery label value on every table the project creates


def ways_out(name: str) -> str:
    return (f"the project leaves {name} untouched. Give the project's tables a prefix of their own in this "
            f"dataset ([warehouse] table_prefix, WAREHOUSE_TABLE_PREFIX, e.g. \"ep_\"), or point [warehouse] url "
            f"(WAREHOUSE_URL) at another BigQuery dataset or DuckDB file (your queries can join across datasets), "
            f"and bring your history into the project's tables with python run.py import legacy (README: "
            f"\"Already have BigQuery tables?\")")


class Registry:
    """The registry of one warehouse, read once per process and kept in step with what it records."""

    def __init__(self, wh: "Warehouse"):
        self.wh = wh
        self._owned: dict[str, str] | None = None
        self._lock = threading.RLock()

    # -------------------------------------------------------------------- reading
    def owned(self) -> dict[str, str]:
        """Name → kind of every object the project owns (creating the registry on first use)."""
        with self._lock:
            if self._owned is None:
                info = self.wh.object_info(REGISTRY.name)
                if info is None:
                    self.wh.create_table(REGISTRY)
                    self._owned = {}
                else:
                    columns = self.wh.logical_columns(REGISTRY.name) or {}
                    expected = {c.name: c.type for c in REGISTRY.columns}
                    if info[0] != "table" or columns != expected:
                        raise NotOurTable(
                            f"{self.wh.physical(REGISTRY.name)} exists in {self.wh.url} but is not this project's "
                            f"registry of its tables (it has {_columns(columns)}; expected {_columns(expected)}): "
                            f"{ways_out(self.wh.physical(REGISTRY.name))}")
                    self._owned = {r["name"]: r["kind"] for r in self.wh.read_rows(REGISTRY.name)}
                self._owned[REGISTRY.name] = "table"
            return self._owned

    def _recorded(self, name: str, kind: str) -> bool:
        """Recorded as ``kind``: in this process's copy, or (another process may have just made it) in the registry."""
        if self.owned().get(name) == kind:
            return True
        with self._lock:
            self._owned = None
        return self.owned().get(name) == kind

    def foreign(self, tables: dict[str, Table | dict[str, str]]) -> list[str]:
        """Read-only (status): which of ``tables`` (name → its definition, or the marker columns of a table
        shaped by its data) exist and would be refused. Creates nothing, records nothing."""
        info = self.wh.object_info(REGISTRY.name)
        recorded = ({r["name"] for r in self.wh.read_rows(REGISTRY.name)}
                    if info and info[0] == "table" and self.wh.logical_columns(REGISTRY.name) == {
                        c.name: c.type for c in REGISTRY.columns} else set())
        found = []
        for name in sorted(set(tables) & self.wh.table_names() - recorded):
            existing, spec = self.wh.logical_columns(name) or {}, tables[name]
            if isinstance(spec, Table):
                ours = _looks_ours(existing, {c.name: c.type for c in spec.columns})
            else:
                ours = all(existing.get(c) == t for c, t in spec.items())
            if not ours:
                found.append(name)
        return found

    # -------------------------------------------------------------------- claiming
    def claim_table(self, table: Table, exists: bool) -> bool:
        """Before creating or altering ``table``: True if it must be created (record it after),
        False if it exists and is ours; raises :class:`NotOurTable` if it exists and is not."""
        self.owned()
        if not exists:
            return True
        if self._recorded(table.name, "table"):
            return False
        info = self.wh.object_info(table.name)
        existing = self.wh.logical_columns(table.name) or {}
        ours = {c.name: c.type for c in table.columns}
        if info and info[0] == "table" and _looks_ours(existing, ours):
            log.warning("adopting table %s: made by an earlier version of this project (every column is one of "
                        "ours), before it kept a registry", table.name)
            self.record([table.name], "table", adopted=True)
            return False
        self._refuse(table.name, info, existing, _columns(ours))

    def claim_existing(self, name: str, existing: dict[str, str], markers: dict[str, str], expected: str) -> None:
        """For a table whose shape follows its data (IRIS datasets): ours if recorded, or adopted if it has
        every ``markers`` column with its type (only this project writes them); else :class:`NotOurTable`."""
        if self._recorded(name, "table"):
            return
        info = self.wh.object_info(name)
        if info and info[0] == "table" and all(existing.get(c) == t for c, t in markers.items()):
            log.warning("adopting table %s: made by an earlier version of this project (it has the columns %s), "
                        "before it kept a registry", name, ", ".join(markers))
            self.record([name], "table", adopted=True)
            return
        self._refuse(name, info, existing, expected)

    def _refuse(self, name: str, info: tuple | None, existing: dict[str, str], expected: str) -> NoReturn:
        what = "a view" if info and info[0] == "view" else "a table"
        name = self.wh.physical(name)
        raise NotOurTable(f"{name} exists in {self.wh.url} as {what} this project did not create (it has "
                          f"{_columns(existing)}; the project's {name} has {expected}): {ways_out(name)}")

    def claim_view(self, name: str) -> bool:
        """Before defining view ``name``: True if it is new (record it after), False if ours; raises if not ours."""
        info = self.wh.object_info(name) if self.owned().get(name) != "view" else ("view", None)
        if info is None:
            return True
        if self._recorded(name, "view"):
            return False
        kind, definition = info
        if kind == "view" and definition:
            owned = self.owned()
            mentioned = {n for n in self.wh.table_names()
                         if n != name and re.search(rf"\b{re.escape(self.wh.physical(n))}\b", definition)}
            if mentioned and all(owned.get(n) for n in mentioned):
                log.warning("adopting view %s: made by an earlier version of this project (it reads only the "
                            "project's tables: %s)", name, ", ".join(sorted(mentioned)))
                self.record([name], "view", adopted=True)
                return False
        name = self.wh.physical(name)
        raise NotOurTable(
            f"{name} exists in {self.wh.url} as a {kind} this project did not create"
            + (" (its definition reads tables the project does not own)" if kind == "view" else "")
            + f"; the project would replace it with a view of its own: {ways_out(name)}")

    def record(self, names: list[str], kind: str, adopted: bool = False) -> None:
        if not names:
            return
        now = dt.datetime.now(dt.timezone.utc)
        rows = pa.table({"name": pa.array(names, pa.string()), "kind": pa.array([kind] * len(names), pa.string()),
                         "recorded_at": pa.array([now] * len(names), pa.timestamp("us", tz="UTC")),
                         "adopted": pa.array([adopted] * len(names), pa.bool_())})
        with self._lock:
            self.wh.write({REGISTRY.name: rows})
            self.owned().update(dict.fromkeys(names, kind))


def _looks_ours(existing: dict[str, str], ours: dict[str, str]) -> bool:
    return (bool(existing) and all(ours.get(c) == t for c, t in existing.items())
            and len(existing) >= ADOPT_SHARE * len(ours))


def _columns(columns: dict[str, str], most: int = 8) -> str:
    items = [f"{c} {t}" for c, t in columns.items()]
    return ", ".join(items[:most]) + (f" … ({len(items)} columns)" if len(items) > most else "")
