"""The IRIS worker against a local AMQP 1.0 peer, driving the real azure-servicebus SDK."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from azure.servicebus import ServiceBusClient

from ingest.iris.config import IrisSettings
from ingest.iris.generate import IrisGenerator
from ingest.iris.load import IrisLoader
from ingest.iris.servicebus import IrisWorker
from tests.peers.servicebus import FakeServiceBus
from warehouse.base import WarehouseError, WarehouseUnavailable
from warehouse.duckdb import DuckDBWarehouse

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "iris.test-queue"
START = dt.datetime(2026, 5, 6, 3, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def bus():
    fake = FakeServiceBus(lock_duration_s=5).start()
    yield fake
    fake.stop()


def enqueue(bus: FakeServiceBus, count: int, seed: int = 1, queue: str = QUEUE):
    messages = list(IrisGenerator(START, seed=seed).messages(count))
    for m in messages:
        bus.send(queue, m.body(), message_id=m.message_id, subject=m.subject)
    return messages


def expected_rows(messages) -> int:
    return sum(len(m.records) for m in messages)


def settings(bus: FakeServiceBus) -> IrisSettings:
    return IrisSettings.load(connection_string=bus.connection_string, queue_name=QUEUE, environ={})


def run_worker(wh, bus, timeout=60, **kwargs) -> IrisWorker:
    kwargs.setdefault("max_wait_s", 0.5)
    kwargs.setdefault("exit_when_idle_s", 1.0)
    kwargs.setdefault("backoff_max_s", 0.5)
    worker = IrisWorker(IrisLoader(wh), settings(bus), **kwargs)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "the worker did not finish"
    return worker


def stored_rows(wh, history: bool = False) -> int:
    """Rows in the current dataset tables (or, with ``history``, in their history tables)."""
    tables = [r["table_name"] for r in wh.query_rows(
        "SELECT table_name FROM information_schema.tables WHERE table_name LIKE 'bmrs_%' "
        "AND table_type = 'BASE TABLE'")]
    return sum(wh.scalar(f"SELECT COUNT(*) FROM {t}") for t in tables if t.endswith("_history") == history)


def assert_loaded_exactly_once(wh, messages) -> None:
    # every record is either the current row of its key or a superseded version in history
    assert stored_rows(wh) + stored_rows(wh, history=True) == expected_rows(messages)
    assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == len(messages)
    assert wh.scalar("SELECT COUNT(DISTINCT message_id) FROM iris_message_ledger") == len(messages)


def test_happy_path_every_message_loaded_and_completed(bus, wh):
    messages = enqueue(bus, 300)
    worker = run_worker(wh, bus, batch_size=100)
    assert worker.summary.messages == 300 and worker.summary.rows == expected_rows(messages)
    assert_loaded_exactly_once(wh, messages)
    snap = bus.snapshot(QUEUE)
    assert sorted(snap["completed"]) == sorted(m.message_id for m in messages)
    assert snap["available"] == snap["locked"] == snap["dead_lettered"] == []
    row = wh.query_rows("SELECT _source, _message_id FROM bmrs_freq LIMIT 1")[0]
    assert row["_source"] == "iris" and row["_message_id"].startswith("FREQ_")
    ledger = wh.query_rows("SELECT * FROM iris_message_ledger WHERE message_id = @m", {"m": messages[0].message_id})[0]
    assert ledger["enqueued_at"] is not None and ledger["sequence_number"] == 1 and ledger["delivery_count"] == 0


def test_a_message_abandoned_elsewhere_is_redelivered_and_loaded_once(bus, wh):
    messages = enqueue(bus, 20)
    with ServiceBusClient.from_connection_string(bus.connection_string) as client:
        with client.get_queue_receiver(QUEUE, max_wait_time=2) as receiver:
            first = receiver.receive_messages(max_message_count=5, max_wait_time=2)
            for m in first:
                receiver.abandon_message(m)
    run_worker(wh, bus)
    assert_loaded_exactly_once(wh, messages)
    counts = {r["message_id"]: r["delivery_count"] for r in
              wh.query_rows("SELECT message_id, delivery_count FROM iris_message_ledger")}
    assert {counts[m.message_id] for m in first} == {1}


class FlakyWarehouse(DuckDBWarehouse):
    """Fails the first ``failures`` writes of data, as a locked or unreachable warehouse would."""

    def __init__(self, path, failures=1, delay_s=0.0):
        super().__init__(path)
        self.failures, self.delay_s = failures, delay_s

    def write(self, batches, deletes=()):
        batches = list(batches.items()) if isinstance(batches, dict) else list(batches)
        names = [b.table if hasattr(b, "table") else b[0] for b in batches]
        if any(n.startswith("bmrs_") for n in names):
            if self.failures > 0:
                self.failures -= 1
                raise WarehouseUnavailable("warehouse unavailable (test)")
            time.sleep(self.delay_s)
        return super().write(batches, deletes)


def test_a_failed_write_holds_the_batch_and_commits_it_when_the_warehouse_is_back(bus, tmp_path):
    messages = enqueue(bus, 50)
    wh = FlakyWarehouse(tmp_path / "w.duckdb", failures=3)
    worker = run_worker(wh, bus, batch_size=50)
    assert_loaded_exactly_once(wh, messages)
    assert wh.scalar("SELECT MAX(delivery_count) FROM iris_message_ledger") == 0  # no delivery attempt used
    assert bus.snapshot(QUEUE)["dead_lettered"] == [] and wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 0
    assert worker.summary.messages == 50 and worker.summary.outages == 1
    outage = wh.query_rows("SELECT attempts, messages_held, locks_lost FROM iris_outages")
    assert outage == [{"attempts": 3, "messages_held": 50, "locks_lost": 0}]
    wh.close()


def test_locks_are_renewed_while_a_slow_write_runs(bus, tmp_path):
    messages = enqueue(bus, 30)
    wh = FlakyWarehouse(tmp_path / "w.duckdb", failures=0, delay_s=7.0)  # lock duration is 5 s
    worker = run_worker(wh, bus, batch_size=30, lock_margin_s=2.5)
    assert worker.summary.completion_failures == 0
    assert worker.summary.duplicate_messages == 0
    assert_loaded_exactly_once(wh, messages)
    assert bus.snapshot(QUEUE)["completed"] and len(bus.settlements) == 30
    wh.close()


def test_a_lost_lock_means_a_redelivery_that_loads_nothing_twice(bus, tmp_path):
    messages = enqueue(bus, 30)
    bus.refuse_renewals = True
    wh = FlakyWarehouse(tmp_path / "w.duckdb", failures=0, delay_s=7.0)
    worker = run_worker(wh, bus, batch_size=30, lock_margin_s=2.5)
    assert worker.summary.completion_failures == 30  # every lock expired during the write
    assert worker.summary.duplicate_messages == 30  # the redeliveries were recognised
    assert_loaded_exactly_once(wh, messages)
    snap = bus.snapshot(QUEUE)
    assert sorted(snap["completed"]) == sorted(m.message_id for m in messages)
    wh.close()


def test_peer_killed_and_restarted_mid_stream_loses_and_doubles_nothing(bus, wh, caplog):
    messages = enqueue(bus, 400)
    restarted = threading.Event()

    def on_batch(summary):
        if summary.batches == 1 and not restarted.is_set():
            restarted.set()
            bus.stop()  # the broker goes away (its queue survives, as Service Bus queues do) ...

            def back():
                time.sleep(1.5)
                bus.start()  # ... and comes back on the same port

            threading.Thread(target=back, daemon=True).start()

    with caplog.at_level(logging.WARNING, logger="ingest.iris.servicebus"):
        worker = run_worker(wh, bus, batch_size=50, on_batch=on_batch, exit_when_idle_s=8.0, timeout=120)
    assert restarted.is_set() and worker.summary.reconnects >= 1
    problems = [r.getMessage() for r in caplog.records if "IRIS connection problem" in r.getMessage()]
    host = bus.connection_string.split("Endpoint=sb://", 1)[1].split("/", 1)[0].split(";", 1)[0]
    assert problems and all(f"IRIS connection problem, queue {QUEUE} at {host} (" in m for m in problems)
    assert not any("SharedAccessKey" in m for m in problems)
    assert_loaded_exactly_once(wh, messages)
    snap = bus.snapshot(QUEUE)
    assert snap["available"] == snap["locked"] == []
    assert sorted(set(snap["completed"])) == sorted(m.message_id for m in messages)


def test_kill_9_between_commit_and_complete_loses_and_doubles_nothing(bus, tmp_path):
    messages = enqueue(bus, 120)
    db = tmp_path / "w.duckdb"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "WAREHOUSE_URL": f"duckdb:///{db}"}
    cmd = [sys.executable, str(ROOT / "run.py"), "--log-level", "WARNING", "ingest", "iris",
           "--connection-string", bus.connection_string, "--queue", QUEUE, "--batch-size", "40",
           "--exit-when-idle", "3"]
    bus.hold_settlements = True  # dispositions reach the broker but are not confirmed yet
    worker = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not bus.held:  # a completion is only sent after the batch's commit
        assert time.time() < deadline and worker.poll() is None, worker.stderr.read() if worker.poll() else ""
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=10)
    bus.discard_held()  # the completions died with the worker's connection

    with DuckDBWarehouse(db) as wh:  # the first batch is committed, its messages not completed
        assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 40
    assert len(bus.snapshot(QUEUE)["completed"]) == 0

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    # the 40 committed messages come back and are recognised (a prefetched one may also outlive its
    # short test lock and come back once more: also recognised)
    redeliveries = int(re.search(r"(\d+) already loaded \(redeliveries\)", rerun.stdout).group(1))
    assert redeliveries >= 40
    with DuckDBWarehouse(db) as wh:
        assert_loaded_exactly_once(wh, messages)
    assert sorted(bus.snapshot(QUEUE)["completed"]) == sorted(m.message_id for m in messages)


def test_a_poison_message_is_quarantined_and_completed_while_the_rest_load(bus, wh):
    messages = enqueue(bus, 10)
    bus.send(QUEUE, b"\x00\x01 not json at all", message_id="poison-1", subject="BOALF")
    bad_row = [{"dataset": "FREQ", "measurementTime": "not a time", "frequency": 50.0},
               {"dataset": "FREQ", "measurementTime": "2026-05-06T04:00:00.000Z", "frequency": 49.95}]
    bus.send(QUEUE, json.dumps(json.dumps(bad_row)), message_id="FREQ_bad_row.json", subject="FREQ")
    worker = run_worker(wh, bus)
    assert worker.summary.quarantined == 2 and worker.summary.dead_lettered == 0
    assert stored_rows(wh) == expected_rows(messages) + 1
    quarantined = {r["message_id"]: r for r in wh.query_rows("SELECT * FROM iris_quarantine")}
    assert quarantined["poison-1"]["record_index"] is None
    assert "body is not JSON" in quarantined["poison-1"]["reason"]
    assert quarantined["poison-1"]["raw"].endswith("not json at all")
    assert quarantined["FREQ_bad_row.json"]["record_index"] == 0
    assert "field measurementTime: 'not a time' is not a valid TIMESTAMP" == quarantined["FREQ_bad_row.json"]["reason"]
    completed = bus.snapshot(QUEUE)["completed"]
    assert "poison-1" in completed and "FREQ_bad_row.json" in completed


def test_an_unknown_dataset_gets_its_own_table_with_inferred_types(bus, wh):
    rows = [{"dataset": "NEWDS", "publishTime": "2026-05-06T03:00:00.000Z", "settlementDate": "2026-05-06",
             "value": 1.5, "count": 3, "flag": True, "label": "x", "profile": [{"a": 1}]}]
    bus.send(QUEUE, json.dumps(json.dumps(rows)), message_id="NEWDS_1.json", subject="NEWDS")
    run_worker(wh, bus)
    assert wh.logical_columns("bmrs_newds") == {
        "dataset": "STRING", "publish_time": "TIMESTAMP", "settlement_date": "DATE", "value": "FLOAT64",
        "count": "INT64", "flag": "BOOL", "label": "STRING", "profile": "JSON", "_message_id": "STRING",
        "_source": "STRING", "_ingested_at": "TIMESTAMP", "_message_time": "TIMESTAMP",
    }
    changes = wh.query_rows("SELECT table_name, change FROM iris_schema_changes")
    assert changes == [{"table_name": "bmrs_newds", "change": "new table"}]


def test_a_new_field_becomes_a_nullable_column_recorded_once(bus, wh):
    base = {"dataset": "FREQ", "frequency": 50.0}
    old = [{**base, "measurementTime": "2026-05-06T03:01:00.000Z"}]
    bus.send(QUEUE, json.dumps(json.dumps(old)), message_id="FREQ_old.json", subject="FREQ")
    for i in range(3):
        rows = [{**base, "measurementTime": f"2026-05-06T03:00:{i * 15:02d}.000Z", "qualityFlag": "G"}]
        bus.send(QUEUE, json.dumps(json.dumps(rows)), message_id=f"FREQ_{i}.json", subject="FREQ")
    run_worker(wh, bus, batch_size=1)
    assert wh.logical_columns("bmrs_freq")["quality_flag"] == "STRING"
    new_columns = wh.query_rows("SELECT column_name FROM iris_schema_changes WHERE change = 'new column'")
    assert new_columns == [{"column_name": "quality_flag"}]
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq WHERE quality_flag IS NULL") == 1
    assert wh.scalar("SELECT COUNT(*) FROM bmrs_freq WHERE quality_flag = 'G'") == 3


def test_stop_finishes_the_batch_in_hand_and_leaves_the_rest_on_the_queue(bus, wh):
    enqueue(bus, 200)
    worker_box = {}

    def on_batch(summary):
        worker_box["w"].stop()

    worker = IrisWorker(IrisLoader(wh), settings(bus), batch_size=50, max_wait_s=0.5, on_batch=on_batch)
    worker_box["w"] = worker
    worker.run()
    snap = bus.snapshot(QUEUE)
    assert len(snap["completed"]) == 50 and worker.summary.messages == 50
    assert wh.scalar("SELECT COUNT(*) FROM iris_message_ledger") == 50
    time.sleep(0.3)  # prefetched but unprocessed messages were released back to the queue
    assert len(bus.snapshot(QUEUE)["locked"]) == 0


# ---------------------------------------------------------------------------------------- outages of ours
class DownFor(DuckDBWarehouse):
    """A warehouse whose writes of data fail as unavailable until ``seconds`` after the first attempt."""

    def __init__(self, path, seconds: float):
        super().__init__(path)
        self.seconds, self.first = seconds, None

    def write(self, batches, deletes=()):
        batches = list(batches.items()) if isinstance(batches, dict) else list(batches)
        if any((b.table if hasattr(b, "table") else b[0]).startswith("bmrs_") for b in batches):
            self.first = self.first or time.monotonic()
            if time.monotonic() - self.first < self.seconds:
                raise WarehouseUnavailable("IO Error: could not write to the warehouse (test outage)")
        return super().write(batches, deletes)


def test_a_warehouse_down_for_several_lock_periods_loses_dead_letters_and_quarantines_nothing(bus, tmp_path):
    messages = enqueue(bus, 300)
    wh = DownFor(tmp_path / "w.duckdb", seconds=12.0)  # the lock is 5 s: held through more than two lock periods
    worker = run_worker(wh, bus, batch_size=100, lock_margin_s=2.5, timeout=120)
    assert_loaded_exactly_once(wh, messages)
    assert bus.snapshot(QUEUE)["dead_lettered"] == [] and wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 0
    assert wh.scalar("SELECT MAX(delivery_count) FROM iris_message_ledger") == 0
    assert worker.summary.outages == 1 and worker.summary.completion_failures == 0
    outage = wh.query_rows("SELECT seconds, messages_held, locks_lost FROM iris_outages")[0]
    assert outage["seconds"] >= 12.0 and outage["messages_held"] == 100 and outage["locks_lost"] == 0
    wh.close()


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MB file system for the warehouse: a tmpfs where this process may mount one (root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)],
                             capture_output=True).returncode == 0
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (not root); the file-size-limit variant covers a full disk")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Fill ``disk`` to the last byte; return the filler file (delete it to free the space)."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for size in (1 << 20, 4096, 1):
            try:
                while os.write(fd, b"\0" * size):
                    pass
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_holds_the_batch_and_every_message_loads_once_when_space_returns(bus, small_disk):
    wh = DuckDBWarehouse(small_disk / "w.duckdb")
    IrisLoader(wh)  # the bookkeeping tables exist before the disk fills
    wh.close()
    messages = enqueue(bus, 200)
    filler = fill(small_disk)
    threading.Timer(6.0, filler.unlink).start()  # space comes back after a few seconds
    worker = run_worker(wh, bus, batch_size=50, lock_margin_s=2.5, timeout=120, exit_when_idle_s=2.0)
    assert_loaded_exactly_once(wh, messages)
    assert bus.snapshot(QUEUE)["dead_lettered"] == [] and wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 0
    assert worker.summary.outages >= 1 and worker.summary.dead_lettered == 0
    assert "No space left" in wh.query_rows("SELECT error FROM iris_outages LIMIT 1")[0]["error"]
    wh.close()


def test_the_locks_of_a_whole_batch_are_kept_at_50_ms_per_round_trip(tmp_path):
    bus = FakeServiceBus(lock_duration_s=5, latency_s=0.05).start()
    try:
        messages = enqueue(bus, 300)
        wh = FlakyWarehouse(tmp_path / "w.duckdb", failures=0, delay_s=7.0)  # each write outlasts the lock
        worker = run_worker(wh, bus, batch_size=300, lock_margin_s=2.5, timeout=120)
        assert worker.summary.completion_failures == 0 and worker.summary.duplicate_messages == 0
        assert_loaded_exactly_once(wh, messages)
        assert wh.scalar("SELECT MAX(delivery_count) FROM iris_message_ledger") == 0
        assert sorted(bus.snapshot(QUEUE)["completed"]) == sorted(m.message_id for m in messages)
        wh.close()
    finally:
        bus.stop()


def test_settling_after_the_connection_was_cut_is_quiet_and_nothing_loads_twice(bus, tmp_path, caplog):
    messages = enqueue(bus, 40)

    class CutDuringWrite(FlakyWarehouse):
        cut = False

        def write(self, batches, deletes=()):
            out = super().write(batches, deletes)
            if not self.cut and self.table_columns("bmrs_freq") is not None:
                self.cut = True
                bus.drop_connections()  # the SDK rebuilds its connection; the batch in hand is settled after
            return out

    wh = CutDuringWrite(tmp_path / "w.duckdb", failures=0)
    with caplog.at_level("INFO"):
        run_worker(wh, bus, batch_size=20, timeout=120)
    assert_loaded_exactly_once(wh, messages)
    ours = [r for r in caplog.records if r.name.startswith("ingest.")]
    assert not [r for r in ours if r.levelname in ("ERROR", "CRITICAL") or r.exc_info], [r.getMessage() for r in ours]
    wh.close()


def test_a_file_size_limit_on_the_cli_worker_is_held_through_and_nothing_is_lost(bus, tmp_path):
    """The same fault through the real CLI, where no tmpfs can be mounted: writes fail with EFBIG."""
    import resource

    path = tmp_path / "w.duckdb"
    wh = DuckDBWarehouse(path)
    IrisLoader(wh)
    wh.close()
    messages = enqueue(bus, 150)
    limit = 32 * 1024  # the write-ahead log cannot grow past this: every data write fails

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    env = {**os.environ, "IRIS_CONNECTION_STRING": bus.connection_string, "IRIS_QUEUE_NAME": QUEUE}
    proc = subprocess.Popen([sys.executable, "run.py", "--warehouse", f"duckdb:///{path}", "ingest", "iris",
                             "--batch-size", "50", "--exit-when-idle", "3"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limited)
    deadline = time.monotonic() + 60
    err = ""
    while "holding" not in err and time.monotonic() < deadline:  # wait until the worker reports the outage
        if proc.poll() is not None:
            break
        line = proc.stderr.readline()
        err += line
    assert "File too large" in err or "holding" in err, err
    resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    out, rest = proc.communicate(timeout=120)
    assert proc.returncode == 0, err + rest
    wh = DuckDBWarehouse(path)
    assert_loaded_exactly_once(wh, messages)
    assert bus.snapshot(QUEUE)["dead_lettered"] == [] and wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 0
    assert wh.scalar("SELECT COUNT(*) FROM iris_outages") >= 1
    wh.close()


# ---------------------------------------------------------------------------------------- the user's real world
def hostile_messages() -> list[tuple[str, str, list[dict]]]:
    """(message id, subject, records): every fault of issue #9, each beside good records."""
    def boalf(level_from, number, amendment="ORI"):
        return {"dataset": "BOALF", "settlementDate": "2026-05-06", "settlementPeriodFrom": 9,
                "settlementPeriodTo": 9, "timeFrom": "2026-05-06T03:00:00Z", "timeTo": "2026-05-06T03:10:00Z",
                "levelFrom": level_from, "levelTo": 10, "acceptanceNumber": number,
                "acceptanceTime": "2026-05-06T02:55:00Z", "deemedBoFlag": False, "soFlag": False,
                "amendmentFlag": amendment, "storFlag": False, "rrFlag": False, "nationalGridBmUnit": "FBPGM002",
                "bmUnit": "2__FBPGM002"}

    def disbsad(cost):
        return {"dataset": "DISBSAD", "settlementDate": "2026-05-06", "settlementPeriod": 9, "id": 77, "cost": cost,
                "volume": 5.0, "soFlag": True, "storFlag": False, "service": "Energy"}

    return [
        ("NEWDS_1.json", "NEWDS", [{"dataset": "NEWDS", "a": 1, "b": "x"}]),
        ("NEWDS_2.json", "NEWDS", [{"dataset": "NEWDS", "b": "y"}]),  # lacks the optional field a
        ("FREQ_clash.json", "FREQ", [{"dataset": "FREQ", "measurementTime": "2026-05-06T01:00:00Z", "frequency": 50.0,
                                      "_message_id": "spoof"}]),
        ("DISBSAD_1.json", "DISBSAD", [disbsad(1000.0)]),
        ("DISBSAD_2.json", "DISBSAD", [disbsad(1500.0)]),  # the correction, sent later
        ("BOALF_levels.json", "BOALF", [boalf(12.7, 1), boalf(13, 2)]),
        ("BOALF_amended.json", "BOALF", [boalf(11, 2, "AMD")]),
        ("FREQ_nokey.json", "FREQ", [{"dataset": "FREQ", "frequency": 49.9}, {"dataset": "FREQ", "frequency": 50.1},
                                     {"dataset": "FREQ", "measurementTime": "2026-05-06T01:00:15Z", "frequency": 50.0}]),
    ]


