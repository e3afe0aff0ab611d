"""The assets: the BM units a user reports on (their batteries, VLP units, sites), exact ids.

Three sources, one view (``assets``), first match wins per id:

1. ``python run.py assets import FILE.csv`` — the list the user keeps (replaces the previous import
   in one transaction; a file with any bad row loads nothing and names every bad line);
2. ``[[reporting.assets]]`` and ``[reporting] vlp_units`` in the settings (rewritten before each report);
3. Elexon's reference data: every secondary (VLP) BM unit in ``bmu_reference``.

Ids are joined to settlement data exactly. Ids that look related but are not listed (a ``V__``
unit in the settlement data, an asset id that only matches with a prefix added) are reported as
warnings, never guessed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

import pyarrow as pa

from core.assets import Asset, check_columns, column_key, parse_asset
from core.errors import AssetFileError, InputFileError
from ingest.p114.tables import MANIFEST
from reporting.reference import BMU_REFERENCE, CONFIG_VLP_UNITS, sync_configured_vlp_units
from warehouse.base import Delete, Warehouse
from warehouse.schema import Column, Table
from warehouse.sqltemplates import render

ASSET_LIST = Table(
    "asset_list",
    (
        Column("bm_unit_id", "STRING", "exact settlement id, e.g. 2__FBPGM002"),
        Column("name", "STRING"),
        Column("kind", "STRING", "battery, vlp, demand_side, generator, wind, solar, pumped_storage, interconnector, other"),
        Column("power_mw", "FLOAT64", "rated power (MW), NULL when unknown"),
        Column("energy_mwh", "FLOAT64", "usable energy capacity (MWh), NULL when unknown"),
        Column("lead_party", "STRING"),
        Column("notes", "STRING"),
        Column("source", "STRING", "csv (assets import) or settings ([[reporting.assets]])"),
        Column("source_file", "STRING", "the CSV imported, for source csv"),
        Column("loaded_at", "TIMESTAMP"),
    ),
    "Assets listed by the user (CSV import and settings); the assets view adds reference data",
)
MAX_ERRORS = 20


def _table(assets: list[Asset], source: str, source_file: str | None) -> pa.Table:
    now = dt.datetime.now(dt.timezone.utc)
    rows = [{**a.__dict__, "source": source, "source_file": source_file, "loaded_at": now} for a in assets]
    return ASSET_LIST.conform(pa.Table.from_pylist(rows, schema=ASSET_LIST.arrow_schema()))


def ensure_assets_schema(wh: Warehouse, settings_assets: list[Asset] | None = None,
                         vlp_units: list[str] | None = None) -> None:
    """The tables and the ``assets`` view; rewrites the settings' assets and VLP units when given."""
    wh.ensure_tables([ASSET_LIST, BMU_REFERENCE, CONFIG_VLP_UNITS])
    if settings_assets is not None:
        wh.write({ASSET_LIST.name: _table(settings_assets, "settings", None)},
                 deletes=[Delete(ASSET_LIST.name, "source", "settings")])
    if vlp_units is not None:
        sync_configured_vlp_units(wh, vlp_units)
    wh.define_view("assets", render("views/assets.sql.j2", wh))


