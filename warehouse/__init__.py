"""Warehouse layer: pick a backend from a URL and talk to it through one interface.

``duckdb:///relative/file.duckdb`` (default ``data/warehouse.duckdb``), ``duckdb:////absolute/file.duckdb``
or ``duckdb:///:memory:`` (SQLAlchemy's convention);
``bigquery://PROJECT/DATASET`` is the production backend (see :mod:`warehouse.bigquery`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from warehouse.base import Delete, Warehouse, WarehouseError

if TYPE_CHECKING:
    from warehouse.bigquery import BigQueryOptions

DEFAULT_URL = "duckdb:///data/warehouse.duckdb"

__all__ = ["DEFAULT_URL", "Delete", "Warehouse", "WarehouseError", "connect", "resolve_url"]


def resolve_url(url: str | None = None) -> str:
    """The warehouse URL to use: the argument, else ``WAREHOUSE_URL``, else the DuckDB default."""
    return url or os.environ.get("WAREHOUSE_URL") or DEFAULT_URL


def connect(url: str | None = None, bigquery: "BigQueryOptions | None" = None) -> Warehouse:
    """Open the warehouse named by ``url`` (see :func:`resolve_url`); ``bigquery`` says how to reach
    BigQuery (location, credentials, endpoint) for a ``bigquery://`` URL."""
    url = resolve_url(url)
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise WarehouseError(f"warehouse URL {url!r} has no scheme; use duckdb:///path or bigquery://PROJECT/DATASET")
    if scheme == "duckdb":
        from warehouse.duckdb import DuckDBWarehouse

        # SQLAlchemy's convention: duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb
        if not rest.startswith("/") or len(rest) < 2:
            raise WarehouseError(f"warehouse URL {url!r} should look like duckdb:///path/to/file.duckdb")
        path = rest[1:]
        return DuckDBWarehouse(path if path == ":memory:" else os.path.expanduser(path))
    if scheme == "bigquery":
        from warehouse.bigquery import BigQueryOptions, BigQueryWarehouse, parse_url

        project, dataset = parse_url(url)
        return BigQueryWarehouse(project, dataset, bigquery or BigQueryOptions())
    raise WarehouseError(f"unknown warehouse scheme {scheme!r} in {url!r}; use duckdb:// or bigquery://")

