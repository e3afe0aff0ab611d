#!/usr/bin/env python
"""Command line for the Elexon → warehouse → reports pipeline. Run ``python run.py --help``.

Each command parses its arguments, calls one library function, prints what happened and sets the
exit code; the work itself lives in ``ingest/``, ``warehouse/``, ``reporting/`` and ``ops/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import sys
import time
from dataclasses import dataclass

import click
from rich.console import Console
from rich.table import Table as RichTable

from core.config import Settings, load_settings
from core.errors import AlertError, ArgumentError, ElexonError
from core.logs import redact, setup_logging
from core.settlement import RUN_PRECEDENCE, parse_run
from warehouse import DEFAULT_URL, Warehouse, connect

console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True)


@dataclass
class State:
    warehouse_url: str
    settings: Settings
    warehouse_explicit: bool = False  # given with --warehouse on this command line
    _wh: Warehouse | None = None

    def warehouse(self, create: bool = True) -> Warehouse:
        """The warehouse; commands that only read pass ``create=False`` so a mistyped DuckDB path is an
        error rather than a new empty warehouse."""
        if self._wh is None:
            bigquery = self.settings.bigquery.options() if self.warehouse_url.startswith("bigquery:") else None
            self._wh = connect(self.warehouse_url, bigquery, create=create, table_prefix=self.settings.table_prefix)
        return self._wh

    def close(self) -> None:
        if self._wh is not None:
            self._wh.close()


DATE = click.DateTime(formats=["%Y-%m-%d"])


def _runs(value: str) -> tuple[str, ...]:
    try:
        return tuple(parse_run(r) for r in value.split(",") if r.strip())
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class Cli(click.Group):
    """The one place errors become output: any project error is one redacted line on stderr and exit
    code 1 (``--debug`` adds the traceback); anything unexpected says so in one line too."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            err_console.print("interrupted", style="yellow", highlight=False)
            ctx.exit(130)
        except BrokenPipeError:  # the reader went away (| head): exit 1 quietly, as rich and Python's docs do
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet too
            ctx.exit(1)
        except ElexonError as exc:
            _fail(ctx, exc, f"error: {exc}")
        except Exception as exc:  # noqa: BLE001 - a bug still gets one line, not a traceback
            _fail(ctx, exc, f"internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback, "
                            "and please report it)")


def _fail(ctx: click.Context, exc: BaseException, line: str) -> None:
    if ctx.find_root().params.get("debug"):
        import traceback

        err_console.print(redact("".join(traceback.format_exception(exc))), markup=False, highlight=False)
    parts = [part.strip() for part in redact(line).splitlines() if part.strip().strip("^")]
    err_console.print(" · ".join(parts), style="red", markup=False, highlight=False, soft_wrap=True)
    ctx.exit(1)


@click.group(cls=Cli, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--warehouse", "warehouse_url", metavar="URL", envvar="WAREHOUSE_URL", default=None,
    help=f"Warehouse to use: duckdb:///file.duckdb (default {DEFAULT_URL}) or bigquery://PROJECT/DATASET. "
    "Also read from WAREHOUSE_URL.",
)
@click.option("--settings", "settings_file", metavar="FILE", envvar="SETTINGS_FILE",
              help="Settings file (default ./settings.toml if present; see settings.example.toml).")
@click.option("--log-level", default="INFO", envvar="LOG_LEVEL", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), help="Logging detail.")
@click.option("--log-json", is_flag=True, envvar="LOG_JSON", help="Log as JSON lines (for log shippers).")
@click.option("--debug", is_flag=True, help="Show the traceback of an error (and log at DEBUG).")
@click.pass_context
def cli(ctx: click.Context, warehouse_url: str | None, settings_file: str | None, log_level: str,
        log_json: bool, debug: bool) -> None:
    """Elexon data (P114 settlement files, IRIS) into a warehouse, and reports out of it."""
    setup_logging("DEBUG" if debug else log_level, json_lines=log_json)
    settings = load_settings(settings_file)
    explicit = ctx.get_parameter_source("warehouse_url") == click.core.ParameterSource.COMMANDLINE
    state = State(warehouse_url or settings.warehouse_url or DEFAULT_URL, settings, explicit)
    ctx.obj = state
    ctx.call_on_close(state.close)