def read_asset_csv(path: str | Path) -> list[Asset]:
    """The assets of a CSV file, or :class:`AssetFileError` naming every bad line and column."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such file")
    try:
        text = path.read_bytes().decode("utf-8-sig")  # spreadsheets save a byte-order mark
    except UnicodeDecodeError as exc:
        raise AssetFileError(f"{path}: not UTF-8 text (byte {exc.start}); save the sheet as CSV UTF-8") from None
    reader = csv.DictReader(io.StringIO(text))
    header = [column_key(c) for c in reader.fieldnames or []]
    first = text.partition("\n")[0]
    if len(header) == 1 and (sep := next((s for s in ";\t|" if s in first), None)):
        raise AssetFileError(f"{path} line 1: the columns are separated by {sep!r}, not commas: save the sheet as "
                             "CSV (comma delimited)")
    problems = check_columns(header)
    if problems:
        raise AssetFileError(f"{path} line 1: {'; '.join(problems)}")
    reader.fieldnames = header
    assets, errors, seen = [], [], {}
    for row in reader:
        line = reader.line_num
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue  # a blank line
        if None in row:
            errors.append(f"line {line}: more cells than the header's {len(header)} columns")
            continue
        asset, row_problems = parse_asset(row)
        if asset and asset.bm_unit_id in seen:
            row_problems.append(f"bm_unit_id {asset.bm_unit_id!r} is already on line {seen[asset.bm_unit_id]}")
        if row_problems:
            errors.append(f"line {line}: {'; '.join(row_problems)}")
            continue
        seen[asset.bm_unit_id] = line
        assets.append(asset)
    if errors:
        more = f" (and {len(errors) - MAX_ERRORS} more)" if len(errors) > MAX_ERRORS else ""
        raise AssetFileError(f"{path}: {len(errors)} bad row(s), nothing imported: "
                             + " · ".join(errors[:MAX_ERRORS]) + more)
    if not assets:
        raise AssetFileError(f"{path}: no assets (a header and one row per BM unit: bm_unit_id,name,kind,power_mw,"
                             "energy_mwh)")
    return assets


def import_assets(wh: Warehouse, path: str | Path) -> int:
    """Replace the previously imported assets with those of the CSV at ``path`` (all or nothing)."""
    assets = read_asset_csv(path)
    wh.ensure_tables([ASSET_LIST])
    wh.write({ASSET_LIST.name: _table(assets, "csv", Path(path).name)}, deletes=[Delete(ASSET_LIST.name, "source", "csv")])
    return len(assets)


def list_assets(wh: Warehouse, settings_assets: list[Asset] | None = None,
                vlp_units: list[str] | None = None) -> pa.Table:
    """Every asset and its source, after writing the settings' assets and VLP units when given."""
    ensure_assets_schema(wh, settings_assets, vlp_units)
    return wh.query(render("reports/assets_list.sql.j2", wh))


def import_warnings(wh: Warehouse, settings_assets: list[Asset] | None = None,
                    vlp_units: list[str] | None = None) -> list[str]:
    """Said right after an import, against every settlement date loaded: listed ids the settlement
    data does not have (with the id probably meant) and batteries without energy capacity. Nothing
    when no S0142 file is loaded yet."""
    if MANIFEST.name not in wh.table_names():
        return []
    span = wh.query_rows(f"SELECT MIN(settlement_date) AS low, MAX(settlement_date) AS high "
                         f"FROM {wh.ref(MANIFEST.name)}")[0]
    if span["low"] is None:
        return []
    ensure_assets_schema(wh, settings_assets, vlp_units)
    return asset_warnings(wh, span["low"], span["high"],
                          problems={"not in settlement data", "battery without energy capacity"})


def asset_warnings(wh: Warehouse, date_from: dt.date, date_to: dt.date, problems: set[str] | None = None) -> list[str]:
    """Ids that look related but do not join: listed assets absent from the settlement data (with the
    id they probably meant), V__ units in the data that are not assets, batteries with no capacity
    (``problems``: only these kinds)."""
    rows = wh.query_rows(render("reports/assets_check.sql.j2", wh), {"date_from": date_from, "date_to": date_to})
    by_kind: dict[str, list[dict]] = {}
    for r in rows:
        if problems is None or r["problem"] in problems:
            by_kind.setdefault(r["problem"], []).append(r)

    def ids(items: list[dict], with_hint: bool = False) -> str:
        shown = [r["bm_unit_id"] + (f" (did you mean {r['hint']}?)" if with_hint and r["hint"] else "") for r in items[:10]]
        return ", ".join(shown) + (f" and {len(items) - 10} more" if len(items) > 10 else "")

    warnings = []
    if missing := by_kind.get("not in settlement data"):
        warnings.append(f"{len(missing)} asset(s) have no settlement data from {date_from} to {date_to} (ids join "
                        f"exactly): {ids(missing, with_hint=True)}")
    if unlisted := by_kind.get("unlisted secondary unit"):
        warnings.append(f"{len(unlisted)} V__ unit(s) in the settlement data are not assets and are left out "
                        f"(import them, or load reference data: python run.py reference bmunits): {ids(unlisted)}")
    if no_capacity := by_kind.get("battery without energy capacity"):
        warnings.append(f"{len(no_capacity)} battery asset(s) have no energy_mwh, so no full cycles: {ids(no_capacity)}")
    return warnings
