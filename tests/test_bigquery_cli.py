"""The command line against BigQuery (the emulator): what an operator runs in production.

``WAREHOUSE_URL=bigquery://PROJECT/DATASET`` and ``BIGQUERY_API_ENDPOINT`` (anonymous credentials)
point every command at the emulator: P114 files load, the IRIS worker reads Service Bus (the AMQP
peer, real SDK) and loads every message once, ``report --dry-run`` asks BigQuery for the bytes,
``refresh`` writes the dashboard and ``status`` reads it all back.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from click.testing import CliRunner

from ingest.iris.generate import IrisGenerator
from ingest.p114.generate import sample_units, write_s0142
from run import cli
from tests.conftest import LONG_DAY, SHORT_DAY
from tests.peers.servicebus import FakeServiceBus
from warehouse.bigquery import BigQueryOptions, BigQueryWarehouse

pytestmark = pytest.mark.bigquery
QUEUE = "iris.cli-test"


def test_the_pipeline_runs_from_the_command_line_on_bigquery(bigquery_emulator, tmp_path):
    dataset = f"cli_{uuid.uuid4().hex[:8]}"
    env = {"WAREHOUSE_URL": f"bigquery://{bigquery_emulator.project}/{dataset}",
           "BIGQUERY_API_ENDPOINT": bigquery_emulator.endpoint, "BIGQUERY_LOCATION": "EU",
           "GOOGLE_APPLICATION_CREDENTIALS": "", "SETTINGS_FILE": "", "SHEETS_SPREADSHEET_ID": "",
           "OUTPUT_DIR": str(tmp_path / "out")}

    def run(*args):
        result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    # P114: a 46- and a 50-period day, two runs of one of them
    units = sample_units(12, 3, seed=3)
    files = [write_s0142(tmp_path, day, run_, units=units, seed=3) for day, run_ in
             [(SHORT_DAY, "II"), (SHORT_DAY, "SF"), (LONG_DAY, "II")]]
    out = run("load", "p114", *map(str, files))
    assert out.count(": loaded") == 3
    assert "already loaded; skipped" in run("load", "p114", str(files[0]))

    # IRIS from Service Bus, then the same messages redelivered: loaded once
    bus = FakeServiceBus(lock_duration_s=5).start()
    try:
        messages = list(IrisGenerator(dt.datetime(2024, 10, 27, tzinfo=dt.timezone.utc), seed=2).messages(150))
        for m in messages[:100] + messages[:50] + messages[100:]:
            bus.send(QUEUE, m.body(), message_id=m.message_id, subject=m.subject)
        out = run("ingest", "iris", "--connection-string", bus.connection_string, "--queue", QUEUE,
                  "--batch-size", "60", "--exit-when-idle", "2")
        assert len(bus.snapshot(QUEUE)["completed"]) == 200
    finally:
        bus.stop()
    wh = BigQueryWarehouse(bigquery_emulator.project, dataset, BigQueryOptions(api_endpoint=bigquery_emulator.endpoint))
    try:
        assert wh.scalar(f"SELECT COUNT(*) FROM {wh.ref('iris_message_ledger')}") == 150
        # every record is the current row of its key or a superseded version in a _history table
        tables = [t for t in wh.table_names() if t.startswith("bmrs_") and not t.endswith("_latest")]  # no views
        stored = sum(wh.scalar(f"SELECT COUNT(*) FROM {wh.ref(t)}") for t in tables)
        assert stored == sum(len(m.records) for m in messages)
        assert wh.scalar(f"SELECT COUNT(*) FROM {wh.ref('p114_file_manifest')}") == 3
    finally:
        wh.close()

    out = run("report", "vlp_revenue", "--from", str(SHORT_DAY), "--to", str(LONG_DAY), "--dry-run")
    assert re.search(r"vlp_revenue\.by_unit: [\d,]+ bytes", out) and "total:" in out
    out = run("report", "completeness", "--from", str(SHORT_DAY), "--to", str(SHORT_DAY), "--section", "p114",
              "--format", "csv")
    assert f"{SHORT_DAY},46," in out
    out = run("refresh", "--target", "local")
    assert "7 tabs written to" in out
    assert (tmp_path / "out" / "main.xlsx").stat().st_size > 0
    out = run("status")
    assert "FREQ" in out and "SF" in out
