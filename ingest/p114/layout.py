"""The S0142 file layout: file names, one :class:`Layout` per flow version, and the fields we load.

Sources and confidence are in ``../shared/reference/S0142.md`` (sections 1, 4.1 and 4.3) and
``S0142-VERSIONS.md``. Field positions are 1-based data positions *after* the record id, as in
that reference. Fields whose meaning is unknown are loaded losslessly as text columns
``field_NN`` so nothing in the file is thrown away.

Adding a flow version whose layout becomes known is one entry in :data:`LAYOUTS` (its widths)
plus a fixture; a version without an entry is read with :func:`layout_for`'s stable prefixes.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from core.errors import FileNameError
from core.settlement import RUN_RANK

FILE_NAME_RE = re.compile(r"^S0142_(\d{8})_([A-Z0-9]{2})_(\d{14})(?:\.gz)?$")
_STEM_RE = re.compile(r"^S0142_\d{8}_[A-Z0-9]{2}_\d{14}")


@dataclass(frozen=True)
class S0142Name:
    """What an S0142 file name says: settlement date, run and creation stamp (as printed, zone unstated)."""

    name: str
    settlement_date: dt.date
    settlement_run: str
    created_at: dt.datetime

    @classmethod
    def parse(cls, name: str) -> "S0142Name":
        m = FILE_NAME_RE.match(name)
        if not m:
            stem = _STEM_RE.match(name)
            if stem and name[stem.end():]:
                rest = name[stem.end():]
                raise FileNameError(name, f"file name has {rest!r} after the creation stamp; an S0142 file ends in .gz or "
                                          "nothing (an archive: extract it; a browser's ' (1)' copy: rename or remove it)")
            raise FileNameError(name, "file name does not parse; expected S0142_<YYYYMMDD>_<RUN>_<YYYYMMDDHHMMSS>.gz")
        date_s, run, stamp = m.groups()
        try:
            day = dt.datetime.strptime(date_s, "%Y%m%d").date()
            created = dt.datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError as exc:
            raise FileNameError(name, f"file name has an invalid date or stamp ({exc})") from None
        if run not in RUN_RANK:
            raise FileNameError(name, f"unknown settlement run {run!r} in file name")
        return cls(name, day, run, created)

    @staticmethod
    def format(settlement_date: dt.date, run: str, created_at: dt.datetime, gz: bool = True) -> str:
        return f"S0142_{settlement_date:%Y%m%d}_{run}_{created_at:%Y%m%d%H%M%S}" + (".gz" if gz else "")


# Column kinds: "str" text, "float" DOUBLE, "int" INTEGER.
@dataclass(frozen=True)
class Field:
    position: int
    name: str
    kind: str = "float"


def _unknown(*positions: int) -> list[Field]:
    return [Field(p, f"field_{p:02d}", "str") for p in positions]


SPI_FIELDS: list[Field] = [
    Field(1, "settlement_period", "int"),
    Field(2, "system_buy_price_gbp_per_mwh"),
    Field(3, "system_sell_price_gbp_per_mwh"),
    Field(4, "price_derivation_code", "str"),
    *_unknown(5, 6),
    Field(7, "total_period_absv_mwh"),
    *_unknown(8, 9, 10),
    Field(11, "total_niv_tagged_volume_mwh"),
    *_unknown(*range(12, 23)),
    Field(23, "system_total_accepted_bid_volume_mwh"),
    Field(24, "system_total_accepted_offer_volume_mwh"),
    Field(25, "system_tagged_accepted_bid_volume_mwh"),
    Field(26, "system_tagged_accepted_offer_volume_mwh"),
    Field(27, "system_repriced_accepted_bid_volume_mwh"),
    Field(28, "system_repriced_accepted_offer_volume_mwh"),
    Field(29, "system_originally_priced_accepted_bid_volume_mwh"),
    Field(30, "system_originally_priced_accepted_offer_volume_mwh"),
    Field(31, "total_system_adjustment_sell_volume_mwh"),
    Field(32, "total_system_adjustment_buy_volume_mwh"),
    Field(33, "tagged_adjustment_sell_volume_mwh"),
    Field(34, "tagged_adjustment_buy_volume_mwh"),
    Field(35, "repriced_adjustment_sell_volume_mwh"),
    Field(36, "repriced_adjustment_buy_volume_mwh"),
    Field(37, "originally_priced_adjustment_sell_volume_mwh"),
    Field(38, "originally_priced_adjustment_buy_volume_mwh"),
    Field(39, "replacement_price_gbp_per_mwh"),
    Field(40, "replacement_price_calculation_volume_mwh"),
    Field(41, "stor_availability_window_flag", "str"),
    Field(42, "loss_of_load_probability"),
    Field(43, "de_rated_margin_mw"),
    Field(44, "value_of_lost_load_gbp_per_mwh"),
    Field(45, "reserve_scarcity_price_gbp_per_mwh"),
    *_unknown(*range(46, 53)),
    Field(53, "supplier_sourcing_cost_gbp_per_mwh"),
]

BPI_FIELDS: list[Field] = [
    Field(1, "bm_unit_id", "str"),
    Field(2, "trading_unit", "str"),
    Field(3, "fpn_mwh"),
    Field(4, "metered_volume_mwh"),
    Field(5, "transmission_loss_multiplier"),
    Field(6, "absvd_mwh"),
]

BP7_FIELDS: list[Field] = [
    Field(1, "bm_unit_id", "str"),
    Field(2, "information_imbalance_cashflow_gbp"),
    Field(3, "non_delivery_charge_gbp"),
    Field(4, "fpn_mwh"),
    Field(5, "balancing_services_volume_mwh"),
    Field(6, "information_imbalance_volume_mwh"),
    Field(7, "expected_metered_volume_mwh"),
    Field(8, "metered_volume_mwh"),
    Field(9, "non_delivered_bid_volume_mwh"),
    Field(10, "non_delivered_offer_volume_mwh"),
    Field(11, "transmission_loss_factor"),
    Field(12, "transmission_loss_multiplier"),
    Field(13, "trading_unit", "str"),
    Field(14, "trading_unit_metered_volume_mwh"),
    Field(15, "absvd_mwh"),
    Field(16, "supplier_delivered_volume_mwh"),
    Field(17, "supplier_non_bm_absvd_volume_mwh"),
    *_unknown(18, 19, 20, 21),
    Field(22, "supplier_compensation_volume_mwh"),
    Field(23, "secondary_bm_unit_compensation_volume_mwh"),
    *_unknown(24),
    Field(25, "supplier_compensation_cashflow_gbp"),
    *_unknown(26, 27),  # P444 fields of flow version 014; NULL in 013 files
]

BO4_FIELDS: list[Field] = [
    Field(1, "bid_offer_pair_number", "int"),
    Field(2, "bid_price_gbp_per_mwh"),
    Field(3, "offer_price_gbp_per_mwh"),
    Field(4, "accepted_bid_volume_mwh"),
    Field(5, "accepted_offer_volume_mwh"),
    Field(6, "priced_accepted_bid_volume_mwh"),
    Field(7, "priced_accepted_offer_volume_mwh"),
    Field(8, "tagged_bid_volume_mwh"),
    Field(9, "tagged_offer_volume_mwh"),
    Field(10, "repriced_bid_volume_mwh"),
    Field(11, "repriced_offer_volume_mwh"),
    Field(12, "originally_priced_bid_volume_mwh"),
    Field(13, "originally_priced_offer_volume_mwh"),
    Field(14, "bid_cashflow_gbp"),
    Field(15, "offer_cashflow_gbp"),
]

#: BO3 fields 3-6 are T/F flags whose order the reference could not confirm (S0141 v8 lists CADL, SO,
#: STOR provider, RSP; BMRS-style would be deemed, SO, STOR, RR): kept as printed, by position.
BO3_FIELDS: list[Field] = [
    Field(1, "acceptance_number", "int"),
    Field(2, "acceptance_time", "datetime"),
    Field(3, "flag_3", "str"),
    Field(4, "flag_4", "str"),
    Field(5, "flag_5", "str"),
    Field(6, "flag_6", "str"),
]

APC_FIELDS: list[Field] = [
    Field(1, "bssc_limited_cost_allocation_gbp"),
    Field(2, "bm_unit_cashflow_gbp"),
    Field(3, "energy_imbalance_cashflow_gbp"),
    Field(4, "information_imbalance_charge_gbp"),
    Field(5, "non_delivery_charge_gbp"),
    Field(6, "residual_cashflow_reallocation_gbp"),
    *_unknown(7, 8, 9, 10),
    Field(11, "vlp_compensation_cashflow_gbp"),
    Field(12, "supplier_compensation_cashflow_gbp"),
    *_unknown(13),  # P444 field of flow version 014
]

#: Record types loaded into tables, with their fields.
LOADED_FIELDS: dict[str, list[Field]] = {
    "SPI": SPI_FIELDS,
    "BPI": BPI_FIELDS,
    "BP7": BP7_FIELDS,
    "BO4": BO4_FIELDS,
    "BO3": BO3_FIELDS,
    "APC": APC_FIELDS,
}


# Record widths (number of fields including the record id, excluding the trailing pipe) of flow
# version S0142013 as measured in real 2026 files (reference 4.1).
WIDTHS_013: dict[str, int] = {
    "AAA": 10, "SRH": 9, "SPI": 54, "MD1": 5, "DB1": 14, "TRA": 3, "BPI": 7, "BPH": 9, "APC": 13,
    "SP7": 2, "SSD": 80, "MD2": 5, "DB2": 14, "PPC": 11, "APD": 15, "APB": 5, "BP7": 26, "MVR": 6,
    "MEL": 5, "MIL": 5, "RUE": 6, "RUI": 6, "RDE": 6, "RDI": 6, "BO4": 16, "BO3": 9, "BO6": 5,
    "BO7": 4, "ZZZ": 3,
}

#: Leading data fields that the reference shows unchanged from v008 to v013 (S0142-VERSIONS §8.3).
#: An unknown flow version is read only this far; the rest of each record goes to ``extra_fields``.
STABLE_PREFIX: dict[str, int] = {
    "AAA": 9, "SRH": 8, "BPH": 8, "SP7": 1, "BP7": 17, "APD": 10, "APC": 7, "BO4": 15, "ZZZ": 2, "SPI": 4,
}


@dataclass(frozen=True)
class Layout:
    """How one flow version is read.

    ``widths``: every record type's width (known layouts; a record of another width is an error)
    or, for an unknown version, the least width its stable prefix needs. ``read`` says how many
    data fields of each loaded record type become columns; cells after them are kept, in order,
    in ``extra_fields`` when the layout is unknown.
    """

    version: str
    widths: dict[str, int]
    known: bool = True

    @property
    def name(self) -> str:
        """What the manifest and ``status`` show: the version, or ``unknown:<version>``."""
        return self.version if self.known else f"unknown:{self.version}"

    def loaded(self) -> dict[str, list[Field]]:
        """Record types this layout loads, with their table's fields."""
        return {rec: fields for rec, fields in LOADED_FIELDS.items() if self.known or rec in STABLE_PREFIX}

    def read(self, rec: str, width: int) -> int:
        """Data fields of a ``rec`` record ``width`` wide that are read into typed columns."""
        return width - 1 if self.known else min(STABLE_PREFIX[rec], width - 1)


#: Every flow version whose full layout is known. v014 (IDD v43.0): v013 plus two P444 fields in
#: BP7 and one in APC (reference 1, 4.3).
LAYOUTS: dict[str, Layout] = {
    "013": Layout("013", WIDTHS_013),
    "014": Layout("014", {**WIDTHS_013, "BP7": 28, "APC": 14}),
}


def layout_for(flow_version: str) -> Layout:
    """The layout of ``flow_version``; an unknown version gets the stable prefixes, never a newer
    layout (fields were inserted mid-record between versions, so widths alone prove nothing)."""
    if flow_version in LAYOUTS:
        return LAYOUTS[flow_version]
    return Layout(flow_version, {rec: n + 1 for rec, n in STABLE_PREFIX.items()}, known=False)


#: Flow versions whose layout carries P415 (BP7 23 secondary compensation volume, SPI 53 supplier
#: sourcing cost): compensation is computed for these and NULL for every other version.
P415_VERSIONS: tuple[str, ...] = tuple(sorted(
    v for v, layout in LAYOUTS.items()
    if layout.known and layout.widths.get("BP7", 0) > 23 and layout.widths.get("SPI", 0) > 53))
