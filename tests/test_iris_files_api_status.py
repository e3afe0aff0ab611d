"""File-drop replay, Insights API gap fill and the status report."""

from __future__ import annotations

import datetime as dt
import json
import time
import os

import pytest
from click.testing import CliRunner

from ingest.iris.api import InsightsClient, InsightsError, fill_gap, windows
from ingest.iris.decode import Message
from ingest.iris.files import drop_files, replay_directory
from ingest.iris.generate import IrisGenerator, write_file_drop
from ingest.iris.load import IrisLoader
from ops.status import collect_status
from run import cli
from tests.peers.insights import FakeInsights

UTC = dt.timezone.utc
START = dt.datetime(2026, 5, 6, 3, 0, tzinfo=UTC)


def make_drop(folder, count=300, seed=3):
    messages = list(IrisGenerator(START, seed=seed).messages(count))
    write_file_drop(folder, messages)
    return messages


# ---------------------------------------------------------------------------------------- file drop
def test_a_file_drop_replays_in_arrival_order_and_only_once(tmp_path, wh):
    messages = make_drop(tmp_path / "iris_data")
    arrival = sorted(messages, key=lambda m: (m.enqueued_at, m.message_id))  # ties by name
    assert [p.name for p in drop_files(tmp_path / "iris_data")] == [m.message_id for m in arrival]
    loader = IrisLoader(wh)
    first = replay_directory(loader, tmp_path / "iris_data", batch_size=64)
    assert first.files == first.loaded == len(messages)
    assert first.rows == sum(len(m.records) for m in messages)
    again = replay_directory(loader, tmp_path / "iris_data")
    assert (again.loaded, again.duplicate_messages, again.rows) == (0, len(messages), 0)
    row = wh.query_rows("SELECT source, enqueued_at FROM iris_message_ledger WHERE message_id = @m",
                        {"m": messages[0].message_id})[0]
    assert row["source"] == "file" and row["enqueued_at"] == messages[0].enqueued_at


def test_remove_deletes_each_file_after_its_batch_is_committed(tmp_path, wh):
    make_drop(tmp_path / "d", count=50)
    replay_directory(IrisLoader(wh), tmp_path / "d", remove=True)
    assert drop_files(tmp_path / "d") == []
    assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 50


def test_a_broken_file_is_quarantined_and_the_rest_load(tmp_path, wh):
    make_drop(tmp_path / "d", count=20)
    (tmp_path / "d" / "BOALF" / "BOALF_202605060301_99.json").write_text("[{\"dataset\": \"BOALF\",")  # truncated
    (tmp_path / "d" / "unknown").mkdir()
    (tmp_path / "d" / "unknown" / "x.json").write_text(json.dumps([{"dataset": "FREQ", "frequency": 50,
                                                                   "measurementTime": "2026-05-06T03:00:00Z"}]))
    summary = replay_directory(IrisLoader(wh), tmp_path / "d")
    assert summary.loaded == 22 and summary.quarantined == 1
    assert wh.scalar("SELECT message_id FROM iris_quarantine") == "BOALF_202605060301_99.json"
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq WHERE _message_id = 'x.json'") == 1  # dataset from the rows



def test_a_file_read_half_written_loads_once_complete_and_is_quarantined_once(tmp_path, wh):
    """Elexon's client writes in place (no temp file): a poll can read a file half-written, and a
    redelivery rewrites a file a crash left truncated. Neither may lose the message."""
    make_drop(tmp_path / "d", count=10)
    path = tmp_path / "d" / "FREQ" / "FREQ_202605060400_77.json"
    path.parent.mkdir(exist_ok=True)
    whole = json.dumps([{"dataset": "FREQ", "measurementTime": "2026-05-06T04:00:00Z", "frequency": 50.012}])
    path.write_text(whole[:40])
    loader = IrisLoader(wh)
    first = replay_directory(loader, tmp_path / "d", remove=True)
    assert (first.loaded, first.quarantined) == (11, 1)
    assert [f.name for f in drop_files(tmp_path / "d")] == [path.name]  # kept: it may still be being written
    again = replay_directory(loader, tmp_path / "d", remove=True)  # the same bytes: nothing new
    assert (again.loaded, again.duplicate_messages, again.quarantined) == (0, 1, 0)
    path.write_text(whole)  # the client finished (or rewrote it on a redelivery)
    done = replay_directory(loader, tmp_path / "d", remove=True)
    assert (done.loaded, done.rows, done.quarantined) == (1, 1, 0)
    assert drop_files(tmp_path / "d") == []
    assert wh.scalar("SELECT frequency FROM bmrs_freq WHERE _message_id = @m", {"m": path.name}) == 50.012
    assert wh.scalar("SELECT COUNT(*) FROM iris_quarantine WHERE message_id = @m", {"m": path.name}) == 1
    assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger WHERE message_id = @m", {"m": path.name}) == 1