# ---------------------------------------------------------------------------------------- demo
@cli.command()
@click.option("--dir", "directory", default="data/demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the generated sample inputs are written.")
@click.pass_obj
def demo(state: State, directory: str) -> None:
    """Run the pipeline end to end on generated sample data (no credentials needed).

    Writes a week of S0142 settlement files in the real format (a 50-period clock-change day,
    several runs per date, a re-published file), a day of IRIS messages as an Elexon-client file
    drop and the BM unit reference list, loads them through the real pipeline, runs every report
    and writes the local dashboard (out/demo/main.xlsx and main.html). Safe to run again. Uses its
    own DuckDB file under --dir, never your real warehouse, unless --warehouse is given on the
    command line.
    """
    from ops.demo import run_demo

    if not state.warehouse_explicit:
        state.warehouse_url = f"duckdb:///{directory}/warehouse.duckdb"
    started = time.perf_counter()
    result = run_demo(state.warehouse(), state.settings, directory, console=err_console)
    click.echo(f"Demo inputs: {result.files_written} S0142 files in {result.directory / 'p114'}")
    for line in result.p114.lines():
        click.echo(line)
    _print_rows(result.canonical, "table", title="Canonical settlement run per date (p114_settlement_canonical)")
    click.echo(f"Demo inputs: {result.iris_messages:,} IRIS messages in {result.directory / 'iris_data'}")
    for line in result.iris.lines():
        click.echo(line)
    click.echo(f"BM unit reference data: {result.bm_units} units from {result.directory / 'reference' / 'bmunits.json'} "
               "(the Insights API's /reference/bmunits/all format)")
    click.echo("Alerts over the IRIS day:")
    for line in result.alerts:
        click.echo(line)
    for line in result.dashboard.lines():
        click.echo(line)
    click.echo(f"Demo done in {time.perf_counter() - started:.0f} s.")
    click.echo(f"Warehouse: {state.warehouse_url}")
    click.echo(f"Open the dashboard: {result.dashboard.where[-1]}")
    from ops.demo import DEMO_DAYS, IRIS_DAY

    click.echo("Look at the demo's data: every command takes --warehouse (the default is your own, "
               f"{DEFAULT_URL}):")
    click.echo(f"  python run.py --warehouse {state.warehouse_url} status")
    click.echo(f"  python run.py --warehouse {state.warehouse_url} alerts list")
    click.echo(f"  python run.py --warehouse {state.warehouse_url} report revenue "
               f"--from {DEMO_DAYS[0]} --to {DEMO_DAYS[-1]}")
    click.echo(f"  python run.py --warehouse {state.warehouse_url} report reconciliation "
               f"--from {IRIS_DAY:%Y-%m-%d} --to {IRIS_DAY:%Y-%m-%d} --unit V__BVLPO001")
    click.echo(f'  python run.py --warehouse {state.warehouse_url} query '
               '"SELECT * FROM p114_settlement_canonical LIMIT 10"')
    if result.p114.failed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------- load
@cli.group()
def load() -> None:
    """Load files into the warehouse."""


@load.command("p114")
@click.argument("files", nargs=-1, required=True, type=click.Path())
@click.option("--force", is_flag=True, help="Reload a file that is already loaded (replaces its rows in one transaction).")
@click.pass_obj
def load_p114(state: State, files: tuple[str, ...], force: bool) -> None:
    """Load S0142 settlement FILES (gzip or plain), each in its own transaction (the next file parsed
    while this one is written); a folder stands for every S0142 file under it.

    A file already in the manifest is skipped. Every good file is loaded even if another fails;
    the exit code is 1 if any file failed.
    """
    from ingest.p114.backfill import expand_paths, load_paths

    paths, results = expand_paths(files)
    for result in results:
        click.echo(result.describe(), err=True)
    for result in load_paths(state.warehouse(), paths, force=force) if paths else ():  # no paths: no new warehouse
        results.append(result)
        click.echo(result.describe(), err=not result.ok)
    failed = sum(not r.ok for r in results)
    if failed:
        if len(results) > 1:
            click.echo(f"{failed} of {len(results)} files failed to load", err=True)
        sys.exit(1)


@cli.group()
def p114() -> None:
    """Look inside S0142 settlement files."""


