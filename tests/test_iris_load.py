"""Decoding, typing, natural keys, quarantine and schema evolution of the IRIS loader."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from ingest.iris.datasets import SPECS, infer_type, snake
from ingest.iris.decode import DecodeError, Message, decode_body
from ingest.iris.load import IrisLoader

ROWS = [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45.000Z", "frequency": 50.017}]
T0 = dt.datetime(2026, 5, 8, tzinfo=dt.timezone.utc)


def msg(message_id, rows, subject="FREQ", source="iris", double=True, body=None):
    text = json.dumps(rows)
    raw = body if body is not None else (json.dumps(text) if double else text).encode()
    return Message(message_id, raw if isinstance(raw, bytes) else raw.encode(), subject, source, enqueued_at=T0)


@pytest.mark.parametrize("body", [
    json.dumps(json.dumps(ROWS)),  # IRIS: a JSON string holding the array
    json.dumps(ROWS),  # Elexon client files and API /stream: the array
    json.dumps({"data": ROWS}),  # API /datasets/X
    json.dumps(ROWS[0]),  # a single record
    "\ufeff" + json.dumps(ROWS),  # with a BOM
], ids=["double-encoded", "array", "data-envelope", "object", "bom"])
def test_every_body_encoding_decodes_to_the_same_records(body):
    assert decode_body(body.encode()) == ROWS


@pytest.mark.parametrize("body,reason", [
    (b"not json", "body is not JSON"),
    (b"42", "body is JSON int, expected an array of records"),
    (json.dumps(json.dumps([1, 2])).encode(), "record 0 is int, expected an object"),
])
def test_undecodable_bodies_say_why(body, reason):
    with pytest.raises(DecodeError, match=reason):
        decode_body(body)


def test_column_names_are_the_snake_case_of_elexon_names():
    assert [snake(n) for n in ("settlementDate", "nationalGridBmUnit", "bmUnit", "affectedUnitEIC", "deemedBoFlag",
                               "mrid", "timeFrom")] == [
        "settlement_date", "national_grid_bm_unit", "bm_unit", "affected_unit_eic", "deemed_bo_flag", "mrid",
        "time_from"]


def test_types_are_inferred_for_fields_without_a_schema():
    assert infer_type("x", [1, 2, None]) == "INT64"
    assert infer_type("x", [1, 2.5]) == "FLOAT64"
    assert infer_type("x", [True, False]) == "BOOL"
    assert infer_type("x", ["2026-05-06"]) == "DATE"
    assert infer_type("x", ["2026-05-06T03:00:00.000Z", "2026-05-06T03:00:00+01:00"]) == "TIMESTAMP"
    assert infer_type("x", [[{"a": 1}]]) == "JSON"
    assert infer_type("x", ["abc", 1]) == "STRING"


def test_typed_columns_follow_the_documented_schema(wh):
    rows = [{"dataset": "BOALF", "settlementDate": "2026-05-06", "settlementPeriodFrom": 9, "settlementPeriodTo": 10,
             "timeFrom": "2026-05-06T03:00:00Z", "timeTo": "2026-05-06T03:30:00Z", "levelFrom": 480,
             "levelTo": 480, "acceptanceNumber": 217257, "acceptanceTime": "2026-05-06T02:31:00Z",
             "deemedBoFlag": False, "soFlag": True, "amendmentFlag": "ORI", "storFlag": False, "rrFlag": False,
             "nationalGridBmUnit": "MRWD-1", "bmUnit": "T_MRWD-1"}]
    IrisLoader(wh).load([msg("BOALF_1.json", rows, "BOALF")])
    types = wh.logical_columns("bmrs_boalf")
    assert types["settlement_date"] == "DATE" and types["time_from"] == "TIMESTAMP"
    assert types["acceptance_number"] == "INT64" and types["so_flag"] == "BOOL" and types["bm_unit"] == "STRING"
    row = wh.query_rows("SELECT * FROM bmrs_boalf")[0]
    assert row["time_from"] == dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc)
    assert row["bm_unit"] == "T_MRWD-1" and row["national_grid_bm_unit"] == "MRWD-1"
    assert row["_source"] == "iris" and row["_message_id"] == "BOALF_1.json"


def test_the_same_message_twice_loads_once(wh):
    loader = IrisLoader(wh)
    first = loader.load([msg("FREQ_1.json", ROWS), msg("FREQ_1.json", ROWS)])
    again = loader.load([msg("FREQ_1.json", ROWS)])
    assert (first.messages, first.duplicate_messages) == (1, 1)
    assert (again.messages, again.duplicate_messages, again.inserted) == (0, 1, 0)
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq") == 1
    assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 1


def test_the_same_row_from_iris_and_the_api_loads_once_whatever_the_timestamp_format(wh):
    loader = IrisLoader(wh)
    loader.load([msg("FREQ_1.json", [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45.000Z",
                                      "frequency": 50.017}])])
    api_rows = [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45Z", "frequency": 50.017},
                {"dataset": "FREQ", "measurementTime": "2026-05-08T00:00:00Z", "frequency": 49.97}]
    result = loader.load([msg("api:FREQ:1", api_rows, source="api", double=False)])
    assert (result.inserted, result.duplicate_rows) == (1, 1)
    sources = {r["_source"] for r in wh.query_rows("SELECT _source FROM bmrs_freq")}
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq") == 2 and sources == {"iris", "api"}


def test_distinct_readings_never_collapse(wh):
    fuel = [{"dataset": "FUELINST", "publishTime": "2026-05-06T03:00:00Z", "startTime": "2026-05-06T02:55:00Z",
             "settlementDate": "2026-05-06", "settlementPeriod": 6, "fuelType": f, "generation": 100}
            for f in ("CCGT", "WIND", "NUCLEAR")]
    revised = [{**fuel[0], "publishTime": "2026-05-06T03:10:00Z", "generation": 120}]
    loader = IrisLoader(wh)
    loader.load([msg("FUELINST_1.json", fuel, "FUELINST"), msg("FUELINST_2.json", revised, "FUELINST")])
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_fuelinst") == 4  # per fuel type, and the revision kept
    assert SPECS["FUELINST"].key == ("start_time", "fuel_type", "publish_time")


def test_a_record_that_fails_typing_is_quarantined_and_its_siblings_load(wh):
    rows = [{"dataset": "FREQ", "measurementTime": "2026-05-07T23:59:45Z", "frequency": "fifty"},
            {"dataset": "FREQ", "measurementTime": "2026-05-08T00:00:00Z", "frequency": 49.97}]
    result = IrisLoader(wh).load([msg("FREQ_2.json", rows)])
    assert (result.inserted, result.quarantined) == (1, 1)
    q = wh.query_rows("SELECT * FROM iris_quarantine")[0]
    assert q["record_index"] == 0 and q["reason"] == "field frequency: 'fifty' is not a valid FLOAT64"
    assert json.loads(q["raw"]) == rows[0]
    assert wh.scalar("SELECT quarantined FROM iris_message_ledger") == 1


def test_a_record_without_any_dataset_is_quarantined(wh):
    result = IrisLoader(wh).load([msg("x.json", [{"value": 1}], subject=None)])
    assert result.quarantined == 1
    assert "no dataset" in wh.scalar("SELECT reason FROM iris_quarantine")


def test_a_record_whose_subject_and_dataset_disagree_follows_the_subject(wh):
    # Elexon's own MELS example says "dataset": "MILS"; the message subject is authoritative
    rows = [{"dataset": "MILS", "settlementDate": "2022-07-01", "settlementPeriod": 3,
             "timeFrom": "2022-07-01T01:34:00.0000000+00:00", "timeTo": "2022-07-01T01:34:00.0000000+00:00",
             "levelFrom": 5, "levelTo": 46, "notificationTime": "2022-07-01T01:34:00.0000000+00:00",
             "notificationSequence": 93210322, "nationalGridBmUnit": "ABRBO-1", "bmUnit": "T_ABRBO-1"}]
    IrisLoader(wh).load([msg("MELS_1.json", rows, "MELS")])
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_mels") == 1 and wh.table_columns("bmrs_mils") is None


def test_a_value_that_does_not_fit_an_existing_column_is_quarantined(wh):
    loader = IrisLoader(wh)
    loader.load([msg("N_1.json", [{"dataset": "NEWDS", "publishTime": "2026-05-06T03:00:00Z", "count": 3}], "NEWDS")])
    result = loader.load([msg("N_2.json", [{"dataset": "NEWDS", "publishTime": "2026-05-06T03:05:00Z",
                                            "count": "many"}], "NEWDS")])
    assert result.quarantined == 1 and "field count: 'many' is not a valid INT64" in wh.scalar(
        "SELECT reason FROM iris_quarantine")


def test_nested_values_are_kept_as_json(wh):
    profile = [{"startTime": "2026-05-06T03:00:00Z", "endTime": "2026-05-06T09:00:00Z", "capacity": 120.5}]
    rows = [{"dataset": "REMIT", "mrid": "48X-RMT-1", "revisionNumber": 2, "publishTime": "2026-05-06T03:00:00Z",
             "outageProfile": profile}]
    IrisLoader(wh).load([msg("REMIT_1.json", rows, "REMIT")])
    assert json.loads(wh.scalar("SELECT outage_profile FROM bmrs_remit")) == profile
    assert wh.logical_columns("bmrs_remit")["outage_profile"] == "JSON"


def test_batch_statistics_feed_the_status_report(wh):
    loader = IrisLoader(wh)
    loader.load([msg("FREQ_1.json", ROWS), msg("poison.json", None, body=b"{{")])
    loader.load([msg("FREQ_1.json", ROWS)])
    stats = wh.query_rows("SELECT dataset, SUM(messages) m, SUM(duplicate_messages) d, SUM(inserted) i, "
                          "SUM(quarantined) q FROM iris_batches GROUP BY dataset")
    assert stats == [{"dataset": "FREQ", "m": 1, "d": 1, "i": 1, "q": 1}]


def test_a_redelivered_batch_is_counted_in_linear_time_with_the_first_copys_publication_time():
    from ingest.iris.load import _statistics

    later = T0 + dt.timedelta(minutes=5)
    messages = [msg(f"FREQ_{i}.json", ROWS) for i in range(20_000)]
    messages += [msg("poison.json", None, body=b"{{"), Message("poison.json", b"{{", "FREQ", "iris", enqueued_at=later)]
    quarantine = [{"message_id": "poison.json", "dataset": "FREQ"}]
    started = time.perf_counter()
    rows = _statistics("b1", later, messages, set(), {}, quarantine)
    assert time.perf_counter() - started < 2  # once quadratic: every redelivery re-read the whole batch
    assert rows == [{"batch_id": "b1", "dataset": "FREQ", "source": "iris", "messages": 0,
                     "duplicate_messages": 20_002, "rows": 0, "inserted": 0, "duplicate_rows": 0, "corrections": 0,
                     "stale_rows": 0, "quarantined": 1, "last_enqueued_at": T0, "committed_at": later}]
