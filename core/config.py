"""Settings: one TOML file (``settings.toml``, kept out of git) plus environment variables.

Where a value comes from, first match wins: a command-line option, an environment variable, the
settings file, the default. The file is ``--settings PATH``, else ``$SETTINGS_FILE``, else
``./settings.toml`` if it exists. Secrets (Elexon Portal key, IRIS client secret, Google
credentials) may also come only from the environment. Every key is documented in
``settings.example.toml``; a wrong value is reported with its section, key and what is wrong.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from alerts.rules import AlertSettings, parse_alerts
from core.assets import FIELDS as ASSET_FIELDS
from core.assets import Asset, parse_asset
from core.errors import SettingsError
from core.logs import register_secret
from core.settlement import RUN_PRECEDENCE

DEFAULT_SETTINGS_FILE = "settings.toml"


@dataclass
class ReportingSettings:
    vlp_units: list[str] = field(default_factory=list)
    assets: list[Asset] = field(default_factory=list)  # [[reporting.assets]]: the units reports are about
    min_mwh: float = 1.0
    threshold: float = 0.5
    run_due_working_days: dict[str, int] = field(
        default_factory=lambda: {"II": 5, "SF": 16, "R1": 35, "R2": 80, "R3": 150, "RF": 290})


@dataclass
class SheetsSettings:
    spreadsheets: dict[str, str] = field(default_factory=dict)  # dashboard name -> spreadsheet id
    credentials_file: str | None = None  # service account JSON; else Application Default Credentials
    endpoint: str | None = None  # Sheets API base URL (tests point it at a local server)


@dataclass
class ScheduleSettings:
    """What ``run.py schedule`` runs (times are Europe/London wall-clock times)."""

    iris_worker: bool = True  # keep the IRIS worker running in the scheduler's process (if IRIS is configured)
    refresh_minutes: float = 60.0  # refresh the dashboards every N minutes (0: never)
    dashboards: list[str] = field(default_factory=lambda: ["main"])
    p114_fetch_at: str | None = "07:30"  # daily Portal fetch of newly published S0142 files (None: off)
    p114_lookback_days: int = 450  # settlement dates checked by the daily fetch (RF comes ~14 months later)
    gap_fill_at: str | None = "05:15"  # daily Insights API fill of what IRIS missed (None: off)
    gap_fill_days: int = 2  # UTC days before today that the gap fill re-reads
    gap_fill_datasets: list[str] = field(default_factory=lambda: [
        "FREQ", "FUELINST", "BOALF", "MELS", "MILS", "PN", "MID", "INDGEN", "INDDEM", "MELNGC", "IMBALNGC"])


@dataclass
class BigQuerySettings:
    location: str | None = None
    credentials_file: str | None = None  # service account JSON; else Application Default Credentials
    api_endpoint: str | None = None  # another endpoint, anonymous credentials (an emulator)
    maximum_bytes_billed: int | None = None

    def options(self):
        from warehouse.bigquery import BigQueryOptions

        return BigQueryOptions(self.location, self.credentials_file, self.api_endpoint, self.maximum_bytes_billed)


@dataclass
class ElexonSettings:
    """Where Elexon's services are and the Portal key (``ELEXON_PORTAL_KEY``, ``ELEXON_PORTAL_URL`` or
    ``[p114] portal_url``, ``INSIGHTS_API_URL``); None means the public service."""

    portal_key: str | None = field(default=None, repr=False)
    portal_url: str | None = None
    insights_url: str | None = None


#: environment variables the IRIS connection settings read (see ingest.iris.config), captured once
IRIS_ENVIRONMENT = ("IRIS_CONNECTION_STRING", "IRIS_QUEUE_NAME", "IRIS_CLIENT_ID", "IRIS_CLIENT_SECRET",
                    "IRIS_TENANT_ID", "IRIS_NAMESPACE", "IRIS_SECRET_EXPIRES")


@dataclass
class Settings:
    source: str | None = None  # the settings file read, if any
    warehouse_url: str | None = None
    table_prefix: str = ""  # [warehouse] table_prefix: the project's tables are prefix + name
    elexon: ElexonSettings = field(default_factory=ElexonSettings)
    iris_environment: dict[str, str] = field(default_factory=dict, repr=False)
    bigquery: BigQuerySettings = field(default_factory=BigQuerySettings)
    output_dir: str = "out"
    p114: dict[str, Any] = field(default_factory=dict)
    iris: dict[str, Any] = field(default_factory=dict)
    reporting: ReportingSettings = field(default_factory=ReportingSettings)
    sheets: SheetsSettings = field(default_factory=SheetsSettings)
    schedule: ScheduleSettings = field(default_factory=ScheduleSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)


def settings_path(explicit: str | None = None, environ: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get("SETTINGS_FILE"):
        return Path(env["SETTINGS_FILE"])
    default = Path(DEFAULT_SETTINGS_FILE)
    return default if default.exists() else None


def load_settings(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings file (if any), then apply environment variables."""
    env = os.environ if environ is None else environ
    file = settings_path(str(path) if path else None, env)
    data: dict[str, Any] = {}
    if file is not None:
        try:
            data = tomllib.loads(file.read_text())
        except FileNotFoundError:
            raise SettingsError(f"settings file {file} does not exist") from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{file}: not valid TOML: {exc}") from None
    where = str(file) if file else "environment"
    s = Settings(source=str(file) if file else None)
    known = {"warehouse", "bigquery", "output", "p114", "iris", "reporting", "sheets", "schedule", "alerts"}
    for section in data:
        if section not in known:
            raise SettingsError(f"{where}: unknown section [{section}]; known: {', '.join(sorted(known))}")

    warehouse = _section(data, "warehouse", where, {"url", "table_prefix"})
    s.warehouse_url = env.get("WAREHOUSE_URL") or _str(warehouse, "url", where, "warehouse")
    s.table_prefix = env.get("WAREHOUSE_TABLE_PREFIX") or _str(warehouse, "table_prefix", where, "warehouse") or ""
    if s.table_prefix and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", s.table_prefix):
        raise SettingsError(f"{where}: [warehouse] table_prefix (WAREHOUSE_TABLE_PREFIX) must be letters, digits "
                            f"and underscores, starting with a letter or underscore, such as \"ep_\"; got "
                            f"{s.table_prefix!r}")
    bq = _section(data, "bigquery", where, {"location", "credentials_file", "api_endpoint", "maximum_bytes_billed"})
    s.bigquery = BigQuerySettings(
        location=env.get("BIGQUERY_LOCATION") or _str(bq, "location", where, "bigquery"),
        credentials_file=(env.get("GOOGLE_APPLICATION_CREDENTIALS")
                          or _str(bq, "credentials_file", where, "bigquery")),
        api_endpoint=env.get("BIGQUERY_API_ENDPOINT") or _str(bq, "api_endpoint", where, "bigquery"),
    )
    if s.bigquery.credentials_file and not Path(s.bigquery.credentials_file).expanduser().exists():
        raise SettingsError(f"{where}: the Google credentials file {s.bigquery.credentials_file} does not exist "
                            "([bigquery] credentials_file or GOOGLE_APPLICATION_CREDENTIALS)")
    limit = env.get("BIGQUERY_MAXIMUM_BYTES_BILLED") or bq.get("maximum_bytes_billed")
    if limit is not None:
        try:
            s.bigquery.maximum_bytes_billed = int(limit)
            if s.bigquery.maximum_bytes_billed <= 0:
                raise ValueError
        except (TypeError, ValueError):
            raise SettingsError(f"{where}: [bigquery] maximum_bytes_billed must be a positive whole number of "
                                f"bytes, got {limit!r}") from None
    output = _section(data, "output", where, {"dir"})
    s.output_dir = env.get("OUTPUT_DIR") or _str(output, "dir", where, "output") or "out"
    s.p114 = _section(data, "p114", where, {"cache_dir", "portal_url", "runs"})
    for key in ("cache_dir", "portal_url"):
        _str(s.p114, key, where, "p114")
    if "runs" in s.p114:
        runs = s.p114["runs"]
        if not isinstance(runs, list) or not runs or any(r not in RUN_PRECEDENCE for r in runs):
            raise SettingsError(f"{where}: [p114] runs must be a list of settlement runs from "
                                f"{', '.join(RUN_PRECEDENCE)}, got {runs!r}")
    s.iris = _section(data, "iris", where, {"queue_name", "client_id", "client_secret", "tenant_id", "namespace",
                                             "secret_expires", "batch_size"})
    if env.get("IRIS_SECRET_EXPIRES"):
        try:
            s.iris["secret_expires"] = dt.date.fromisoformat(env["IRIS_SECRET_EXPIRES"])
        except ValueError:
            raise SettingsError(f"IRIS_SECRET_EXPIRES must be a date YYYY-MM-DD, got "
                                f"{env['IRIS_SECRET_EXPIRES']!r}") from None
    elif "secret_expires" in s.iris:
        s.iris["secret_expires"] = _date(s.iris["secret_expires"], where, "iris", "secret_expires")
    for key in ("queue_name", "client_id", "client_secret", "tenant_id", "namespace"):
        _str(s.iris, key, where, "iris", secret=key == "client_secret")
    batch = s.iris.setdefault("batch_size", 500)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise SettingsError(f"{where}: [iris] batch_size must be a whole number of messages (at least 1), got {batch!r}")
    register_secret(s.iris.get("client_secret"))
    s.iris_environment = {k: env[k] for k in IRIS_ENVIRONMENT if env.get(k)}
    for key in ("IRIS_CLIENT_SECRET", "IRIS_CONNECTION_STRING"):
        register_secret(s.iris_environment.get(key))
    s.elexon = ElexonSettings(portal_key=env.get("ELEXON_PORTAL_KEY") or None,
                              portal_url=env.get("ELEXON_PORTAL_URL") or s.p114.get("portal_url"),
                              insights_url=env.get("INSIGHTS_API_URL") or None)
    register_secret(s.elexon.portal_key)

    r = _section(data, "reporting", where, {"vlp_units", "assets", "min_mwh", "threshold", "run_due_working_days"})
    rep = ReportingSettings()
    if "vlp_units" in r:
        if not isinstance(r["vlp_units"], list) or not all(isinstance(u, str) for u in r["vlp_units"]):
            raise SettingsError(f"{where}: [reporting] vlp_units must be a list of BM unit ids (strings)")
        rep.vlp_units = list(r["vlp_units"])
    if env.get("VLP_UNITS"):
        rep.vlp_units = [u.strip() for u in env["VLP_UNITS"].split(",") if u.strip()]
    rep.assets = _assets(r.get("assets", []), where)
    rep.min_mwh = _number(r, "min_mwh", where, "reporting", rep.min_mwh, minimum=0)
    rep.threshold = _number(r, "threshold", where, "reporting", rep.threshold, minimum=0, maximum=1)
    if "run_due_working_days" in r:
        offsets = r["run_due_working_days"]
        if not isinstance(offsets, dict):
            raise SettingsError(f"{where}: [reporting] run_due_working_days must be a table like {{ II = 5, SF = 16 }}")
        for run, days in offsets.items():
            if run not in RUN_PRECEDENCE:
                raise SettingsError(f"{where}: [reporting] run_due_working_days has unknown run {run!r}; "
                                    f"runs: {', '.join(RUN_PRECEDENCE)}")
            if not isinstance(days, int) or days < 0:
                raise SettingsError(f"{where}: [reporting] run_due_working_days.{run} must be a whole number of "
                                    f"working days, got {days!r}")
        rep.run_due_working_days = dict(offsets)
    s.reporting = rep

    sh = _section(data, "sheets", where, {"spreadsheets", "credentials_file", "endpoint"})
    sheets = SheetsSettings()
    spreadsheets = sh.get("spreadsheets", {})
    if not isinstance(spreadsheets, dict) or not all(isinstance(v, str) for v in spreadsheets.values()):
        raise SettingsError(f"{where}: [sheets] spreadsheets must map dashboard names to spreadsheet ids")
    sheets.spreadsheets = dict(spreadsheets)
    for key, value in env.items():
        if key == "SHEETS_SPREADSHEET_ID" and value:
            sheets.spreadsheets["main"] = value
        elif key.startswith("SHEETS_SPREADSHEET_ID_") and value:
            sheets.spreadsheets[key.removeprefix("SHEETS_SPREADSHEET_ID_").lower()] = value
    sheets.credentials_file = (env.get("GOOGLE_APPLICATION_CREDENTIALS")
                               or _str(sh, "credentials_file", where, "sheets"))
    if sheets.credentials_file and not Path(sheets.credentials_file).expanduser().exists():
        raise SettingsError(f"{where}: the Google credentials file {sheets.credentials_file} does not exist "
                            "([sheets] credentials_file or GOOGLE_APPLICATION_CREDENTIALS)")
    sheets.endpoint = env.get("SHEETS_API_ENDPOINT") or _str(sh, "endpoint", where, "sheets")
    s.sheets = sheets
    s.schedule = _schedule(_section(data, "schedule", where, {f.name for f in fields(ScheduleSettings)}), where)
    s.alerts = parse_alerts(data.get("alerts", {}), where, env)
    return s