@p114.command("inspect")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def p114_inspect(file: str, fmt: str) -> None:
    """Print FILE's flow version, the layout it would be read with, and per record type the count and
    the widths seen (what is needed to add an older flow version's layout). Loads nothing."""
    from core.errors import InputFileError
    from ingest.p114.s0142 import inspect_s0142

    if not os.path.isfile(file):
        raise InputFileError(f"{file}: no such file")
    info = inspect_s0142(file)
    if fmt == "json":
        click.echo(json.dumps(info, indent=2))
        return
    click.echo(f"{info['file']}: flow version S0142{info['flow_version']}, layout {info['layout']}, "
               f"{info['records']:,} records, {info['size_bytes']:,} bytes")
    _print_rows(info["record_types"], "table", title="Record types (width = fields incl. the record id)")


# ---------------------------------------------------------------------------------------- backfill
@cli.group()
def backfill() -> None:
    """Load everything for a date range that is not loaded yet (resumable)."""


@backfill.command("p114")
@click.argument("start", type=DATE, metavar="START")
@click.argument("end", type=DATE, metavar="END")
@click.option("--runs", default=",".join(RUN_PRECEDENCE), show_default=True, callback=lambda c, p, v: _runs(v),
              help="Settlement runs to load, comma separated.")
@click.option("--source", default="portal", show_default=True, metavar="portal|DIR",
              help="The Elexon Portal (needs ELEXON_PORTAL_KEY) or a folder of S0142 files.")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
              help="Where Portal downloads are kept [settings [p114] cache_dir, else data/p114/raw].")
@click.pass_obj
def backfill_p114(state: State, start: dt.datetime, end: dt.datetime, runs: tuple[str, ...], source: str,
                  cache_dir: str) -> None:
    """Load S0142 files for settlement dates START..END (YYYY-MM-DD, inclusive).

    Killed at any point and started again, it loads every file exactly once: files already in
    the manifest are skipped. Bad files are reported and the rest carry on; the exit code is 1
    if any file failed.
    """
    from ingest.p114.backfill import run_backfill
    from ingest.p114.portal import PortalClient

    p114, elexon = state.settings.p114, state.settings.elexon
    client = PortalClient(elexon.portal_key, elexon.portal_url) if source == "portal" else None
    summary = run_backfill(state.warehouse(), start.date(), end.date(), runs=runs, source=source, client=client,
                           cache_dir=cache_dir or p114.get("cache_dir", "data/p114/raw"), console=err_console)
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(1)