def test_a_watch_leaves_a_file_still_being_written_for_its_next_pass(tmp_path, wh):
    make_drop(tmp_path / "d", count=10)  # written with their arrival times, long ago
    fresh = tmp_path / "d" / "FREQ" / "FREQ_now.json"
    fresh.parent.mkdir(exist_ok=True)
    fresh.write_text('[{"dataset": "FREQ", "measurementTime": "2026-05-06T04:00:00Z", "frequency": 50.0}]')
    loader = IrisLoader(wh)
    watching = replay_directory(loader, tmp_path / "d", settle_s=60)
    assert (watching.files, watching.loaded, watching.quarantined) == (10, 10, 0)
    later = replay_directory(loader, tmp_path / "d")
    assert (later.loaded, later.duplicate_messages) == (1, 10)

def test_an_unreadable_service_bus_message_is_quarantined_once_and_never_retried(wh):
    from ingest.iris.decode import Message

    loader = IrisLoader(wh)
    poison = Message("sb-1", b"[{\"dataset\"", "FREQ", "iris", enqueued_at=START)
    assert loader.load([poison]).quarantined == 1
    again = loader.load([Message("sb-1", b"[]", "FREQ", "iris", enqueued_at=START)])  # a redelivery
    assert (again.messages, again.duplicate_messages) == (0, 1)

def test_cli_replays_a_folder_once(tmp_path):
    make_drop(tmp_path / "d", count=40)
    db = tmp_path / "w.duckdb"
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "ingest", "iris", "--from-dir",
                                      str(tmp_path / "d"), "--once"])
    assert result.exit_code == 0, result.output
    assert "IRIS file drop: 40 files" in result.output and "loaded          40 messages" in result.output


def test_cli_ingest_without_credentials_says_what_to_set(tmp_path, monkeypatch):
    for name in ("IRIS_CONNECTION_STRING", "IRIS_QUEUE_NAME", "IRIS_CLIENT_ID", "IRIS_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path}/w.duckdb", "ingest", "iris"])
    assert result.exit_code == 1 and "set IRIS_QUEUE_NAME" in result.output
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{tmp_path}/w.duckdb", "ingest", "iris",
                                      "--queue", "iris.x"])
    assert result.exit_code == 1 and "set IRIS_CLIENT_ID and IRIS_CLIENT_SECRET" in result.output


def test_elexon_client_settings_json_is_accepted(tmp_path, monkeypatch):
    from ingest.iris.config import IrisSettings

    file = tmp_path / "settings.json"
    file.write_text(json.dumps({"ClientId": "abc", "QueueName": "iris.q1", "ServiceBusNamespace": "elexon-insights-iris",
                                "Secret": "s3cret-value", "RelativeFileDownloadDirectory": "./data"}))
    settings = IrisSettings.load(settings_file=file, environ={})
    assert settings.queue_name == "iris.q1" and settings.client_id == "abc"
    assert settings.fully_qualified_namespace == "elexon-insights-iris.servicebus.windows.net"
    assert "s3cret-value" not in repr(settings)


# ---------------------------------------------------------------------------------------- API gap fill
@pytest.fixture
def api():
    fake = FakeInsights(max_window={"FREQ": dt.timedelta(hours=24), "BOALF": dt.timedelta(days=1)}).start()
    yield fake
    fake.stop()


def client(fake) -> InsightsClient:
    return InsightsClient(fake.url, backoff_max_s=0.01)


def test_windows_cover_the_range_in_chunks_no_longer_than_the_limit():
    ws = list(windows(START, START + dt.timedelta(hours=50), dt.timedelta(days=1)))
    assert [(b - a).total_seconds() / 3600 for a, b in ws] == [24, 24, 2]
    assert all(ws[i][1] == ws[i + 1][0] for i in range(len(ws) - 1))


