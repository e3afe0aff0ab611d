"""Alert rules and targets as read from ``[alerts]`` in settings.toml, validated once.

::

    [alerts]
    dashboard_url = "https://docs.google.com/spreadsheets/d/..."   # linked from every message

    [alerts.targets]                    # name -> apprise URL; secrets as ${ENV_VAR}
    desk = "json://127.0.0.1:8080/hook"

    [[alerts.rules]]
    name = "frequency-band"
    kind = "frequency"
    low = 49.8
    high = 50.2
    min_seconds = 30
    targets = ["desk"]

Every rule has ``name``, ``kind`` and optionally ``targets`` (default: every target),
``notify_close`` (also send a message when the event closes), ``remind_minutes`` (send the open
event again after this long; 0 = never) and ``enabled``. :data:`KINDS` lists each kind's own keys.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from core.errors import SettingsError
from core.logs import register_secret

#: per kind: its own keys with (type, default); a default of REQUIRED must be given
REQUIRED = object()
_NUM, _INT, _STR, _LIST, _BOOL = (int, float), int, str, list, bool

KINDS: dict[str, dict[str, tuple[Any, Any]]] = {
    # DISEBSP system price (or MID) above / below a level, or a jump between consecutive periods (£/MWh)
    "price": {"source": (_STR, "system"), "above": (_NUM, None), "below": (_NUM, None), "jump": (_NUM, None),
              "window_minutes": (_INT, 1440)},
    # the latest MELNGC forecast of national margin below `below` MW in a period not yet over
    "margin": {"below": (_NUM, REQUIRED)},
    # the latest IMBALNGC forecast of national imbalance beyond ±`beyond` MW
    "imbalance": {"beyond": (_NUM, REQUIRED)},
    # the latest LOLPDRM loss-of-load probability above `above`
    "lolp": {"above": (_NUM, REQUIRED)},
    # any SYSWARN published in the last window_minutes; optional filters on type and text
    "syswarn": {"types": (_LIST, []), "contains": (_STR, None), "window_minutes": (_INT, 60)},
    # FREQ outside [low, high] Hz for at least min_seconds
    "frequency": {"low": (_NUM, 49.8), "high": (_NUM, 50.2), "min_seconds": (_NUM, 30), "window_minutes": (_INT, 60)},
    # a new or revised unplanned REMIT outage of at least min_mw that is active and not over
    "outage": {"min_mw": (_NUM, 100), "units": (_LIST, []), "fuels": (_LIST, [])},
    # a BOALF acceptance of a watched unit (default: the assets) issued in the last window_minutes
    "acceptance": {"units": (_LIST, []), "window_minutes": (_INT, 60)},
    # no message of a dataset for factor x its cadence (Service Bus and file drops alike)
    "silence": {"datasets": (_LIST, []), "factor": (_NUM, 3), "cadence_minutes": (_NUM, None)},
    # the IRIS client secret ([iris] secret_expires) expires within `days`
    "secret_expiry": {"days": (_INT, 30)},
    # a P114 run due by the working-day timetable and not loaded, for settlement dates of the last `days`
    "p114_overdue": {"days": (_INT, 30), "runs": (_LIST, [])},
    # a scheduled job whose last run failed (closes at its next good run)
    "job_failed": {"jobs": (_LIST, [])},
}
COMMON = {"name", "kind", "targets", "notify_close", "remind_minutes", "enabled"}

#: which rules run where: after each IRIS batch the data rules; the scheduler's tick runs them all
IRIS_KINDS = frozenset({"price", "margin", "imbalance", "lolp", "syswarn", "frequency", "outage", "acceptance"})

#: how often Elexon sends each dataset's messages (IRIS.md "Cadences"), for the silence rule
MESSAGE_CADENCE = {
    "FREQ": dt.timedelta(minutes=2), "FUELINST": dt.timedelta(minutes=5), "MELS": dt.timedelta(minutes=30),
    "MILS": dt.timedelta(minutes=30), "PN": dt.timedelta(minutes=30), "QPN": dt.timedelta(minutes=30),
    "BOD": dt.timedelta(minutes=30), "INDGEN": dt.timedelta(minutes=30), "INDDEM": dt.timedelta(minutes=30),
    "MELNGC": dt.timedelta(minutes=30), "IMBALNGC": dt.timedelta(minutes=30), "MID": dt.timedelta(minutes=30),
    "DISEBSP": dt.timedelta(minutes=30), "LOLPDRM": dt.timedelta(minutes=30),
}


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    targets: tuple[str, ...]
    params: dict[str, Any] = field(hash=False, compare=False)
    notify_close: bool = False
    remind_minutes: float = 0.0

    def __getattr__(self, key: str) -> Any:  # rule.low, rule.window_minutes, ...
        try:
            return self.__dict__["params"][key]
        except KeyError:
            raise AttributeError(key) from None

    def threshold_text(self) -> str:
        """The rule's condition in words, for messages and the dashboard."""
        p = self.params
        match self.kind:
            case "price":
                parts = [f"above £{p['above']:g}/MWh" if p["above"] is not None else "",
                         f"below £{p['below']:g}/MWh" if p["below"] is not None else "",
                         f"a jump of £{p['jump']:g}/MWh between periods" if p["jump"] is not None else ""]
                return f"{'system price' if p['source'] == 'system' else 'MID price'} " + " or ".join(x for x in parts if x)
            case "margin":
                return f"forecast national margin below {p['below']:g} MW"
            case "imbalance":
                return f"forecast national imbalance beyond ±{p['beyond']:g} MW"
            case "lolp":
                return f"loss-of-load probability above {p['above']:g}"
            case "syswarn":
                return "a system warning" + (f" of type {', '.join(p['types'])}" if p["types"] else "") + (
                    f" containing {p['contains']!r}" if p["contains"] else "")
            case "frequency":
                return f"frequency outside {p['low']:g}-{p['high']:g} Hz for at least {p['min_seconds']:g} s"
            case "outage":
                return f"an unplanned outage of at least {p['min_mw']:g} MW" + (
                    f" on {', '.join(p['units'])}" if p["units"] else "") + (
                    f" of fuel {', '.join(p['fuels'])}" if p["fuels"] else "")
            case "acceptance":
                return "a bid-offer acceptance on " + (", ".join(p["units"]) if p["units"] else "an asset")
            case "silence":
                return f"no message for {p['factor']:g} x the dataset's cadence"
            case "secret_expiry":
                return f"the IRIS client secret expiring within {p['days']} days"
            case "p114_overdue":
                return "a P114 run due by the settlement timetable and not loaded"
            case "job_failed":
                return "a scheduled job's last run failed"
        return self.kind