@backfill.command("iris")
@click.argument("dataset")
@click.argument("start", metavar="START")
@click.argument("end", metavar="END")
@click.option("--refetch", is_flag=True, help="Fetch every window again, even those an earlier fill fetched complete.")
@click.pass_obj
def backfill_iris(state: State, dataset: str, start: str, end: str, refetch: bool) -> None:
    """Fill DATASET (e.g. FREQ, BOALF) for START..END from the BMRS Insights API.

    START and END are UTC dates (YYYY-MM-DD; END's whole day is included) or RFC 3339 times.
    Rows go into the same bmrs_* tables as IRIS (_source='api'); rows already stored are skipped.
    Resumable: windows an earlier fill fetched complete are skipped (--refetch to fetch them again).
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from ingest.iris.api import InsightsClient, fill_gap
    from ingest.iris.load import IrisLoader

    lo, hi = _utc(start, end_of_day=False), _utc(end, end_of_day=True)
    progress = Progress(TextColumn(f"[bold]{dataset.upper()}"), BarColumn(), MofNCompleteColumn(), TextColumn("windows"),
                        TextColumn("{task.fields[rows]}"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        TimeRemainingColumn(), console=err_console, disable=not err_console.is_terminal)
    with progress:
        task = progress.add_task("fill", total=None, rows="", rate="")

        def advance(s) -> None:
            progress.update(task, total=s.windows, completed=s.skipped + s.done, rows=f"{s.records:,} rows",
                            rate=f"{s.records / s.seconds:,.0f} rows/s" if s.seconds else "")

        summary = fill_gap(IrisLoader(state.warehouse()), dataset, lo, hi, on_chunk=advance, resume=not refetch,
                           client=InsightsClient(state.settings.elexon.insights_url))
    for line in summary.lines():
        click.echo(line)


def _utc(text: str, end_of_day: bool) -> dt.datetime:
    try:
        if len(text) == 10:
            day = dt.date.fromisoformat(text) + dt.timedelta(days=1 if end_of_day else 0)
            return dt.datetime.combine(day, dt.time(), tzinfo=dt.timezone.utc)
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date (YYYY-MM-DD) or an RFC 3339 time") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------------------------------- ingest
@cli.group()
def ingest() -> None:
    """Run an ingest worker."""


@ingest.command("iris")
@click.option("--connection-string", envvar="IRIS_CONNECTION_STRING", metavar="CS",
              help="Service Bus connection string (tests, emulator). Default: IRIS_CONNECTION_STRING.")
@click.option("--queue", envvar="IRIS_QUEUE_NAME", help="Queue name (iris.<guid>). Default: IRIS_QUEUE_NAME.")
@click.option("--iris-settings", type=click.Path(dir_okay=False),
              help="settings.json of Elexon's IRIS client (ClientId, QueueName, Secret, ...), kept outside git.")
@click.option("--from-dir", type=click.Path(file_okay=False),
              help="Replay a file drop DIR/<DATASET>/<message id> instead of reading Service Bus.")
@click.option("--once", is_flag=True, help="With --from-dir: load what is there and exit (else keep watching).")
@click.option("--remove", is_flag=True, help="With --from-dir: delete each file once it is committed.")
@click.option("--poll", default=5.0, show_default=True, help="With --from-dir: seconds between scans.")
@click.option("--batch-size", type=int, default=None, help="Messages per transaction [Service Bus 500, files 10000].")
@click.option("--exit-when-idle", "idle", type=float, default=None, metavar="SECONDS",
              help="Return once the queue (or folder) has been empty this long.")
@click.pass_obj
def ingest_iris(state: State, connection_string, queue, iris_settings, from_dir, once, remove, poll, batch_size,
                idle) -> None:
    """Load IRIS messages into the warehouse: from Service Bus (runs until stopped) or a file drop.

    A message is completed on Service Bus only after its rows are committed; a redelivered
    message is recognised by its id and not loaded twice. SIGTERM or Ctrl-C finishes the batch
    in hand and stops.
    """
    from ingest.iris.files import FILE_BATCH
    from ingest.iris.load import IrisLoader

    from alerts.monitor import AlertMonitor

    loader = IrisLoader(state.warehouse())
    monitor = AlertMonitor(loader.wh, state.settings).start()  # the data rules, after each commit
    try:
        if from_dir:
            _replay(loader, from_dir, once=once, remove=remove, poll=poll, batch_size=batch_size or FILE_BATCH,
                    idle=idle, after_commit=monitor.poke)
            return
        from ingest.iris.config import IrisSettings
        from ingest.iris.servicebus import IrisWorker, install_stop_signals

        settings = IrisSettings.load(connection_string=connection_string, queue_name=queue, settings_file=iris_settings,
                                     configured=state.settings.iris, environ=state.settings.iris_environment)
        worker = IrisWorker(loader, settings, batch_size=batch_size or int(state.settings.iris.get("batch_size", 500)),
                            exit_when_idle_s=idle, after_commit=monitor.poke)
        install_stop_signals(worker)
        summary = worker.run()
        for line in summary.lines():
            click.echo(line)
    finally:
        monitor.stop()


def _replay(loader, folder: str, *, once: bool, remove: bool, poll: float, batch_size: int, idle: float | None,
            after_commit=None) -> None:
    import signal
    import threading
    import time

    from ingest.iris.files import WATCH_SETTLE_S, replay_directory

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stop.set())
    quiet_since = time.monotonic()
    while True:
        summary = replay_directory(loader, folder, batch_size=batch_size, remove=remove, on_batch=after_commit,
                                   settle_s=0 if once else WATCH_SETTLE_S)
        if once or summary.loaded or summary.quarantined:
            for line in summary.lines():
                click.echo(line)
        if summary.loaded:
            quiet_since = time.monotonic()
        if once or stop.is_set() or (idle is not None and time.monotonic() - quiet_since >= idle):
            return
        loader.wh.idle()
        if stop.wait(poll):
            return


# ---------------------------------------------------------------------------------------- status
@cli.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--strict", is_flag=True, help="Exit with code 1 when there is any warning (for monitoring).")
@click.pass_obj
def status(state: State, fmt: str, strict: bool) -> None:
    """Health of the warehouse: IRIS freshness per dataset, P114 runs loaded, warnings.

    Warns when the IRIS client secret (IRIS_SECRET_EXPIRES) expires within 30 days, when the
    last IRIS message is older than the queue's 3-day time-to-live, when no IRIS message
    arrived for an hour, and when a scheduled job's last run failed.
    """
    from ops.status import collect_status

    report = collect_status(state.warehouse(create=False), secret_expires=state.settings.iris.get("secret_expires"))
    if fmt == "json":
        click.echo(json.dumps({"now": report.now, "iris": report.iris, "p114": report.p114,
                               "p114_errors_7d": report.p114_errors_7d, "jobs": report.jobs,
                               "outages": report.outages, "notes": report.notes, "warnings": report.warnings},
                              default=str, indent=2))
    else:
        columns = ["dataset", "last_message", "messages_1h", "rows_1h", "duplicates_24h", "corrections_24h",
                   "quarantined_24h", "quarantined_total", "newest_data"]
        if report.iris:
            _print_rows([{c: r.get(c) for c in columns} for r in report.iris], "table", title="IRIS")
        else:
            click.echo("IRIS: nothing loaded yet")
        if report.p114:
            _print_rows(report.p114, "table", title="P114 settlement files")
        else:
            click.echo("P114: nothing loaded yet")
        if report.jobs:
            _print_rows(report.jobs, "table", title="Scheduled jobs (last run of each)")
        if report.outages:
            _print_rows(report.outages, "table", title="Warehouse outages the IRIS worker held through (7 days)")
        for note in report.notes:
            click.echo(note)
        for warning in report.warnings:
            click.echo(f"WARNING: {warning}")
        if not report.warnings:
            click.echo("No warnings.")
    if strict and report.warnings:
        sys.exit(1)


# ---------------------------------------------------------------------------------------- operations
@cli.command()
@click.option("--list", "list_only", is_flag=True, help="Print what would run when, and exit.")
@click.pass_obj
def schedule(state: State, list_only: bool) -> None:
    """Run the scheduler: IRIS worker, dashboard refresh, daily P114 fetch and API gap fill.

    Configured by [schedule] in the settings (see settings.example.toml). Runs until SIGTERM or
    Ctrl-C; each job runs in its own thread, a failing job is logged and recorded in
    ops_job_runs (see `status`) and never stops the others.
    """
    from ops.scheduler import Scheduler

    scheduler = Scheduler(state.settings, state.warehouse_url).build()
    if list_only:
        for line in scheduler.describe():
            click.echo(line)
        return
    scheduler.run()


@cli.group()
def config() -> None:
    """Inspect the settings."""


@config.command("check")
@click.option("--connect", "try_connect", is_flag=True, help="Also open the warehouse and run a query.")
@click.pass_obj
def config_check(state: State, try_connect: bool) -> None:
    """Validate the settings and say what is configured, without showing any secret.

    Exits 1 when something cannot work (and says which setting and why). Settings that fail
    basic validation are reported before any command runs.
    """
    from ops.config_check import check

    report = check(state.settings, state.warehouse_url, connect=try_connect)
    for line in report.lines:
        click.echo(line)
    for problem in report.problems:
        click.echo(f"PROBLEM: {problem}")
    if report.problems:
        raise click.ClickException(f"{len(report.problems)} problem(s) in the settings")
    click.echo("Settings OK.")


# ---------------------------------------------------------------------------------------- reports
@cli.command()
@click.argument("name", metavar="NAME")
@click.option("--from", "date_from", type=DATE, help="First settlement date (default: from the data).")
@click.option("--to", "date_to", type=DATE, help="Last settlement date (default: the latest loaded).")
@click.option("--min-mwh", type=float, default=None, help="self_balancing: minimum metered volume [settings, 1.0].")
@click.option("--threshold", type=float, default=None, help="self_balancing: share to count as self-balancing [0.5].")
@click.option("--as-of", "as_of", default=None, help="live_grid: UTC time to report at (default: latest data).")
@click.option("--population", type=click.Choice(["auto", "assets", "accepted", "all"]), default=None,
              help="self_balancing: which units [auto: the assets if any, else units with an acceptance].")
@click.option("--unit", "units", multiple=True, metavar="ID",
              help="reconciliation: only this BM unit (exact Elexon id; repeat for several).")
@click.option("--tolerance", "tolerance_gbp", type=float, default=None,
              help="reconciliation: £ per unit-period a difference may be and count as reconciled [1.0].")
@click.option("--section", default=None, metavar="SECTION", help="Only this section (CSV of a report with several needs one).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--dry-run", is_flag=True, help="BigQuery: print the bytes each query would scan; run nothing.")
@click.pass_obj
def report(state: State, name: str, date_from, date_to, min_mwh, threshold, as_of, population, units, tolerance_gbp,
           section: str | None, fmt: str, dry_run: bool) -> None:
    """Run report NAME: revenue, vlp_revenue, reconciliation, completeness, self_balancing, live_grid or alerts.

    Prints each section of the report; the table format also prints the report's definition.
    Warnings (e.g. no BM unit reference data) go to stderr. With --dry-run (BigQuery only) nothing
    runs: BigQuery says how many bytes each section's query would scan, which is what it bills.
    """
    from reporting.refresh import report_options
    from reporting.reports import REPORTS, check_report_options, dry_run_report, run_report

    if name not in REPORTS:  # before the warehouse is opened: a typo is the first thing to say
        raise ArgumentError(f"unknown report {name!r}; reports: {', '.join(sorted(REPORTS))}")
    check_report_options(name, {"--from": date_from, "--to": date_to, "--min-mwh": min_mwh, "--threshold": threshold,
                                "--as-of": as_of, "--population": population, "--unit": units or None,
                                "--tolerance": tolerance_gbp})
    sections = [s.name for s in REPORTS[name].sections]
    if section is not None and section not in sections:
        raise ArgumentError(f"report {name} has no section {section!r}; sections: {', '.join(sections)}")
    options = report_options(
        state.settings, date_from=date_from.date() if date_from else None, date_to=date_to.date() if date_to else None,
        min_mwh=min_mwh, threshold=threshold, as_of=_utc(as_of, end_of_day=False) if as_of else None,
        population=population, units=list(units) or None, tolerance_gbp=tolerance_gbp,
    )
    if dry_run:
        scanned = dry_run_report(state.warehouse(create=False), name, options)
        for section, n in scanned.items():
            click.echo(f"{name}.{section}: {n:,} bytes ({n / 2**30:.3f} GiB)")
        total = sum(scanned.values())
        click.echo(f"total: {total:,} bytes ({total / 2**30:.3f} GiB; on-demand at $6.25/TiB: ${total / 2**40 * 6.25:.4f})")
        return
    if section is None and fmt == "csv" and len(sections) > 1:
        raise ArgumentError(f"report {name} has {len(sections)} sections ({', '.join(sections)}); "
                            "one CSV holds one table: choose one with --section")
    result = run_report(state.warehouse(create=False), name, options, only={section} if section else None)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if fmt == "json":
        click.echo(json.dumps({"report": result.name, "params": result.params,
                               "sections": {k: t.to_pylist() for k, t in result.sections.items()}},
                              default=str, indent=2))
        return
    window = ", ".join(f"{k}={v}" for k, v in result.params.items())
    if fmt == "table":
        click.echo(f"{result.title} ({window})")
    for title, table in result.sections.items():
        _print_rows(table.to_pylist(), fmt, title=None if fmt == "csv" else title)
    if fmt == "table":
        click.echo(result.definition)


@cli.command()
@click.option("--dashboard", default="main", show_default=True, help="Layout in sheets_templates/<NAME>.yaml.")
@click.option("--target", type=click.Choice(["auto", "sheets", "local"]), default="auto", show_default=True,
              help="auto: Google Sheets when a spreadsheet id and credentials are set, else the local dashboard.")
@click.pass_obj
def refresh(state: State, dashboard: str, target: str) -> None:
    """Run a dashboard's reports and write it to Google Sheets or to out/<NAME>.xlsx and .html.

    All values go in one values:batchUpdate and all formatting in one batchUpdate (three API
    requests per dashboard). On failure the exit code is 1 and the previous sheet stays as it was.
    """
    from reporting.refresh import refresh as run_refresh

    result = run_refresh(state.warehouse(create=False), state.settings, dashboard, target)
    for line in result.lines():
        click.echo(line)


@cli.group()
def reference() -> None:
    """Load reference data the reports use."""


@reference.command("bmunits")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False),
              help="Load a saved /reference/bmunits/all response instead of calling the API.")
@click.pass_obj
def reference_bmunits(state: State, path: str | None) -> None:
    """Load Elexon's BM unit list (Insights API /reference/bmunits/all) into bmu_reference.

    VLP revenue uses it to tell secondary (VLP) BM units apart, matching exact ids. The previous
    list is replaced in one transaction.
    """
    from reporting.reference import load_bmunits

    body = open(path, "rb").read() if path else None
    from ingest.iris.api import InsightsClient

    count = load_bmunits(state.warehouse(), InsightsClient(state.settings.elexon.insights_url), body=body, source=path)
    click.echo(f"Loaded {count:,} BM units into bmu_reference")


@cli.group("import")
def import_group() -> None:
    """Bring in history from tables you already have."""


@import_group.command("legacy")
@click.argument("source_table", required=False)
@click.option("--dataset", "code", help="The Elexon dataset the table holds (FREQ, BOALF, FUELINST, …), or "
              "S0142_BPI for a table of P114 BPI fields (date, period, run, unit, metered volume …).")
@click.option("--mapping", type=click.Path(), help="A CSV of table,dataset lines: import each table.")
@click.option("--chunk-days", type=int, default=0, show_default=True,
              help="Import in chunks of this many days of event time (0: the whole table in one statement).")
@click.pass_obj
def import_legacy_cmd(state: State, source_table: str | None, code: str | None, mapping: str | None,
                      chunk_days: int) -> None:
    """Import SOURCE_TABLE, a table your own scripts filled with an IRIS / Insights dataset.

    Columns may be Elexon's names (measurementTime) or snake_case, values STRING or typed. Rows
    are typed in the warehouse (on BigQuery nothing is downloaded); rows that do not convert go to
    iris_quarantine; rows whose key is already stored are skipped. Resumable and idempotent.
    With --dataset S0142_BPI the rows go into the P114 BPI table as partial rows, one pseudo-file
    per settlement date and run, behind any real S0142 file of the date.
    SOURCE_TABLE on BigQuery: table, dataset.table or project.dataset.table.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ingest.legacy import import_legacy, read_mapping

    if mapping:
        jobs = read_mapping(mapping)
    elif source_table and code:
        jobs = [(source_table, code)]
    else:
        raise click.UsageError("give SOURCE_TABLE --dataset CODE, or --mapping FILE.csv")
    wh = state.warehouse()
    for table, dataset in jobs:
        progress = Progress(TextColumn(f"[bold]{table}"), BarColumn(), MofNCompleteColumn(), TextColumn("chunks"),
                            TextColumn("{task.fields[rows]}"), TimeElapsedColumn(), console=err_console,
                            disable=not err_console.is_terminal)
        with progress:
            task = progress.add_task("import", total=None, rows="")
            imported = 0

            def advance(chunk, done: int, total: int) -> None:
                nonlocal imported
                imported += chunk.imported
                progress.update(task, total=total, completed=done, rows=f"{imported:,} rows imported")

            result = import_legacy(wh, table, dataset, chunk_days, on_chunk=advance)
        for line in result.lines():
            click.echo(line)


