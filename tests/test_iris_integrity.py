"""Nothing Elexon sent is lost: shapes that evolve, corrections, exact typing, required keys (both backends)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from core.errors import DataRejected
from ingest.iris.decode import Message
from ingest.iris.load import IrisLoader

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 5, 6, 3, 0, tzinfo=UTC)


@pytest.fixture(params=["duckdb", pytest.param("bigquery", marks=pytest.mark.bigquery)])
def any_wh(request):
    return request.getfixturevalue("wh" if request.param == "duckdb" else "bq")


def msg(message_id: str, rows: list[dict], subject: str, minutes: float = 0, source: str = "iris") -> Message:
    body = json.dumps(json.dumps(rows)).encode()  # IRIS double encoding
    return Message(message_id, body, subject, source, enqueued_at=T0 + dt.timedelta(minutes=minutes))


def q(wh, table: str, columns: str, order: str) -> list[tuple]:
    return [tuple(r.values()) for r in wh.query_rows(f"SELECT {columns} FROM {wh.ref(table)} ORDER BY {order}")]


def disbsad(id_: int, cost: float, period: int = 9) -> dict:
    return {"dataset": "DISBSAD", "settlementDate": "2026-05-06", "settlementPeriod": period, "id": id_,
            "cost": cost, "volume": 10.0, "soFlag": True, "storFlag": False, "partyId": None, "assetId": None,
            "isTendered": None, "service": "Energy"}


def boalf(level_from, amendment: str = "ORI", number: int = 217257, unit: str = "T_MRWD-1") -> dict:
    return {"dataset": "BOALF", "settlementDate": "2026-05-06", "settlementPeriodFrom": 9, "settlementPeriodTo": 10,
            "timeFrom": "2026-05-06T03:00:00.000Z", "timeTo": "2026-05-06T03:30:00.000Z", "levelFrom": level_from,
            "levelTo": 480, "acceptanceNumber": number, "acceptanceTime": "2026-05-06T02:31:00.000Z",
            "deemedBoFlag": False, "soFlag": True, "amendmentFlag": amendment, "storFlag": False, "rrFlag": False,
            "nationalGridBmUnit": unit.split("_", 1)[-1], "bmUnit": unit}


def freq(at: str | None, value: float = 50.01) -> dict:
    row = {"dataset": "FREQ", "frequency": value}
    if at is not None:
        row["measurementTime"] = at
    return row


# ---------------------------------------------------------------------------------------- shapes
def test_a_new_dataset_whose_later_message_lacks_an_optional_field_loads_with_null(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("NEWDS_1.json", [{"dataset": "NEWDS", "a": 1, "b": "x"}], "NEWDS")])
    result = loader.load([msg("NEWDS_2.json", [{"dataset": "NEWDS", "b": "y"}], "NEWDS", 1),
                          msg("FREQ_1.json", [freq("2026-05-06T03:00:00Z")], "FREQ", 1)])
    assert (result.inserted, result.quarantined, result.isolated) == (2, 0, 0)
    assert q(any_wh, "bmrs_newds", "a, b", "b") == [(1, "x"), (None, "y")]


def test_the_same_in_one_batch_and_on_a_second_replay(any_wh):
    loader = IrisLoader(any_wh)
    batch = [msg("NEWDS_1.json", [{"dataset": "NEWDS", "a": 1, "b": "x"}], "NEWDS"),
             msg("NEWDS_2.json", [{"dataset": "NEWDS", "b": "y"}], "NEWDS", 1)]
    assert loader.load(batch).inserted == 2
    again = IrisLoader(any_wh).load(batch)
    assert (again.inserted, again.duplicate_messages) == (0, 2)


def test_a_field_named_like_a_bookkeeping_column_is_stored_under_a_payload_name(any_wh):
    loader = IrisLoader(any_wh)
    result = loader.load([msg("FREQ_1.json", [freq("2026-05-06T03:00:00Z") | {"_message_id": "spoof", "_source": 7}],
                              "FREQ"),
                          msg("FREQ_2.json", [freq("2026-05-06T03:00:15Z")], "FREQ")])
    assert (result.inserted, result.quarantined) == (2, 0)
    assert q(any_wh, "bmrs_freq", "_message_id, payload_message_id, payload_source", "measurement_time") == [
        ("FREQ_1.json", "spoof", 7), ("FREQ_2.json", None, None)]


def test_data_the_warehouse_rejects_quarantines_only_that_message(any_wh, monkeypatch):
    loader = IrisLoader(any_wh)
    loader.load([msg("FREQ_0.json", [freq("2026-05-06T02:59:45Z")], "FREQ")])  # tables exist
    real_write = any_wh.write

    def write(batches, deletes=()):  # the warehouse refuses any batch holding the poison value
        batches = list(batches.items()) if isinstance(batches, dict) else list(batches)
        for b in batches:
            data = b.data if hasattr(b, "data") else b[1]
            if "frequency" in data.column_names and 99.0 in data.column("frequency").to_pylist():
                raise DataRejected("Conversion Error: the warehouse refuses 99 Hz (test)")
        return real_write(batches, deletes)

    monkeypatch.setattr(any_wh, "write", write)
    batch = [msg(f"FREQ_{i}.json", [freq(f"2026-05-06T03:00:{i:02d}Z", 99.0 if i == 2 else 50.0)], "FREQ")
             for i in range(1, 5)]
    result = loader.load(batch)
    assert (result.messages, result.inserted, result.isolated) == (4, 3, 1)
    assert q(any_wh, "iris_quarantine", "message_id, record_index", "message_id") == [("FREQ_2.json", None)]
    reason, raw = any_wh.query_rows(f"SELECT reason, raw FROM {any_wh.ref('iris_quarantine')}")[0].values()
    assert "refuses 99 Hz" in reason and json.loads(json.loads(raw))[0]["frequency"] == 99.0
    assert q(any_wh, "iris_message_ledger", "COUNT(*)", "1") == [(5,)]  # it is not retried for ever


# ---------------------------------------------------------------------------------------- corrections
def test_a_disbsad_cost_resent_later_replaces_the_first_and_the_first_is_kept(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("DISBSAD_1.json", [disbsad(1, 1000.0), disbsad(2, 50.0)], "DISBSAD")])
    result = loader.load([msg("DISBSAD_2.json", [disbsad(1, 1500.0), disbsad(2, 50.0)], "DISBSAD", 10)])
    assert (result.inserted, result.corrections, result.duplicate_rows) == (1, 1, 1)
    assert q(any_wh, "bmrs_disbsad", "id, cost, _message_id", "id") == [(1, 1500.0, "DISBSAD_2.json"),
                                                                          (2, 50.0, "DISBSAD_1.json")]
    assert q(any_wh, "bmrs_disbsad_history", "id, cost, _message_id, _replaced_by", "id") == [
        (1, 1000.0, "DISBSAD_1.json", "DISBSAD_2.json")]


def test_an_older_message_arriving_late_never_overwrites_a_newer_one(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("DISBSAD_2.json", [disbsad(1, 1500.0)], "DISBSAD", 10)])
    result = loader.load([msg("DISBSAD_1.json", [disbsad(1, 1000.0)], "DISBSAD", 0)])
    assert (result.inserted, result.stale_rows) == (0, 1)
    assert q(any_wh, "bmrs_disbsad", "cost", "id") == [(1500.0,)]
    assert q(any_wh, "bmrs_disbsad_history", "cost, _replaced_by", "id") == [(1000.0, "DISBSAD_2.json")]


def test_an_identical_repeat_changes_nothing(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("DISBSAD_1.json", [disbsad(1, 1000.0)], "DISBSAD")])
    result = loader.load([msg("DISBSAD_9.json", [disbsad(1, 1000.0)], "DISBSAD", 30, source="api")])
    assert (result.inserted, result.duplicate_rows, result.corrections) == (0, 1, 0)
    assert q(any_wh, "bmrs_disbsad", "_message_id", "id") == [("DISBSAD_1.json",)]
    assert q(any_wh, "bmrs_disbsad_history", "COUNT(*)", "1") == [(0,)]


def test_a_boalf_amendment_replaces_the_original(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("BOALF_1.json", [boalf(480)], "BOALF")])
    loader.load([msg("BOALF_2.json", [boalf(300, "AMD")], "BOALF", 5)])
    assert q(any_wh, "bmrs_boalf", "level_from, amendment_flag", "acceptance_number") == [(300, "AMD")]
    assert q(any_wh, "bmrs_boalf_history", "level_from, amendment_flag", "acceptance_number") == [(480, "ORI")]


def test_remit_keeps_every_revision_and_the_latest_view_shows_the_newest(any_wh):
    def remit(revision: int, available: float) -> dict:
        return {"dataset": "REMIT", "mrid": "48X-RMT-1", "revisionNumber": revision,
                "publishTime": f"2026-05-06T0{revision}:00:00Z", "availableCapacity": available,
                "normalCapacity": 981.0, "outageProfile": [{"startTime": "2026-05-06T00:00:00Z", "capacity": 1.0}]}

    loader = IrisLoader(any_wh)
    loader.load([msg("REMIT_2.json", [remit(2, 400.0)], "REMIT", 2), msg("REMIT_1.json", [remit(1, 89.0)], "REMIT", 1)])
    assert q(any_wh, "bmrs_remit", "revision_number", "revision_number") == [(1,), (2,)]
    assert q(any_wh, "bmrs_remit_latest", "revision_number, available_capacity", "mrid") == [(2, 400.0)]


# ---------------------------------------------------------------------------------------- typing and keys
def test_a_fractional_value_in_a_declared_integer_field_is_quarantined_not_rounded(any_wh):
    result = IrisLoader(any_wh).load([msg("BOALF_1.json", [boalf(12.7), boalf(13, number=217258)], "BOALF")])
    assert (result.inserted, result.quarantined) == (1, 1)
    assert q(any_wh, "bmrs_boalf", "acceptance_number, level_from", "acceptance_number") == [(217258, 13)]
    reason = any_wh.query_rows(f"SELECT reason FROM {any_wh.ref('iris_quarantine')}")[0]["reason"]
    assert reason == ("field levelFrom: 12.7 is not a valid INT64: not a whole number, and the field is declared "
                      "an integer")


def test_an_inferred_integer_column_widens_to_float_instead_of_rounding(any_wh):
    loader = IrisLoader(any_wh)
    loader.load([msg("NEWDS_1.json", [{"dataset": "NEWDS", "k": "a", "v": 5}], "NEWDS")])
    result = loader.load([msg("NEWDS_2.json", [{"dataset": "NEWDS", "k": "b", "v": 5.7}], "NEWDS", 1)])
    assert result.quarantined == 0
    assert any_wh.logical_columns("bmrs_newds")["v"] == "FLOAT64"
    assert q(any_wh, "bmrs_newds", "k, v", "k") == [("a", 5.0), ("b", 5.7)]
    changes = q(any_wh, "iris_schema_changes", "column_name, column_type, change", "changed_at")
    assert ("v", "FLOAT64", "widened from INT64") in changes


def test_records_without_their_key_are_quarantined_each_with_the_reason(any_wh):
    result = IrisLoader(any_wh).load([msg("FREQ_1.json", [freq(None, 49.9), freq(None, 50.1),
                                                          freq("2026-05-06T03:00:00Z")], "FREQ")])
    assert (result.inserted, result.quarantined) == (1, 2)
    reasons = [r["reason"] for r in any_wh.query_rows(f"SELECT reason FROM {any_wh.ref('iris_quarantine')}")]
    assert reasons == ["missing natural-key field measurementTime (the key of FREQ is measurement_time)"] * 2


@pytest.mark.parametrize("value,typ,reason", [
    ("fifty", "frequency", "field frequency: 'fifty' is not a valid FLOAT64"),
    (True, "frequency", "field frequency: True is not a valid FLOAT64"),
    ("2026-05-06", "measurementTime", "field measurementTime: '2026-05-06' is not a valid TIMESTAMP: a date without a time"),
])
def test_a_value_that_does_not_fit_is_quarantined_beside_good_records(wh, value, typ, reason):
    bad = freq("2026-05-06T03:00:00Z") | {typ: value}
    result = IrisLoader(wh).load([msg("FREQ_1.json", [bad, freq("2026-05-06T03:00:15Z")], "FREQ")])
    assert (result.inserted, result.quarantined) == (1, 1)
    assert wh.query_rows("SELECT reason FROM iris_quarantine")[0]["reason"] == reason


def test_timestamps_in_every_elexon_spelling_parse_to_the_same_instant(wh):
    spellings = ["2026-05-06T03:00:00Z", "2026-05-06T03:00:00.000Z", "2026-05-06T04:00:00+01:00",
                 "2026-05-06T03:00:00.0000000+00:00", "2026-05-06 03:00:00"]
    rows_ = [{"dataset": "NEWTS", "k": i, "t": s} for i, s in enumerate(spellings)]
    IrisLoader(wh).load([msg("NEWTS_1.json", rows_, "NEWTS")])
    assert {r["t"] for r in wh.query_rows("SELECT t FROM bmrs_newts")} == {T0}