def test_gap_fill_chunks_by_the_documented_limit_and_drops_edge_duplicates(wh, api):
    lo, hi = dt.datetime(2026, 5, 6, tzinfo=UTC), dt.datetime(2026, 5, 9, tzinfo=UTC)
    summary = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    assert summary.requests == 3 and api.counts["FREQ"] == 3
    assert [p["measurementDateTimeFrom"] for _, p in api.requests] == [
        "2026-05-06T00:00:00Z", "2026-05-07T00:00:00Z", "2026-05-08T00:00:00Z"]
    assert summary.duplicate_rows == 2  # the readings at each inner boundary came twice
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq") == 3 * 24 * 240 + 1
    assert wh.scalar("SELECT COUNT(DISTINCT measurement_time) FROM bmrs_freq") == 3 * 24 * 240 + 1
    assert wh.scalar("SELECT DISTINCT _source FROM bmrs_freq") == "api"


def test_settlement_datasets_fill_one_call_per_date_and_side_and_rows_carry_the_side(wh, api):
    row = {"settlementDate": "2025-01-15", "settlementPeriod": 20, "startTime": "2025-01-15T09:30:00Z",
           "createdDateTime": "2025-01-15T14:00:00Z", "bmUnit": "T_ALPHA-1", "bmUnitType": "T",
           "nationalGridBmUnit": "ALPHA-1", "leadPartyName": "Gen Co"}
    base = "/balancing/settlement/indicative/cashflows/all"
    api.settlement[f"{base}/offer/2025-01-15"] = [
        {**row, "bidOfferPairCashflows": {"negative1": None, "positive1": 450.0}, "totalCashflow": 450.0}]
    api.settlement[f"{base}/bid/2025-01-15"] = [
        {**row, "bidOfferPairCashflows": {"negative1": -120.0, "positive1": None}, "totalCashflow": -120.0}]
    lo, hi = dt.datetime(2025, 1, 15, tzinfo=UTC), dt.datetime(2025, 1, 17, tzinfo=UTC)
    summary = fill_gap(IrisLoader(wh), "EBOCF", lo, hi, client=client(api))
    assert [path for path, _ in api.requests] == [f"{base}/{side}/{day}" for day in ("2025-01-15", "2025-01-16")
                                                  for side in ("bid", "offer")]
    assert summary.inserted == 2 and summary.quarantined == 0
    rows = wh.query_rows("SELECT side, total_cashflow, _source FROM bmrs_ebocf ORDER BY side")
    assert [(r["side"], r["total_cashflow"], r["_source"]) for r in rows] == [("bid", -120.0, "api"),
                                                                               ("offer", 450.0, "api")]
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_ebocf_pairs") == 2  # the null pairs have no row


def test_a_settlement_row_from_iris_without_a_side_takes_it_from_its_sign_or_is_quarantined(wh):
    common = {"settlementDate": "2025-01-15", "settlementPeriod": 21, "startTime": "2025-01-15T10:00:00Z",
              "createdDateTime": "2025-01-15T14:00:00Z", "bmUnit": "E_BRAVO-1"}
    boav = [{**common, "dataset": "BOAV", "acceptanceId": 7, "totalVolumeAccepted": v, "pairVolumes": {"positive1": v}}
            for v in (25.0, -10.0)]
    ebocf = [{**common, "dataset": "EBOCF", "bidOfferPairCashflows": {"positive1": 2000.0}, "totalCashflow": 2000.0}]
    result = IrisLoader(wh).load([Message("m-boav", json.dumps(boav).encode(), "BOAV"),
                                  Message("m-ebocf", json.dumps(ebocf).encode(), "EBOCF")])
    assert result.inserted == 2 and result.quarantined == 1
    assert [r["side"] for r in wh.query_rows("SELECT side FROM bmrs_boav ORDER BY side")] == ["bid", "offer"]
    reason = wh.scalar("SELECT reason FROM iris_quarantine WHERE message_id = 'm-ebocf'")
    assert reason.startswith("missing natural-key field side")