@cli.group()
def assets() -> None:
    """The assets reports are about: your batteries, VLP units and sites (exact BM unit ids)."""


@assets.command("import")
@click.argument("path", metavar="FILE.csv")
@click.pass_obj
def assets_import(state: State, path: str) -> None:
    """Replace the imported assets with FILE.csv (all rows or none).

    Columns: bm_unit_id, name, kind, power_mw, energy_mwh (required; power and energy may be
    blank), lead_party, notes (optional). kind: battery, vlp, demand_side, generator, wind, solar,
    pumped_storage, interconnector or other. Ids are settlement ids exactly (2__FBPGM002, V__AFLEX001).
    """
    from reporting.assets import import_assets, import_warnings

    wh = state.warehouse()
    count = import_assets(wh, path)
    click.echo(f"Imported {count:,} assets from {path} (replacing the previous import); "
               "python run.py assets list shows them with the settings' and Elexon's")
    reporting = state.settings.reporting
    for warning in import_warnings(wh, reporting.assets, reporting.vlp_units):
        click.echo(f"warning: {warning}", err=True)


@assets.command("list")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def assets_list(state: State, fmt: str) -> None:
    """Every asset, where it came from (csv, settings, reference), the user's own first."""
    from reporting.assets import list_assets

    reporting = state.settings.reporting
    _print_rows(list_assets(state.warehouse(create=False), reporting.assets, reporting.vlp_units).to_pylist(), fmt)


