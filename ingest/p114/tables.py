"""P114 warehouse tables and views: names, columns and the SQL that defines the canonical views."""

from __future__ import annotations

from ingest.p114.layout import APC_FIELDS, BO3_FIELDS, BO4_FIELDS, BP7_FIELDS, BPI_FIELDS, SPI_FIELDS, Field
from warehouse.base import Warehouse
from warehouse.schema import Column, Table
from warehouse.sqltemplates import render

_KIND = {"str": "STRING", "float": "FLOAT64", "int": "INT64", "datetime": "DATETIME"}

_IDENT = (
    Column("settlement_date", "DATE", "settlement day (Europe/London)"),
    Column("settlement_period", "INT64", "1..46/48/50, half hours from local midnight"),
    Column("settlement_run", "STRING", "II, SF, R1, R2, R3, RF or DF"),
    Column("file_created_at", "DATETIME", "creation stamp of the file, as printed (zone not stated)"),
)
_SOURCE = (
    Column("flow_version", "STRING", "S0142 flow version of the file (AAA field 1), e.g. 013"),
    Column("source_file", "STRING", "S0142 file the row came from"),
    Column("source_line", "INT64", "1-based line of the record in that file"),
)


def _columns(fields: list[Field], skip: tuple[str, ...] = ()) -> tuple[Column, ...]:
    return tuple(Column(f.name, _KIND[f.kind]) for f in fields if f.name not in skip)


_EXTRA = Column(
    "extra_fields", "JSON",
    "files of a flow version without a known layout: the record's cells after the stable prefix, in order "
    "(JSON array of strings, blank = null); NULL for known layouts",
)


def _p114_table(name: str, middle: tuple[Column, ...], description: str, ident=_IDENT, extra: bool = True) -> Table:
    return Table(
        name,
        ident + middle + ((_EXTRA,) if extra else ()) + _SOURCE,
        description,
        partition_by="settlement_date",
        cluster_by=("bm_unit_id", "settlement_run") if any(c.name == "bm_unit_id" for c in middle) else ("settlement_run",),
    )


_KEYED = ("settlement_period", "bm_unit_id")
_UNIT = Column("bm_unit_id", "STRING", "BM unit id exactly as in the file (prefix kept)")
_PARTY = Column("lead_party_id", "STRING", "BSC party of the enclosing BPH record")

BPI = _p114_table(
    "elexon_p114_s0142_bpi", (_UNIT,) + _columns(BPI_FIELDS, _KEYED),
    "S0142 BPI: system-level BM unit period information, one row per unit per period per file "
    "(flow versions with a known layout only)",
    extra=False,
)
SPI = _p114_table(
    "elexon_p114_s0142_spi", _columns(SPI_FIELDS, _KEYED),
    "S0142 SPI: system prices and volumes, one row per period per file",
)
BP7 = _p114_table(
    "elexon_p114_s0142_bp7", (_PARTY, _UNIT) + _columns(BP7_FIELDS, _KEYED),
    "S0142 BP7: BM unit period data under its lead party, all fields",
)
BO4 = _p114_table(
    "elexon_p114_s0142_bo4", (_PARTY, _UNIT) + _columns(BO4_FIELDS),
    "S0142 BO4: bid-offer pair cashflows under the enclosing BP7",
)
BO3 = _p114_table(
    "elexon_p114_s0142_bo3", (_PARTY, _UNIT) + _columns(BO3_FIELDS),
    "S0142 BO3: bid-offer acceptances under the enclosing BP7 (acceptance time as printed, zone not stated; "
    "flags 3-6 as printed, their order unconfirmed); flow versions with a known layout only",
    extra=False,
)
APC = _p114_table(
    "elexon_p114_s0142_apc", (_PARTY,) + _columns(APC_FIELDS),
    "S0142 APC: daily charges per BSC party",
    ident=tuple(c for c in _IDENT if c.name != "settlement_period"),
)

MANIFEST = Table(
    "p114_file_manifest",
    (
        Column("file_name", "STRING"),
        Column("settlement_date", "DATE"),
        Column("settlement_run", "STRING"),
        Column("file_created_at", "DATETIME"),
        Column("flow_version", "STRING", "3-digit S0142 flow version from AAA"),
        Column("layout", "STRING", "layout the file was read with: its version, or unknown:<version> "
                                   "(stable prefixes only, the rest in extra_fields)"),
        Column("sha256", "STRING", "of the file as received (compressed bytes)"),
        Column("size_bytes", "INT64"),
        Column("periods", "INT64", "settlement periods in the day"),
        Column("records", "INT64", "records in the file, AAA and ZZZ included"),
        Column("record_counts", "JSON", "records per record type, loaded or not"),
        Column("rows_loaded", "JSON", "rows written per table"),
        Column("source", "STRING", "where the file came from (path or portal)"),
        Column("parse_seconds", "FLOAT64"),
        Column("loaded_at", "TIMESTAMP"),
    ),
    "One row per S0142 file loaded; a file is loaded in the same transaction as its manifest row",
    partition_by="settlement_date",
)

LOAD_ERRORS = Table(
    "p114_load_errors",
    (
        Column("file_name", "STRING"),
        Column("line", "INT64"),
        Column("field", "STRING"),
        Column("error", "STRING"),
        Column("source", "STRING"),
        Column("failed_at", "TIMESTAMP"),
    ),
    "Every failed attempt to load an S0142 file, with the line and field at fault",
)

PORTAL_LISTING = Table(
    "p114_portal_listing",
    (
        Column("publication_date", "DATE"),
        Column("file_name", "STRING"),
        Column("listed_at", "TIMESTAMP"),
    ),
    "S0142 files the Elexon Portal listed per publication date (cache for resumable backfills)",
)
PORTAL_LISTED_DATES = Table(
    "p114_portal_listed_dates",
    (Column("publication_date", "DATE"), Column("files", "INT64"), Column("listed_at", "TIMESTAMP")),
    "Publication dates whose Portal listing is cached in p114_portal_listing",
)

#: Parser table key → warehouse table.
DATA_TABLES: dict[str, Table] = {"bpi": BPI, "spi": SPI, "bp7": BP7, "bo4": BO4, "bo3": BO3, "apc": APC}
ALL_TABLES = (*DATA_TABLES.values(), MANIFEST, LOAD_ERRORS, PORTAL_LISTING, PORTAL_LISTED_DATES)

#: Canonical (best run) views over each data table.
CANONICAL_VIEWS: dict[str, str] = {
    "p114_settlement_canonical": BPI.name,
    "p114_system_prices_canonical": SPI.name,
    "p114_bp7_canonical": BP7.name,
    "p114_bo4_canonical": BO4.name,
    "p114_bo3_canonical": BO3.name,
    "p114_apc_canonical": APC.name,
}


def ensure_p114_schema(wh: Warehouse) -> None:
    """Create the P114 tables (adding any new columns) and (re)define the canonical views."""
    wh.ensure_tables(ALL_TABLES)
    wh.define_view("p114_canonical_files", render("views/p114_canonical_files.sql.j2", wh))
    for view, source in CANONICAL_VIEWS.items():
        wh.define_view(view, render("views/p114_canonical.sql.j2", wh, view=view, source=source))