def test_gap_fill_over_iris_data_adds_only_what_iris_missed(wh, api):
    loader = IrisLoader(wh)
    iris_rows = [{"dataset": "FREQ", "measurementTime": f"2026-05-06T00:{m:02d}:{s:02d}.000Z", "frequency": 50.0}
                 for m in range(10) for s in (0, 15, 30, 45)]
    from ingest.iris.decode import Message

    loader.load([Message("FREQ_iris.json", json.dumps(json.dumps(iris_rows)).encode(), "FREQ")])
    lo, hi = dt.datetime(2026, 5, 6, tzinfo=UTC), dt.datetime(2026, 5, 6, 1, tzinfo=UTC)
    summary = fill_gap(loader, "FREQ", lo, hi, client=client(api))
    assert summary.records == 241 and summary.duplicate_rows == 40 and summary.inserted == 201
    counts = {r["_source"]: r["n"] for r in wh.query_rows("SELECT _source, COUNT(*) n FROM bmrs_freq GROUP BY 1")}
    assert counts == {"iris": 40, "api": 201}


def test_gap_fill_retries_transient_errors_and_halves_too_long_windows(wh, api):
    api.max_window["FREQ"] = dt.timedelta(hours=6)
    api.fail("FREQ", 503, "html", 429)  # "html": a 200 with a maintenance page, not JSON
    lo, hi = dt.datetime(2026, 5, 6, tzinfo=UTC), dt.datetime(2026, 5, 6, 12, tzinfo=UTC)
    summary = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq") == 12 * 240 + 1
    assert summary.quarantined == 0 and wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 0


def test_gap_fill_of_an_unknown_dataset_is_a_clear_error(wh, api):
    with pytest.raises(InsightsError, match="no Insights API endpoint is known for dataset 'NOPE'"):
        fill_gap(IrisLoader(wh), "NOPE", START, START + dt.timedelta(hours=1), client=client(api))


def test_cli_backfill_iris_reads_dates_as_utc_days(tmp_path, insights):
    db = tmp_path / "w.duckdb"
    result = CliRunner().invoke(cli, ["--warehouse", f"duckdb:///{db}", "backfill", "iris", "boalf", "2026-05-06",
                                      "2026-05-06"])
    assert result.exit_code == 0, result.output
    assert "Insights API gap fill BOALF 2026-05-06 00:00 .. 2026-05-07 00:00 UTC" in result.output
    assert insights.requests[0][1] == {"from": "2026-05-06T00:00:00Z", "to": "2026-05-07T00:00:00Z"}


# ---------------------------------------------------------------------------------------- status
def test_status_reports_each_dataset_and_warns_about_expiry_and_silence(tmp_path, wh):
    make_drop(tmp_path / "d", count=200)
    loader = IrisLoader(wh)
    replay_directory(loader, tmp_path / "d")
    from ingest.iris.decode import Message

    loader.load([Message("FREQ_live.json", json.dumps(json.dumps(
        [{"dataset": "FREQ", "measurementTime": "2026-05-06T05:00:00Z", "frequency": 50.0}])).encode(), "FREQ",
        enqueued_at=dt.datetime.now(UTC) - dt.timedelta(days=4))])
    now = dt.datetime.now(UTC)
    report = collect_status(wh, secret_expires=now.date() + dt.timedelta(days=12), now=now)
    by = {r["dataset"]: r for r in report.iris}
    # loaded in the last hour, but none of these messages *arrived* in it
    assert by["FREQ"]["messages_1h"] == 0 and by["MILS"]["rows_1h"] > 0
    assert by["FREQ"]["newest_data"] == dt.datetime(2026, 5, 6, 5, 0, tzinfo=UTC)
    text = "\n".join(report.warnings)
    assert "expires on" in text and "in 12 days" in text
    assert "longer than the queue's 3-day time-to-live" in text

    fresh = collect_status(wh, now=now - dt.timedelta(days=4) + dt.timedelta(minutes=5))
    assert not [w for w in fresh.warnings if "IRIS" in w and "time-to-live" in w]