# ---------------------------------------------------------------------------------------- query
@cli.group()
def alerts() -> None:
    """Alert rules ([[alerts.rules]] in the settings): check them, list events, test a target."""


@alerts.command("check")
@click.option("--as-of", "as_of", metavar="TIME", help="Evaluate as at this UTC time (YYYY-MM-DD or RFC 3339; "
              "default now): replays history, e.g. to try a new rule on last week's data.")
@click.option("--kind", "kinds", multiple=True, help="Only rules of this kind (repeatable).")
@click.pass_obj
def alerts_check(state: State, as_of: str | None, kinds: tuple[str, ...]) -> None:
    """Evaluate every rule once, open and close events, deliver their messages and print what fired."""
    from alerts.events import check

    if not state.settings.alerts.rules:
        raise ArgumentError("no alert rules: add [[alerts.rules]] to the settings (see settings.example.toml)")
    result = check(state.warehouse(), state.settings, as_of=_utc(as_of, False) if as_of else None,
                   kinds=set(kinds) or None)
    for line in result.lines():
        click.echo(line)
    if any(not s.ok for s in result.sent) or result.errors:
        sys.exit(1)


@alerts.command("list")
@click.option("--open", "only_open", is_flag=True, help="Only events still open.")
@click.option("--days", default=7, show_default=True, help="Events opened in the last N days (and every open one).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def alerts_list(state: State, only_open: bool, days: int, fmt: str) -> None:
    """Alert events, newest first, with their deliveries."""
    from alerts.events import list_events

    rows = list_events(state.warehouse(create=False), only_open=only_open, days=days)
    if not rows and fmt == "table":
        click.echo("no open alert events" if only_open else f"no alert events in the last {days} days")
        return
    _print_rows(rows, fmt, title="Alert events")


@alerts.command("test")
@click.argument("target")
@click.pass_obj
def alerts_test(state: State, target: str) -> None:
    """Send a test message to TARGET (a name in [alerts.targets]) and record it."""
    from alerts.events import send_test

    outcome = send_test(state.warehouse(), state.settings, target)
    if not outcome.ok:
        raise AlertError(f"test message to {target} failed after {outcome.attempts} attempt(s): {outcome.error}")
    click.echo(f"test message delivered to {target}")


@cli.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def query(state: State, sql: str, fmt: str) -> None:
    """Run a SQL query against the warehouse and print the result."""
    rows = state.warehouse(create=False).query_rows(sql)
    _print_rows(rows, fmt)


def _print_rows(rows: list[dict], fmt: str, title: str | None = None) -> None:
    if fmt == "json":
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    if fmt == "csv":
        if rows:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return
    def build(header) -> RichTable:
        table = RichTable(title=title, show_lines=False)
        for name in rows[0] if rows else ["(no rows)"]:
            table.add_column(header(str(name)), no_wrap=True)
        for row in rows:
            table.add_row(*[_cell(v) for v in row.values()])
        return table

    def fits(table: RichTable) -> bool:
        return console.measure(table, options=console.options.update_width(100_000)).maximum <= console.width

    table = build(str)
    if rows and not fits(table):
        table = build(lambda name: name.replace("_", "\n"))  # headers over several lines
    if rows and not fits(table):
        # wider than the terminal: one block per row (name: value), so no value is cut or split
        for i, row in enumerate(rows, start=1):
            block = RichTable(title=f"{title + ' · ' if title else ''}row {i} of {len(rows)}", show_header=False,
                              box=None, title_justify="left")
            block.add_column(style="bold", no_wrap=True)
            block.add_column(overflow="fold")
            for name, value in row.items():
                block.add_row(str(name), _cell(value))
            console.print(block)
        return
    console.print(table)


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if value.tzinfo else "")
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".")
    return str(value)


if __name__ == "__main__":
    cli()