@dataclass
class AlertSettings:
    targets: dict[str, str] = field(default_factory=dict, repr=False)  # name -> apprise URL (secrets expanded)
    rules: list[Rule] = field(default_factory=list)
    dashboard_url: str | None = None
    check_minutes: float = 5.0  # the scheduler evaluates every rule this often
    min_interval_seconds: float = 10.0  # the IRIS worker evaluates at most this often
    retry_attempts: int = 3  # delivery attempts per message (exponential backoff between them)
    source: str = "settings"  # where they were read (for messages)


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def parse_alerts(section: Any, where: str, environ: dict[str, str] | os._Environ) -> AlertSettings:
    """``[alerts]`` → :class:`AlertSettings`; every problem is a :class:`SettingsError` naming the key."""
    if not isinstance(section, dict):
        raise SettingsError(f"{where}: [alerts] must be a table")
    known = {"targets", "rules", "dashboard_url", "check_minutes", "min_interval_seconds", "retry_attempts"}
    for key in section:
        if key not in known:
            raise SettingsError(f"{where}: unknown key {key!r} in [alerts]; known: {', '.join(sorted(known))}")
    out = AlertSettings()
    targets = section.get("targets", {})
    if not isinstance(targets, dict):
        raise SettingsError(f"{where}: [alerts.targets] must map target names to apprise URLs")
    for name, url in targets.items():
        if not isinstance(url, str) or not url.strip():
            raise SettingsError(f"{where}: [alerts.targets] {name} must be an apprise URL (a string)")
        if "://" not in url:
            raise SettingsError(f"{where}: [alerts.targets] {name} must be an apprise URL like json://host/path, "
                                "slack://T/B/X or mailto://host?to=... (see https://github.com/caronc/apprise/wiki)")
        out.targets[name] = _expand(url.strip(), name, where, environ)
    out.source = where
    if section.get("dashboard_url") is not None:
        if not isinstance(section["dashboard_url"], str):
            raise SettingsError(f"{where}: [alerts] dashboard_url must be a string (a link)")
        out.dashboard_url = section["dashboard_url"]
    for key, minimum in (("check_minutes", 0.1), ("min_interval_seconds", 0), ("retry_attempts", 1)):
        value = section.get(key, getattr(out, key))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < minimum:
            raise SettingsError(f"{where}: [alerts] {key} must be a number of at least {minimum}, got {value!r}")
        setattr(out, key, type(getattr(out, key))(value))
    rules = section.get("rules", [])
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise SettingsError(f"{where}: [[alerts.rules]] must be tables (see settings.example.toml)")
    seen: set[str] = set()
    for i, entry in enumerate(rules, 1):
        rule = _rule(entry, i, where, out.targets)
        if rule is None:
            continue
        if rule.name in seen:
            raise SettingsError(f"{where}: [[alerts.rules]] entry {i}: the name {rule.name!r} is used twice")
        seen.add(rule.name)
        out.rules.append(rule)
    return out