def assert_hostile_outcome(wh) -> None:
    assert wh.query_rows("SELECT a, b FROM bmrs_newds ORDER BY b") == [{"a": 1, "b": "x"}, {"a": None, "b": "y"}]
    assert wh.scalar("SELECT payload_message_id FROM bmrs_freq WHERE _message_id = 'FREQ_clash.json'") == "spoof"
    assert wh.scalar("SELECT cost FROM bmrs_disbsad WHERE id = 77") == 1500.0
    assert wh.scalar("SELECT cost FROM bmrs_disbsad_history WHERE id = 77") == 1000.0
    assert wh.query_rows("SELECT acceptance_number, level_from, amendment_flag FROM bmrs_boalf "
                         "WHERE bm_unit = '2__FBPGM002'") == [{"acceptance_number": 2, "level_from": 11,
                                                                "amendment_flag": "AMD"}]
    reasons = sorted(r["reason"].split(":")[0] for r in wh.query_rows(
        "SELECT reason FROM iris_quarantine WHERE message_id IN ('BOALF_levels.json', 'FREQ_nokey.json')"))
    assert reasons == ["field levelFrom", "missing natural-key field measurementTime (the key of FREQ is "
                       "measurement_time)", "missing natural-key field measurementTime (the key of FREQ is "
                       "measurement_time)"]
    assert wh.scalar("SELECT COUNT(*) FROM iris_quarantine") == 3


