"""Warehouse layer: pick a backend from a URL and talk to it through one interface.

``duckdb:///relative/file.duckdb`` (default ``data/warehouse.duckdb``), ``duckdb:////absolute/file.duckdb``
or ``duckdb:///:memory:`` (SQLAlchemy's convention);
``bigquery://PROJECT/DATASET`` is the production backend (see :mod:`warehouse.bigquery`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from core.errors import WarehouseNotFound
from warehouse.base import Delete, Warehouse, WarehouseError

if TYPE_CHECKING:
    from warehouse.bigquery import BigQueryOptions

DEFAULT_URL = "duckdb:///data/warehouse.duckdb"

__all__ = ["DEFAULT_URL", "Delete", "Warehouse", "WarehouseError", "connect"]


def _demo_hint(path: str) -> str:
    demo = os.path.join("data", "demo", "warehouse.duckdb")
    if os.path.exists(demo) and os.path.abspath(path) != os.path.abspath(demo):
        return f" (the demo's data is in duckdb:///{demo})"
    return ""


def connect(url: str | None = None, bigquery: "BigQueryOptions | None" = None, *, create: bool = True,
            table_prefix: str = "") -> Warehouse:
    """Open the warehouse named by ``url`` (default :data:`DEFAULT_URL`); ``bigquery`` says how to reach
    BigQuery (location, credentials, endpoint) for a ``bigquery://`` URL. With ``create=False`` a
    DuckDB file that does not exist is an error (:class:`WarehouseNotFound`), not a new empty warehouse.
    ``table_prefix`` names the project's tables prefix + name ([warehouse] table_prefix)."""
    url = url or DEFAULT_URL
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise WarehouseError(f"warehouse URL {url!r} has no scheme; use duckdb:///path or bigquery://PROJECT/DATASET")
    if scheme == "duckdb":
        from warehouse.duckdb import DuckDBWarehouse

        # SQLAlchemy's convention: duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb
        if not rest.startswith("/") or len(rest) < 2:
            raise WarehouseError(f"warehouse URL {url!r} should look like duckdb:///path/to/file.duckdb")
        path = rest[1:]
        if path == ":memory:":
            return DuckDBWarehouse(path, table_prefix=table_prefix)
        path = os.path.expanduser(path)
        if not create and not os.path.exists(path):
            raise WarehouseNotFound(
                f"no warehouse at {path}: this command only reads, and only loading commands (demo, load, "
                f"ingest, backfill) create a DuckDB file; check the path, or point --warehouse (WAREHOUSE_URL, "
                f"[warehouse] url) at your warehouse" + _demo_hint(path))
        return DuckDBWarehouse(path, table_prefix=table_prefix)
    if scheme == "bigquery":
        from warehouse.bigquery import BigQueryOptions, BigQueryWarehouse, parse_url

        project, dataset = parse_url(url)
        return BigQueryWarehouse(project, dataset, bigquery or BigQueryOptions(), table_prefix=table_prefix)
    raise WarehouseError(f"unknown warehouse scheme {scheme!r} in {url!r}; use duckdb:// or bigquery://")

