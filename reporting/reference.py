"""Reference data the reports need: Elexon's BM unit list and the configured VLP units.

``python run.py reference bmunits`` loads ``/reference/bmunits/all`` from the Insights API into
``bmu_reference`` (replacing the previous copy in one transaction). A unit is a **secondary BM
unit** (registered by a Virtual Lead Party) when Elexon's id starts ``V__`` (Elexon: "Secondary BM
Units (V_ Secondary BM Units)") or its ``bmUnitType`` is ``V``. Reports join these ids to P114
rows exactly, never by stripping prefixes.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import TYPE_CHECKING

import orjson
import pyarrow as pa

from core.errors import InsightsError, SourceError
from warehouse.base import Delete, Warehouse
from warehouse.schema import Column, Table

if TYPE_CHECKING:  # the HTTP client (requests) is imported only when the list is fetched: reports never need it
    from ingest.iris.api import InsightsClient

log = logging.getLogger(__name__)

BMU_REFERENCE = Table(
    "bmu_reference",
    (
        Column("elexon_bm_unit", "STRING", "the id used in settlement (P114 bm_unit_id), e.g. V__AFLEX001"),
        Column("national_grid_bm_unit", "STRING"),
        Column("eic", "STRING"),
        Column("fuel_type", "STRING"),
        Column("lead_party_name", "STRING"),
        Column("bm_unit_type", "STRING"),
        Column("fpn_flag", "BOOL"),
        Column("is_secondary", "BOOL", "a secondary (VLP/AMVLP) BM unit"),
        Column("loaded_at", "TIMESTAMP"),
    ),
    "Elexon's current BM unit list (Insights API /reference/bmunits/all)",
)
CONFIG_VLP_UNITS = Table(
    "config_vlp_units",
    (Column("bm_unit_id", "STRING", "exact settlement id"),),
    "VLP units named in the settings, in addition to the reference data (rewritten before each report run)",
)
SECONDARY_TYPES = ("V",)


def is_secondary(elexon_id: str | None, unit_type: str | None) -> bool:
    return bool(elexon_id and elexon_id.startswith("V__")) or (unit_type or "").upper() in SECONDARY_TYPES


def load_bmunits(wh: Warehouse, client: InsightsClient | None = None, body: bytes | None = None,
                 source: str | None = None) -> int:
    """Replace ``bmu_reference`` with Elexon's current BM unit list; return the number of units."""
    if body is None:
        from ingest.iris.api import InsightsClient

        client = client or InsightsClient()
        try:
            body = client.get("/reference/bmunits/all", {})  # retried like every Insights call
        except InsightsError as exc:
            raise InsightsError(f"cannot fetch Elexon's BM unit list from {client.base_url}: {exc} (offline? "
                                "python run.py reference bmunits --file FILE loads a saved response)") from None
    where = source or "/reference/bmunits/all"
    try:
        rows = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise SourceError(f"{where}: not JSON ({exc})") from None
    if isinstance(rows, dict):
        rows = rows.get("data", [])
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise SourceError(f"{where}: expected a JSON array of BM units (the /reference/bmunits/all format)")
    if not rows:  # replacing the list with nothing would make every V__ unit unknown
        raise SourceError(f"{where}: no BM units in it; the reference data was left as it was")
    for i, r in enumerate(rows, 1):
        unit = r.get("elexonBmUnit")
        if not isinstance(unit, str) or not unit.strip():
            raise SourceError(f"{where}: BM unit {i} of {len(rows)} has no elexonBmUnit (its settlement id): "
                              f"{orjson.dumps(r).decode()[:120]}; nothing loaded (is it the "
                              "/reference/bmunits/all format?)")
    now = dt.datetime.now(dt.timezone.utc)
    table = pa.Table.from_pylist([
        {
            "elexon_bm_unit": r.get("elexonBmUnit"),
            "national_grid_bm_unit": r.get("nationalGridBmUnit"),
            "eic": r.get("eic"),
            "fuel_type": r.get("fuelType"),
            "lead_party_name": r.get("leadPartyName"),
            "bm_unit_type": r.get("bmUnitType"),
            "fpn_flag": r.get("fpnFlag"),
            "is_secondary": is_secondary(r.get("elexonBmUnit"), r.get("bmUnitType")),
            "loaded_at": now,
        }
        for r in rows
    ])
    wh.ensure_tables([BMU_REFERENCE])
    wh.write({BMU_REFERENCE.name: BMU_REFERENCE.conform(table)}, deletes=[Delete(BMU_REFERENCE.name)])
    secondary = sum(1 for r in table.column("is_secondary").to_pylist() if r)
    log.info("loaded %d BM units (%d secondary) into %s", table.num_rows, secondary, BMU_REFERENCE.name)
    return table.num_rows


def sync_configured_vlp_units(wh: Warehouse, units: list[str]) -> None:
    """Make ``config_vlp_units`` hold exactly ``units`` (exact settlement ids)."""
    wh.ensure_tables([CONFIG_VLP_UNITS])
    data = pa.table({"bm_unit_id": pa.array(sorted(set(u.strip() for u in units if u.strip())), pa.string())})
    wh.write({CONFIG_VLP_UNITS.name: data}, deletes=[Delete(CONFIG_VLP_UNITS.name)])