def test_every_real_world_fault_beside_good_messages_through_the_sdk(bus, wh):
    good = enqueue(bus, 60)
    for message_id, subject, records in hostile_messages():
        bus.send(QUEUE, json.dumps(json.dumps(records)), message_id=message_id, subject=subject)
        time.sleep(0.002)  # distinct enqueued times: the correction is the later message
    worker = run_worker(wh, bus, batch_size=25)
    assert worker.summary.dead_lettered == 0 and bus.snapshot(QUEUE)["dead_lettered"] == []
    assert sorted(bus.snapshot(QUEUE)["completed"]) == sorted([m.message_id for m in good]
                                                              + [m for m, _, _ in hostile_messages()])
    assert_hostile_outcome(wh)


def test_the_same_faults_in_a_file_drop_replay_twice_through_the_cli(tmp_path):
    drop = tmp_path / "iris_data"
    for i, (message_id, subject, records) in enumerate(hostile_messages()):
        path = drop / subject / message_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(records))
        os.utime(path, (1_780_000_000 + i, 1_780_000_000 + i))  # arrival order = list order
    db = tmp_path / "w.duckdb"
    cmd = [sys.executable, "run.py", "--warehouse", f"duckdb:///{db}", "ingest", "iris", "--from-dir", str(drop),
           "--once"]
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "8 messages already loaded" in again.stdout, again.stdout + again.stderr
    with DuckDBWarehouse(db) as wh:
        assert_hostile_outcome(wh)
