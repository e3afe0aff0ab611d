"""Warehouse layer: pick a backend from a URL and talk to it through one interface.

``duckdb:///relative/file.duckdb`` (default ``data/warehouse.duckdb``), ``duckdb:////absolute/file.duckdb``
or ``duckdb:///:memory:`` (SQLAlchemy's convention), or just the file's path (``data/w.duckdb``,
``/srv/w.duckdb``: a path ending in ``.duckdb`` or ``.db``);
``bigquery://PROJECT/DATASET`` is the production backend (see :mod:`warehouse.bigquery`).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

from core.errors import WarehouseNotFound
from warehouse.base import Delete, Warehouse, WarehouseError

if TYPE_CHECKING:
    from warehouse.bigquery import BigQueryOptions

DEFAULT_URL = "duckdb:///data/warehouse.duckdb"

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_URL", "Delete", "Warehouse", "WarehouseError", "connect"]

DUCKDB_SUFFIXES = (".duckdb", ".db")


def _warn_if_meant_absolute(url: str, path: str) -> None:
    """``duckdb:///home/me/w.duckdb`` is the RELATIVE path home/me/w.duckdb; say so when that file does
    not exist but the absolute one does."""
    if os.path.isabs(path) or os.path.exists(path) or "://" not in url:
        return
    if os.path.isfile(os.sep + path):
        log.warning("warehouse URL %s is the relative path %s (duckdb:/// + a path relative to this folder); "
                    "for %s write duckdb:///%s or just the path", url, path, os.sep + path, os.sep + path)


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
    if not sep and url.endswith(DUCKDB_SUFFIXES):  # a plain path to the file
        scheme, rest = "duckdb", "/" + url
    elif not sep:
        raise WarehouseError(f"warehouse URL {url!r} has no scheme; use a DuckDB file's path (ending .duckdb), "
                             "duckdb:///path or bigquery://PROJECT/DATASET")
    if scheme == "duckdb":
        from warehouse.duckdb import DuckDBWarehouse

        # SQLAlchemy's convention: duckdb:///relative/file.duckdb, duckdb:////absolute/file.duckdb
        if not rest.startswith("/") or len(rest) < 2:
            raise WarehouseError(f"warehouse URL {url!r} should look like duckdb:///path/to/file.duckdb")
        path = rest[1:]
        if path == ":memory:":
            return DuckDBWarehouse(path, table_prefix=table_prefix)
        path = os.path.expanduser(path)
        _warn_if_meant_absolute(url, path)
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