def _schedule(section: dict, where: str) -> ScheduleSettings:
    from ingest.iris.datasets import SPECS

    sch = ScheduleSettings()
    if "iris_worker" in section:
        if not isinstance(section["iris_worker"], bool):
            raise SettingsError(f"{where}: [schedule] iris_worker must be true or false")
        sch.iris_worker = section["iris_worker"]
    sch.refresh_minutes = _number(section, "refresh_minutes", where, "schedule", sch.refresh_minutes, minimum=0)
    if "dashboards" in section:
        boards = section["dashboards"]
        if not isinstance(boards, list) or not all(isinstance(b, str) and b for b in boards):
            raise SettingsError(f"{where}: [schedule] dashboards must be a list of dashboard names, e.g. [\"main\"]")
        sch.dashboards = boards
    for key in ("p114_fetch_at", "gap_fill_at"):
        if key in section:
            value = section[key]
            if value in ("", "off", False):
                setattr(sch, key, None)
            elif not isinstance(value, str) or not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d", value):
                raise SettingsError(f"{where}: [schedule] {key} must be a time HH:MM (Europe/London) or \"off\", "
                                    f"got {value!r}")
            else:
                setattr(sch, key, value)
    for key in ("p114_lookback_days", "gap_fill_days"):
        value = section.get(key, getattr(sch, key))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise SettingsError(f"{where}: [schedule] {key} must be a whole number of days (at least 1), got {value!r}")
        setattr(sch, key, value)
    if "gap_fill_datasets" in section:
        codes = section["gap_fill_datasets"]
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise SettingsError(f"{where}: [schedule] gap_fill_datasets must be a list of dataset codes")
        unknown = [c for c in codes if c.upper() not in SPECS or SPECS[c.upper()].api is None]
        if unknown:
            known = ", ".join(sorted(c for c, spec in SPECS.items() if spec.api))
            raise SettingsError(f"{where}: [schedule] gap_fill_datasets: no Insights API endpoint for "
                                f"{', '.join(unknown)}; known: {known}")
        sch.gap_fill_datasets = [c.upper() for c in codes]
    return sch


