"""Settings (one file + environment), ``config check``, and logs that never show a secret."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.config import BigQuerySettings, ScheduleSettings, SettingsError, load_settings
from run import cli

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "settings.example.toml"
SECRETS = {
    "ELEXON_PORTAL_KEY": "portal-key-SECRET-1234",
    "IRIS_CLIENT_SECRET": "iris-client-SECRET-5678",
}


def test_the_example_settings_file_loads_and_documents_every_key():
    settings = load_settings(EXAMPLE, environ={})
    assert settings.source == str(EXAMPLE) and settings.warehouse_url == "duckdb:///data/warehouse.duckdb"
    text = EXAMPLE.read_text()
    for section, cls in (("schedule", ScheduleSettings), ("bigquery", BigQuerySettings)):
        assert f"[{section}]" in text
        for f in dataclasses.fields(cls):
            assert re.search(rf"^#? ?{f.name} =", text, re.MULTILINE), f"[{section}] {f.name} is not documented"
    for key in ("vlp_units", "min_mwh", "threshold", "run_due_working_days", "queue_name", "client_id",
                "secret_expires", "batch_size", "cache_dir", "portal_url", "runs", "credentials_file", "endpoint"):
        assert re.search(rf"^#? ?{key} =", text, re.MULTILINE), f"{key} is not documented"


@pytest.mark.parametrize("toml, message", [
    ("[schedule]\nrefresh_minutes = 'often'\n", "[schedule] refresh_minutes must be a number"),
    ("[schedule]\np114_fetch_at = '7.30'\n", "[schedule] p114_fetch_at must be a time HH:MM"),
    ("[schedule]\ngap_fill_datasets = ['FREQ', 'NOPE']\n", "no Insights API endpoint for NOPE"),
    ("[schedule]\nrefresh_every = 5\n", "unknown key 'refresh_every' in [schedule]"),
    ("[p114]\nruns = ['SF', 'R9']\n", "[p114] runs must be a list of settlement runs"),
    ("[p114]\ncache_dir = 7\n", "[p114] cache_dir must be a string, got 7"),
    ("[iris]\nbatch_size = '500x'\n", "[iris] batch_size must be a whole number of messages (at least 1), got '500x'"),
    ("[iris]\nbatch_size = 0\n", "[iris] batch_size must be a whole number of messages (at least 1), got 0"),
    ("[iris]\nqueue_name = 42\n", "[iris] queue_name must be a string, got 42"),
    ("[iris]\nclient_secret = 918273645\n", "[iris] client_secret must be a string, got int (the value is not shown: a secret)"),
    ("[bigquery]\nmaximum_bytes_billed = -1\n", "[bigquery] maximum_bytes_billed must be a positive"),
    ("[reporting]\nthreshold = 2\n", "[reporting] threshold must be between 0 and 1"),
    ("[sheduler]\n", "unknown section [sheduler]"),
    ("[schedule\n", "not valid TOML"),
])
def test_a_wrong_setting_is_named_with_its_file_section_and_key(tmp_path, toml, message):
    path = tmp_path / "settings.toml"
    path.write_text(toml)
    with pytest.raises(SettingsError) as err:
        load_settings(path, environ={})
    assert message in str(err.value) and str(path) in str(err.value)
    result = CliRunner().invoke(cli, ["--settings", str(path), "config", "check"])
    assert result.exit_code == 1 and message in result.output
    assert "918273645" not in result.output


def test_config_check_says_what_is_configured_and_shows_no_secret(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text('[iris]\nqueue_name = "iris.abc"\nclient_id = "client-1"\nsecret_expires = 2099-01-01\n'
                        '[schedule]\nrefresh_minutes = 15\n')
    env = {**SECRETS, "SETTINGS_FILE": str(settings), "WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb",
           "IRIS_CONNECTION_STRING": ""}
    result = CliRunner().invoke(cli, ["config", "check", "--connect"], env=env)
    assert result.exit_code == 0, result.output
    out = result.output
    assert f"settings file: {settings}" in out
    assert "IRIS: queue iris.abc on elexon-insights-iris.servicebus.windows.net (client id client-1, client secret set)" in out
    assert "Elexon Portal: key set" in out and "refresh every 15 min" in out
    assert "warehouse: connected" in out and "Settings OK." in out
    for secret in SECRETS.values():
        assert secret not in out


def test_config_check_lists_alert_rules_and_targets_without_their_urls(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text('[alerts.targets]\ndesk = "json://hooks.example.com/${HOOK_PATH}"\n'
                        '[[alerts.rules]]\nname = "band"\nkind = "frequency"\n'
                        '[[alerts.rules]]\nname = "secret"\nkind = "secret_expiry"\n')
    result = CliRunner().invoke(cli, ["--settings", str(settings), "config", "check"],
                                env={"HOOK_PATH": "T000/B000/very-secret-token", "IRIS_SECRET_EXPIRES": ""})
    out = result.output
    assert "alert target desk: json:// URL; rules: band, secret" in out
    assert "alert rule band (frequency): frequency outside 49.8-50.2 Hz for at least 30 s → desk" in out
    assert "PROBLEM: alert rule secret: [iris] secret_expires (or IRIS_SECRET_EXPIRES) is not set" in out
    assert "very-secret-token" not in out and result.exit_code == 1


def test_config_check_exits_1_on_a_problem_it_can_only_find_by_looking(tmp_path):
    settings = tmp_path / "settings.toml"
    settings.write_text('[schedule]\ndashboards = ["main", "missing"]\n'
                        '[iris]\nqueue_name = "iris.abc"\nclient_id = "c"\nclient_secret = "s-e-c-r-e-t"\n'
                        'secret_expires = 2020-01-01\n'
                        '[sheets.spreadsheets]\nmian = "1AbC"\n')
    result = CliRunner().invoke(cli, ["--settings", str(settings), "config", "check"])
    assert result.exit_code == 1
    assert "PROBLEM: dashboard missing: no dashboard layout" in result.output
    assert "PROBLEM: [sheets.spreadsheets] mian: no dashboard layout" in result.output  # a typo of main
    assert "PROBLEM: IRIS: the client secret expired on 2020-01-01" in result.output
    assert "s-e-c-r-e-t" not in result.output


def test_no_secret_reaches_any_log_line_even_at_debug_in_json(tmp_path, portal, monkeypatch):
    """Secrets from the environment, through calls whose libraries log URLs, tokens and retries."""
    from tests.peers.servicebus import FakeServiceBus
    from tests.test_iris_servicebus import enqueue

    monkeypatch.setenv("ELEXON_PORTAL_KEY", SECRETS["ELEXON_PORTAL_KEY"])
    portal.key = SECRETS["ELEXON_PORTAL_KEY"]
    portal.fail("/p114/list", 500, 500)  # retried: urllib3 logs each request line at DEBUG
    bus = FakeServiceBus(lock_duration_s=5).start()
    try:
        enqueue(bus, 5)
        connection = bus.connection_string
        key = re.search(r"SharedAccessKey=([^;]+)", connection).group(1)
        env = {"IRIS_CLIENT_SECRET": SECRETS["IRIS_CLIENT_SECRET"], "IRIS_CONNECTION_STRING": connection,
               "IRIS_QUEUE_NAME": "iris.test-queue", "WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"}
        seen = []
        for args in (["backfill", "p114", "2024-10-01", "2024-10-01", "--runs", "II", "--source", "portal",
                      "--cache-dir", str(tmp_path / "cache")],
                     ["ingest", "iris", "--exit-when-idle", "2"],
                     ["config", "check"],
                     ["status"]):
            result = CliRunner().invoke(cli, ["--log-level", "DEBUG", "--log-json", *args], env=env)
            assert result.exit_code == 0, result.output
            for line in result.stderr.splitlines():
                if line.startswith("{"):
                    json.loads(line)  # each log line is one JSON object
            seen.append(result.output + result.stderr)
    finally:
        bus.stop()
    everything = "\n".join(seen)
    assert '"GET /p114/list?key=***' in everything  # the request lines were logged, redacted
    assert "connected to IRIS queue iris.test-queue" in everything and '"logger": "azure.servicebus' in everything
    for secret in [*SECRETS.values(), key]:
        assert secret not in everything, f"a secret leaked: {secret[:6]}…"


def test_only_the_settings_module_reads_the_environment():
    """Settings are resolved once (core/config.py) and passed down; no module reads os.environ on its own."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    readers = [f"{path.relative_to(root)}:{n}" for package in ("core", "ingest", "ops", "reporting", "warehouse")
               for path in (root / package).rglob("*.py")
               for n, line in enumerate(path.read_text().splitlines(), start=1)
               if re.search(r"os\.environ|os\.getenv", line)]
    assert readers and all(r.startswith("core/config.py:") for r in readers), readers
    assert "os.environ" not in (root / "run.py").read_text()


def test_the_azure_sdks_connection_chatter_shows_only_at_debug_and_its_warnings_always():
    import io
    import logging

    from core.logs import setup_logging

    sdk = logging.getLogger("azure.servicebus._base_handler")
    for level, shown in (("INFO", ["a warning"]), ("DEBUG", ["a retry", "a warning"])):
        out = io.StringIO()
        setup_logging(level, stream=out)
        try:
            sdk.info("a retry")
            sdk.warning("a warning")
            logging.getLogger("ingest.iris.servicebus").info("our own line")
        finally:
            setup_logging("INFO")
        lines = out.getvalue()
        assert [m for m in ("a retry", "a warning") if m in lines] == shown and "our own line" in lines