def _rule(entry: dict, i: int, where: str, targets: dict[str, str]) -> Rule | None:
    here = f"{where}: [[alerts.rules]] entry {i}"
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise SettingsError(f"{here}: name must be 1-64 letters, digits, '-', '_' or '.', got {name!r}")
    here = f"{where}: alert rule {name!r}"
    kind = entry.get("kind")
    if kind not in KINDS:
        raise SettingsError(f"{here}: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    spec = KINDS[kind]
    unknown = [k for k in entry if k not in COMMON and k not in spec]
    if unknown:
        raise SettingsError(f"{here}: unknown key(s) {', '.join(unknown)} for kind {kind}; "
                            f"keys: {', '.join(sorted(COMMON | set(spec)))}")
    params: dict[str, Any] = {}
    for key, (types, default) in spec.items():
        value = entry.get(key, default)
        if value is REQUIRED:
            raise SettingsError(f"{here}: kind {kind} needs {key}")
        if value is not None and (isinstance(value, bool) and types is not _BOOL or not isinstance(value, types)):
            what = {id(_NUM): "a number", id(_INT): "a whole number", id(_STR): "a string",
                    id(_LIST): "a list of strings"}[id(types)]
            raise SettingsError(f"{here}: {key} must be {what}, got {value!r}")
        if types is _LIST and not all(isinstance(v, str) and v for v in value):
            raise SettingsError(f"{here}: {key} must be a list of strings, got {value!r}")
        params[key] = list(value) if types is _LIST else value
    _check_kind(kind, params, here)
    chosen = entry.get("targets", list(targets))
    if not isinstance(chosen, list) or not all(isinstance(t, str) for t in chosen):
        raise SettingsError(f"{here}: targets must be a list of target names from [alerts.targets]")
    missing = [t for t in chosen if t not in targets]
    if missing:
        raise SettingsError(f"{here}: target(s) {', '.join(missing)} are not in [alerts.targets] "
                            f"(defined: {', '.join(targets) or 'none'})")
    for key in ("notify_close", "enabled"):
        if key in entry and not isinstance(entry[key], bool):
            raise SettingsError(f"{here}: {key} must be true or false")
    remind = entry.get("remind_minutes", 0)
    if isinstance(remind, bool) or not isinstance(remind, (int, float)) or remind < 0:
        raise SettingsError(f"{here}: remind_minutes must be a number of minutes (0: never), got {remind!r}")
    if not entry.get("enabled", True):
        return None
    return Rule(name, kind, tuple(chosen), params, bool(entry.get("notify_close", False)), float(remind))


def _check_kind(kind: str, p: dict[str, Any], here: str) -> None:
    if kind == "price":
        if p["source"] not in ("system", "mid"):
            raise SettingsError(f"{here}: source must be \"system\" (DISEBSP) or \"mid\" (MID), got {p['source']!r}")
        if p["above"] is None and p["below"] is None and p["jump"] is None:
            raise SettingsError(f"{here}: a price rule needs above, below or jump (£/MWh)")
        if p["jump"] is not None and p["jump"] <= 0:
            raise SettingsError(f"{here}: jump must be a positive £/MWh change, got {p['jump']}")
    if kind == "frequency" and not p["low"] < p["high"]:
        raise SettingsError(f"{here}: low ({p['low']}) must be below high ({p['high']})")
    if kind == "lolp" and not 0 <= p["above"] < 1:
        raise SettingsError(f"{here}: above must be a probability between 0 and 1, got {p['above']}")
    if kind == "silence":
        if p["factor"] <= 0 or (p["cadence_minutes"] is not None and p["cadence_minutes"] <= 0):
            raise SettingsError(f"{here}: factor and cadence_minutes must be positive")
        p["datasets"] = [d.upper() for d in p["datasets"]]
        unknown = [d for d in p["datasets"] if d not in MESSAGE_CADENCE]
        if unknown and p["cadence_minutes"] is None:
            raise SettingsError(f"{here}: no known cadence for {', '.join(unknown)}: set cadence_minutes "
                                f"(known: {', '.join(MESSAGE_CADENCE)})")
    if kind == "p114_overdue":
        from core.settlement import RUN_PRECEDENCE

        bad = [r for r in p["runs"] if r not in RUN_PRECEDENCE]
        if bad:
            raise SettingsError(f"{here}: unknown run(s) {', '.join(bad)}; runs: {', '.join(RUN_PRECEDENCE)}")
    for key in ("window_minutes", "days"):
        if key in p and p[key] < 1:
            raise SettingsError(f"{here}: {key} must be at least 1, got {p[key]}")


def _expand(url: str, name: str, where: str, environ) -> str:
    """``${VAR}`` → the environment's value; each value (and the URL) is registered as a secret."""
    def value(match: re.Match) -> str:
        var = match.group(1)
        if not environ.get(var):
            raise SettingsError(f"{where}: [alerts.targets] {name} uses ${{{var}}}, which is not set in the environment")
        register_secret(environ[var])
        return environ[var]

    expanded = _ENV.sub(value, url)
    # the whole URL, its password and a token-like path (Slack, Teams, webhooks) stay out of the logs
    parts = urlsplit(expanded)
    register_secret(expanded)
    register_secret(parts.password)
    if len(parts.path) >= 12:
        register_secret(parts.path)
    return expanded


def check_targets(alerts: AlertSettings) -> None:
    """Every target URL must be one apprise accepts (SettingsError naming the target otherwise). Not done
    when the settings load (apprise takes most of a second to import): by ``config check``, ``alerts``
    commands, the scheduler and the worker before they rely on the targets."""
    if not alerts.targets:
        return
    import apprise

    for name, url in alerts.targets.items():
        if not apprise.Apprise().add(url):
            raise SettingsError(f"{alerts.source}: [alerts.targets] {name}: apprise does not accept this URL (check "
                                "its scheme, e.g. json://host/path, slack://T/B/X, mailto://host?to=...; "
                                "see https://github.com/caronc/apprise/wiki)")