# ---------------------------------------------------------------------------------------- helpers
def _section(data: dict, name: str, where: str, keys: set[str] | None) -> dict:
    section = data.get(name, {})
    if not isinstance(section, dict):
        raise SettingsError(f"{where}: [{name}] must be a table")
    if keys is not None:
        for key in section:
            if key not in keys:
                raise SettingsError(f"{where}: unknown key {key!r} in [{name}]; known: {', '.join(sorted(keys))}")
    return dict(section)


def _str(section: dict, key: str, where: str, name: str, secret: bool = False) -> str | None:
    value = section.get(key)
    if value is not None and not isinstance(value, str):
        got = f"{type(value).__name__} (the value is not shown: a secret)" if secret else repr(value)
        raise SettingsError(f"{where}: [{name}] {key} must be a string, got {got}")
    return value


def _assets(entries: Any, where: str) -> list[Asset]:
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise SettingsError(f"{where}: [reporting] assets must be a list of tables ([[reporting.assets]] with "
                            "bm_unit_id, kind and optionally name, power_mw, energy_mwh, lead_party, notes)")
    assets, seen = [], set()
    for i, entry in enumerate(entries, 1):
        unknown = [k for k in entry if k not in ASSET_FIELDS]
        asset, problems = parse_asset(entry)
        problems = ([f"unknown key(s) {', '.join(unknown)} (keys: {', '.join(ASSET_FIELDS)})"] if unknown else []) + problems
        if asset and asset.bm_unit_id in seen:
            problems.append(f"bm_unit_id {asset.bm_unit_id!r} is listed twice")
        if problems:
            raise SettingsError(f"{where}: [[reporting.assets]] entry {i}: {'; '.join(problems)}")
        seen.add(asset.bm_unit_id)
        assets.append(asset)
    return assets


def _number(section: dict, key: str, where: str, name: str, default: float, minimum: float | None = None,
            maximum: float | None = None) -> float:
    value = section.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SettingsError(f"{where}: [{name}] {key} must be a number, got {value!r}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise SettingsError(f"{where}: [{name}] {key} must be {bounds}, got {value}")
    return float(value)


def _date(value: Any, where: str, name: str, key: str) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise SettingsError(f"{where}: [{name}] {key} must be a date YYYY-MM-DD, got {value!r}") from None