def test_status_command_prints_tables_and_strict_fails_on_warnings(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    make_drop(tmp_path / "d", count=30)
    runner = CliRunner()
    runner.invoke(cli, ["--warehouse", f"duckdb:///{db}", "ingest", "iris", "--from-dir", str(tmp_path / "d"), "--once"])
    monkeypatch.setenv("IRIS_SECRET_EXPIRES", (dt.date.today() + dt.timedelta(days=5)).isoformat())
    result = runner.invoke(cli, ["--warehouse", f"duckdb:///{db}", "status"])
    assert result.exit_code == 0 and "MILS" in result.output and "WARNING: the IRIS client secret expires" in result.output
    strict = runner.invoke(cli, ["--warehouse", f"duckdb:///{db}", "status", "--strict", "--format", "json"])
    assert strict.exit_code == 1
    assert json.loads(strict.output)["warnings"]


def test_status_judges_a_file_drop_by_arrival_time_and_counts_arrivals(tmp_path, wh):
    drop = tmp_path / "d"
    make_drop(drop, count=20)
    four_days_ago = time.time() - 4 * 86400
    for f in drop.rglob("*.json"):
        os.utime(f, (four_days_ago, four_days_ago))  # Elexon's client wrote them four days ago
    loader = IrisLoader(wh)
    replay_directory(loader, drop)  # loaded just now
    report = collect_status(wh, now=dt.datetime.now(UTC))
    assert any("file in the IRIS file drop arrived 4.0 days ago" in w and "time-to-live" in w for w in report.warnings)
    assert all(r["messages_1h"] == 0 for r in report.iris)

    new = tmp_path / "new" / "FREQ" / "FREQ_now.json"
    new.parent.mkdir(parents=True)
    new.write_text(json.dumps([{"dataset": "FREQ", "measurementTime": "2026-05-06T06:00:00Z", "frequency": 50.0}]))
    replay_directory(loader, tmp_path / "new")
    report = collect_status(wh, now=dt.datetime.now(UTC))
    assert {r["dataset"]: r["messages_1h"] for r in report.iris}["FREQ"] == 1
    assert not [w for w in report.warnings if "file drop" in w]


def test_status_shows_outages_and_what_they_mean(tmp_path, wh):
    from ingest.iris.tables import OUTAGES
    import pyarrow as pa

    IrisLoader(wh)
    now = dt.datetime.now(UTC)
    wh.write({OUTAGES.name: OUTAGES.conform(pa.Table.from_pylist([{
        "started_at": now - dt.timedelta(hours=2), "ended_at": now - dt.timedelta(hours=1), "seconds": 3600.0,
        "attempts": 40, "messages_held": 500, "locks_lost": 0, "error": "IO Error: No space left on device"}]))})
    report = collect_status(wh, now=now)
    assert report.outages[0]["messages_held"] == 500
    assert "holds its batch" in report.notes[0] and "3-day time-to-live" in report.notes[0]


def test_a_gap_fill_stopped_half_way_resumes_at_the_first_window_not_fetched(wh, api):
    lo, hi = dt.datetime(2026, 5, 6, tzinfo=UTC), dt.datetime(2026, 5, 11, tzinfo=UTC)  # 5 one-day windows
    real_fetch = InsightsClient.fetch
    calls = []

    def dies_on_the_third(self, spec, a, b):
        calls.append(a)
        if len(calls) == 3:
            raise InsightsError("the connection died (test)")
        return real_fetch(self, spec, a, b)

    InsightsClient.fetch = dies_on_the_third
    try:
        with pytest.raises(InsightsError):
            fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    finally:
        InsightsClient.fetch = real_fetch
    before = api.counts["FREQ"]
    summary = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    assert (summary.windows, summary.skipped, summary.requests) == (5, 2, 3)
    assert api.counts["FREQ"] - before == 3
    assert [p["measurementDateTimeFrom"] for _, p in api.requests[-3:]] == [
        "2026-05-08T00:00:00Z", "2026-05-09T00:00:00Z", "2026-05-10T00:00:00Z"]
    assert wh.scalar("SELECT COUNT(DISTINCT measurement_time) FROM bmrs_freq") == 5 * 24 * 240 + 1
    again = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    assert (again.skipped, again.requests) == (5, 0)
    forced = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api), resume=False)
    assert forced.requests == 5 and forced.inserted == 0


def test_a_window_fetched_before_its_data_was_complete_is_fetched_again(wh, api):
    now = dt.datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    lo, hi = now - dt.timedelta(hours=3), now - dt.timedelta(hours=1)
    fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    again = fill_gap(IrisLoader(wh), "FREQ", lo, hi, client=client(api))
    assert again.skipped == 0 and again.requests == 1  # fetched an hour after it ended: maybe incomplete
