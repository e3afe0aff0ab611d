"""What we know about each Elexon dataset that IRIS carries: fields, types, natural key, API.

Field names and types are the Insights API's OpenAPI row schemas (IRIS carries the same row
objects; ``../shared/reference/IRIS.md`` section 2.5). Columns are the snake_case of the Elexon
names. Each dataset has one **natural key**: the same row arriving twice (a redelivered message,
or the same row from IRIS and from the API) is stored once, while distinct readings never
collapse (FUELINST keeps one row per fuel type per 5 minutes and per publication).

Each dataset also says what a key arriving again **with different values** means (``mode``):

* ``immutable``: a measurement or publication that is never restated (FREQ, FUELINST, the
  indicated forecasts, MELS/MILS submissions, whose key carries their own sequence): the first
  copy stands, a repeat is a duplicate;
* ``latest``: Elexon re-sends corrections under the same key (DISBSAD costs, BOALF amendments,
  re-submitted PN/BOD, MID restatements, the settlement datasets re-issued after each run): the
  newer version replaces the stored row and the replaced one moves to ``<table>_history`` with the
  message that replaced it. "Newer" is decided by the row's own publication time where the dataset
  has one (``version``), else by the message's time (Service Bus enqueued time, the file's arrival
  time, the API fetch time), so an older message arriving late never overwrites a newer one;
* ``versioned``: every revision is a row of its own (REMIT: the key includes ``revision_number``)
  and the view ``<table>_latest`` shows the newest revision per ``latest_by``.

Datasets and fields not listed here are still loaded: their types are inferred from the values
(see :func:`infer_type`), a new dataset gets its own table and a new field a new column.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

# Elexon schema type → warehouse logical type
_T = {"str": "STRING", "int": "INT64", "float": "FLOAT64", "bool": "BOOL", "date": "DATE", "dt": "TIMESTAMP",
      "json": "JSON"}


def snake(name: str) -> str:
    """Elexon camelCase → snake_case: ``nationalGridBmUnit`` → ``national_grid_bm_unit``."""
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z\d])([A-Z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-zA-Z_]", "_", name).lower()


@dataclass(frozen=True)
class ApiSpec:
    """How the Insights API serves the dataset for gap filling.

    Either a time-range endpoint (``from_param``/``to_param``), or a path per settlement date
    (``{date}``, and ``{side}`` / ``{period}`` where the endpoint takes them): the settlement
    datasets answer one day (or one period) and one side per call, and their rows do not say
    which side they are, so the side asked for is added to each row as ``side``.
    """

    path: str  # e.g. /datasets/FREQ/stream (a bare JSON array) or /datasets/X ({"data": [...]})
    from_param: str = ""
    to_param: str = ""
    chunk: dt.timedelta = dt.timedelta(days=1)  # the dataset's range limit: one request never spans more
    limit_source: str = "one settlement date per call (path parameter)"
    sides: tuple[str, ...] = ()  # path {side} values, e.g. ("bid", "offer")

    @property
    def per_date(self) -> bool:
        return "{date}" in self.path


IMMUTABLE, LATEST, VERSIONED = "immutable", "latest", "versioned"
MESSAGE_TIME = "_message_time"  # bookkeeping column: when the message carrying the row was published


@dataclass(frozen=True)
class DatasetSpec:
    code: str
    fields: dict[str, str]  # Elexon field name → logical type
    key: tuple[str, ...]  # natural key, as column names; every key field is required
    event_time: str  # column that dates a row (partitioning, pruning, freshness)
    cadence: dt.timedelta | None = None  # expected spacing of event_time, where regular
    api: ApiSpec | None = None
    notes: str = ""
    mode: str = IMMUTABLE  # immutable | latest | versioned (module docstring)
    version: str | None = None  # column ordering versions of a row; default: the message's time
    latest_by: tuple[str, ...] = ()  # versioned: the key without the revision
    side_from: str | None = None  # a row without ``side``: "offer" when this column is >= 0, else "bid"
    pairs: tuple[str, str] | None = None  # (JSON map column, value name): view <table>_pairs, one row per pair

    @property
    def table(self) -> str:
        return table_name(self.code)

    @property
    def history_table(self) -> str:
        return self.table + "_history"

    @property
    def version_column(self) -> str:
        return self.version or MESSAGE_TIME

    @property
    def columns(self) -> dict[str, str]:
        return {snake(k): _T[v] for k, v in self.fields.items()}


def table_name(dataset: str) -> str:
    return "bmrs_" + re.sub(r"[^0-9a-z_]", "_", dataset.lower())


class DatasetTables(dict):
    """``tables.FREQ`` in SQL templates: the table of a dataset, or '' when it is not in the map."""

    def __getattr__(self, code: str) -> str:
        return self.get(code, "")


_STREAM = "/datasets/{}/stream"
_DAY, _HOUR = dt.timedelta(days=1), dt.timedelta(hours=1)


def _api(code: str, from_param: str, to_param: str, chunk: dt.timedelta, source: str) -> ApiSpec:
    return ApiSpec(_STREAM.format(code), from_param, to_param, chunk, source)


_PHYSICAL = {
    "dataset": "str", "settlementDate": "date", "settlementPeriod": "int", "timeFrom": "dt", "timeTo": "dt",
    "levelFrom": "int", "levelTo": "int", "nationalGridBmUnit": "str", "bmUnit": "str",
}
_LIMITS = {**_PHYSICAL, "notificationTime": "dt", "notificationSequence": "int"}
_INDICATED = {"dataset": "str", "publishTime": "dt", "startTime": "dt", "settlementDate": "date",
              "settlementPeriod": "int", "boundary": "str"}

_SIDES = ("bid", "offer")
_SETTLEMENT = {"dataset": "str", "createdDateTime": "dt", "settlementDate": "date", "settlementPeriod": "int",
               "startTime": "dt", "bmUnit": "str", "bmUnitType": "str", "leadPartyName": "str",
               "nationalGridBmUnit": "str"}

SPECS: dict[str, DatasetSpec] = {
    s.code: s
    for s in [
        DatasetSpec(
            "BOALF",
            {"dataset": "str", "settlementDate": "date", "settlementPeriodFrom": "int", "settlementPeriodTo": "int",
             "timeFrom": "dt", "timeTo": "dt", "levelFrom": "int", "levelTo": "int", "acceptanceNumber": "int",
             "acceptanceTime": "dt", "deemedBoFlag": "bool", "soFlag": "bool", "amendmentFlag": "str",
             "storFlag": "bool", "rrFlag": "bool", "nationalGridBmUnit": "str", "bmUnit": "str"},
            key=("bm_unit", "acceptance_number", "time_from"),
            event_time="time_from",
            api=_api("BOALF", "from", "to", _DAY, "1 day (observed)"),
            mode=LATEST,
            notes="amendments (amendmentFlag AMD) re-send an acceptance's rows: the latest message wins",
        ),
        DatasetSpec("MELS", _LIMITS, key=("bm_unit", "notification_sequence", "notification_time", "time_from", "time_to"),
                    event_time="time_from", api=_api("MELS", "from", "to", _HOUR, "1 hour (observed)"),
                    notes="IRIS carries raw submissions; the API returns the resolved position (see README)"),
        DatasetSpec("MILS", _LIMITS, key=("bm_unit", "notification_sequence", "notification_time", "time_from", "time_to"),
                    event_time="time_from", api=_api("MILS", "from", "to", _HOUR, "1 hour (observed)"),
                    notes="IRIS carries raw submissions; the API returns the resolved position (see README)"),
        DatasetSpec("PN", _PHYSICAL, key=("bm_unit", "settlement_date", "settlement_period", "time_from", "time_to"),
                    event_time="time_from", api=_api("PN", "from", "to", _HOUR, "1 hour (conservative)"), mode=LATEST),
        DatasetSpec("QPN", _PHYSICAL, key=("bm_unit", "settlement_date", "settlement_period", "time_from", "time_to"),
                    event_time="time_from", api=_api("QPN", "from", "to", _HOUR, "1 hour (conservative)"), mode=LATEST),
        DatasetSpec(
            "BOD",
            {**_PHYSICAL, "pairId": "int", "offer": "float", "bid": "float"},
            key=("bm_unit", "settlement_date", "settlement_period", "pair_id", "time_from"),
            event_time="time_from",
            api=_api("BOD", "from", "to", _HOUR, "1 hour (observed)"),
            mode=LATEST,
        ),
        DatasetSpec("FREQ", {"dataset": "str", "measurementTime": "dt", "frequency": "float"},
                    key=("measurement_time",), event_time="measurement_time", cadence=dt.timedelta(seconds=15),
                    api=_api("FREQ", "measurementDateTimeFrom", "measurementDateTimeTo", _DAY, "24 hours (documented)")),
        DatasetSpec(
            "FUELINST",
            {"dataset": "str", "publishTime": "dt", "startTime": "dt", "settlementDate": "date",
             "settlementPeriod": "int", "fuelType": "str", "generation": "int"},
            key=("start_time", "fuel_type", "publish_time"),
            event_time="start_time",
            cadence=dt.timedelta(minutes=5),
            api=_api("FUELINST", "publishDateTimeFrom", "publishDateTimeTo", _DAY, "1 day (conservative)"),
        ),
        *[
            DatasetSpec(code, {**_INDICATED, value: "int"},
                        key=("publish_time", "boundary", "settlement_date", "settlement_period"),
                        event_time="start_time", cadence=dt.timedelta(minutes=30),
                        api=_api(code, "publishDateTimeFrom", "publishDateTimeTo", _DAY, "1 day (documented)"))
            for code, value in (("INDGEN", "generation"), ("INDDEM", "demand"), ("IMBALNGC", "imbalance"),
                                ("MELNGC", "margin"))
        ],
        DatasetSpec(
            "DISBSAD",
            {"dataset": "str", "settlementDate": "date", "settlementPeriod": "int", "id": "int", "cost": "float",
             "volume": "float", "soFlag": "bool", "storFlag": "bool", "partyId": "str", "assetId": "str",
             "isTendered": "bool", "service": "str"},
            key=("settlement_date", "settlement_period", "id"),
            event_time="settlement_date",
            api=_api("DISBSAD", "from", "to", _DAY, "1 day (observed)"),
            mode=LATEST,
            notes="costs are corrected by re-sending the action under its id",
        ),
        DatasetSpec(
            "MID",
            {"dataset": "str", "startTime": "dt", "dataProvider": "str", "settlementDate": "date",
             "settlementPeriod": "int", "price": "float", "volume": "float"},
            key=("settlement_date", "settlement_period", "data_provider"),
            event_time="start_time",
            cadence=dt.timedelta(minutes=30),
            api=_api("MID", "from", "to", dt.timedelta(days=7), "7 days (observed)"),
            mode=LATEST,
        ),
        DatasetSpec(
            "DISEBSP",
            {"dataset": "str", "settlementDate": "date", "settlementPeriod": "int", "startTime": "dt",
             "createdDateTime": "dt", "systemSellPrice": "float", "systemBuyPrice": "float", "bsadDefaulted": "bool",
             "priceDerivationCode": "str", "reserveScarcityPrice": "float", "netImbalanceVolume": "float",
             "sellPriceAdjustment": "float", "buyPriceAdjustment": "float", "replacementPrice": "float",
             "replacementPriceReferenceVolume": "float", "totalAcceptedOfferVolume": "float",
             "totalAcceptedBidVolume": "float", "totalAdjustmentSellVolume": "float",
             "totalAdjustmentBuyVolume": "float"},
            key=("settlement_date", "settlement_period"),
            event_time="start_time",
            cadence=dt.timedelta(minutes=30),
            api=ApiSpec("/balancing/settlement/system-prices/{date}"),
            mode=LATEST,
            version="created_date_time",
            notes="system prices, re-issued after each settlement run (createdDateTime orders them)",
        ),
        *[
            DatasetSpec(
                code,
                {**_SETTLEMENT, **extra, "side": "str"},
                key=("bm_unit", "settlement_date", "settlement_period", *key, "side"),
                event_time="start_time",
                api=ApiSpec(path, sides=_SIDES),
                mode=LATEST,
                version="created_date_time",
                side_from=side_from,
                pairs=pairs,
                notes=notes,
            )
            for code, extra, key, path, side_from, pairs, notes in (
                ("BOAV", {"acceptanceId": "int", "acceptanceDuration": "str", "totalVolumeAccepted": "float",
                          "pairVolumes": "json"}, ("acceptance_id",),
                 "/balancing/settlement/acceptance/volumes/all/{side}/{date}", "total_volume_accepted",
                 ("pair_volumes", "pair_volume_mwh"),
                 "indicative accepted volumes per acceptance and pair (Section T3 on BMRS data), re-issued after "
                 "each settlement run"),
                ("DISPTAV", {"dataType": "str", "totalVolumeAccepted": "float", "pairVolumes": "json"},
                 ("data_type",), "/balancing/settlement/indicative/volumes/all/{side}/{date}", "total_volume_accepted",
                 ("pair_volumes", "pair_volume_mwh"),
                 "indicative period volumes per pair, by data type (Original, …)"),
                ("EBOCF", {"bidOfferPairCashflows": "json", "totalCashflow": "float"}, (),
                 "/balancing/settlement/indicative/cashflows/all/{side}/{date}", None,
                 ("bid_offer_pair_cashflows", "pair_cashflow_gbp"),
                 "indicative BM cashflows per unit, period and pair; a row without a side (its sign does not "
                 "give one) is quarantined"),
            )
        ],
        DatasetSpec(
            "ISPSTACK",
            {"dataset": "str", "settlementDate": "date", "settlementPeriod": "int", "startTime": "dt",
             "createdDateTime": "dt", "sequenceNumber": "int", "id": "str", "acceptanceId": "int",
             "bidOfferPairId": "int", "cadlFlag": "bool", "soFlag": "bool", "storProviderFlag": "bool",
             "repricedIndicator": "bool", "reserveScarcityPrice": "float", "originalPrice": "float",
             "volume": "float", "dmatAdjustedVolume": "float", "arbitrageAdjustedVolume": "float",
             "nivAdjustedVolume": "float", "parAdjustedVolume": "float", "finalPrice": "float",
             "transmissionLossMultiplier": "float", "tlmAdjustedVolume": "float", "tlmAdjustedCost": "float",
             "side": "str"},
            key=("settlement_date", "settlement_period", "side", "sequence_number"),
            event_time="start_time",
            api=ApiSpec("/balancing/settlement/stack/all/{side}/{date}/{period}", sides=_SIDES,
                        limit_source="one settlement period per call (path parameters)"),
            mode=LATEST,
            version="created_date_time",
            side_from="volume",
            notes="system-price stack per period and side; a re-issue with fewer entries leaves the old tail "
                  "(compare created_date_time)",
        ),
        DatasetSpec(
            "SYSWARN",
            {"dataset": "str", "publishTime": "dt", "warningType": "str", "warningText": "str"},
            key=("publish_time", "warning_text"),
            event_time="publish_time",
            api=_api("SYSWARN", "publishDateTimeFrom", "publishDateTimeTo", _DAY, "1 day (conservative)"),
            notes="NESO system warnings (IRIS archive name SYS_WARN); warningType only where the source gives it",
        ),
        DatasetSpec(
            "LOLPDRM",
            {"dataset": "str", "publishTime": "dt", "publishingPeriodCommencingTime": "dt", "startTime": "dt",
             "settlementDate": "date", "settlementPeriod": "int", "lossOfLoadProbability": "float",
             "deratedMargin": "float"},
            key=("publish_time", "settlement_date", "settlement_period"),
            event_time="start_time",
            api=_api("LOLPDRM", "publishDateTimeFrom", "publishDateTimeTo", _DAY, "1 day (conservative)"),
        ),
        DatasetSpec(
            "REMIT",
            {"dataset": "str", "mrid": "str", "revisionNumber": "int", "publishTime": "dt", "createdTime": "dt",
             "messageType": "str", "messageHeading": "str", "eventType": "str", "unavailabilityType": "str",
             "participantId": "str", "registrationCode": "str", "assetId": "str", "assetType": "str",
             "affectedUnit": "str", "affectedUnitEIC": "str", "affectedArea": "str", "biddingZone": "str",
             "fuelType": "str", "normalCapacity": "float", "availableCapacity": "float",
             "unavailableCapacity": "float", "eventStatus": "str", "eventStartTime": "dt", "eventEndTime": "dt",
             "durationUncertainty": "str", "cause": "str", "relatedInformation": "str", "outageProfile": "json"},
            key=("mrid", "revision_number"),
            event_time="publish_time",
            api=_api("REMIT", "publishDateTimeFrom", "publishDateTimeTo", _DAY, "1 day (observed)"),
            mode=VERSIONED,
            latest_by=("mrid",),
        ),
    ]
}

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def infer_type(name: str, values: list) -> str:
    """Logical type for a field we have no schema for, from its name and the values seen."""
    seen = [v for v in values if v is not None]
    if not seen:
        return "STRING"
    if any(isinstance(v, (list, dict)) for v in seen):
        return "JSON"
    if all(isinstance(v, bool) for v in seen):
        return "BOOL"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
        return "INT64"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen):
        return "FLOAT64"
    if all(isinstance(v, str) for v in seen):
        if all(_DATE.match(v) for v in seen):
            return "DATE"
        if all(_DATETIME.match(v) for v in seen):
            return "TIMESTAMP"
    return "STRING"


@dataclass
class DatasetShape:
    """A dataset as the loader sees it in one batch: its spec (if known) and every column's type."""

    code: str
    spec: DatasetSpec | None
    columns: dict[str, str] = field(default_factory=dict)  # column → logical type
    sources: dict[str, str] = field(default_factory=dict)  # column → Elexon field name

    @property
    def table(self) -> str:
        return table_name(self.code)

    @property
    def key(self) -> tuple[str, ...]:
        """The natural key; for an unknown dataset, every data column (exact duplicates only)."""
        return self.spec.key if self.spec else tuple(self.columns)

    @property
    def event_time(self) -> str | None:
        if self.spec:
            return self.spec.event_time
        for candidate in ("measurement_time", "start_time", "time_from", "publish_time", "settlement_date"):
            if candidate in self.columns:
                return candidate
        return None
