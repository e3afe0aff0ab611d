#!/usr/bin/env python
"""Command line for the Elexon → warehouse → reports pipeline. Run ``python run.py --help``.

Each command parses its arguments, calls one library function, prints what happened and sets the
exit code; the work itself lives in ``ingest/``, ``warehouse/``, ``reporting/`` and ``ops/``.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
from dataclasses import dataclass

import click
from rich.console import Console
from rich.table import Table as RichTable

from core.logs import redact, setup_logging
from core.settlement import RUN_PRECEDENCE, parse_run
from warehouse import DEFAULT_URL, Warehouse, WarehouseError, connect, resolve_url

console = Console()
err_console = Console(stderr=True)


@dataclass
class State:
    warehouse_url: str
    warehouse_explicit: bool = False  # given with --warehouse on this command line
    _wh: Warehouse | None = None

    def warehouse(self) -> Warehouse:
        if self._wh is None:
            try:
                self._wh = connect(self.warehouse_url)
            except WarehouseError as exc:
                raise click.ClickException(str(exc)) from None
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


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--warehouse", "warehouse_url", metavar="URL", envvar="WAREHOUSE_URL", default=None,
    help=f"Warehouse to use: duckdb:///file.duckdb (default {DEFAULT_URL}) or bigquery://PROJECT/DATASET. "
    "Also read from WAREHOUSE_URL.",
)
@click.option("--log-level", default="INFO", envvar="LOG_LEVEL", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False), help="Logging detail.")
@click.option("--log-json", is_flag=True, envvar="LOG_JSON", help="Log as JSON lines (for log shippers).")
@click.pass_context
def cli(ctx: click.Context, warehouse_url: str | None, log_level: str, log_json: bool) -> None:
    """Elexon data (P114 settlement files, IRIS) into a warehouse, and reports out of it."""
    setup_logging(log_level, json_lines=log_json)
    explicit = ctx.get_parameter_source("warehouse_url") == click.core.ParameterSource.COMMANDLINE
    state = State(resolve_url(warehouse_url), explicit)
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
    several runs per date, a re-published file), loads them through the real backfill and
    prints the canonical (best-run) view. Safe to run again. Uses its own DuckDB file under
    --dir, never your real warehouse, unless --warehouse is given on the command line.
    """
    from ops.demo import run_demo

    if not state.warehouse_explicit:
        state.warehouse_url = f"duckdb:///{directory}/warehouse.duckdb"
    result = run_demo(state.warehouse(), directory, console=err_console)
    click.echo(f"Demo inputs: {result.files_written} S0142 files in {result.directory / 'p114'}")
    for line in result.p114.lines():
        click.echo(line)
    _print_rows(result.canonical, "table", title="Canonical settlement run per date (p114_settlement_canonical)")
    click.echo(f"Warehouse: {state.warehouse_url}")
    click.echo(f'Query it:  python run.py --warehouse {state.warehouse_url} query '
               '"SELECT * FROM p114_settlement_canonical LIMIT 10"')
    if result.p114.failed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------- load
@cli.group()
def load() -> None:
    """Load files into the warehouse."""


@load.command("p114")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--force", is_flag=True, help="Reload a file that is already loaded (replaces its rows in one transaction).")
@click.pass_obj
def load_p114(state: State, files: tuple[str, ...], force: bool) -> None:
    """Load S0142 settlement FILES (gzip or plain), each in its own transaction.

    A file already in the manifest is skipped. Every good file is loaded even if another fails;
    the exit code is 1 if any file failed.
    """
    from ingest.p114.load import load_file

    wh = state.warehouse()
    failed = 0
    for path in files:
        result = load_file(wh, path, force=force)
        failed += not result.ok
        click.echo(result.describe(), err=not result.ok)
    if failed:
        raise click.ClickException(f"{failed} of {len(files)} file(s) failed to load")


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
@click.option("--cache-dir", default="data/p114/raw", show_default=True, type=click.Path(file_okay=False),
              help="Where Portal downloads are kept.")
@click.pass_obj
def backfill_p114(state: State, start: dt.datetime, end: dt.datetime, runs: tuple[str, ...], source: str,
                  cache_dir: str) -> None:
    """Load S0142 files for settlement dates START..END (YYYY-MM-DD, inclusive).

    Killed at any point and started again, it loads every file exactly once: files already in
    the manifest are skipped. Bad files are reported and the rest carry on; the exit code is 1
    if any file failed.
    """
    from ingest.p114.backfill import run_backfill
    from ingest.p114.portal import PortalError

    try:
        summary = run_backfill(state.warehouse(), start.date(), end.date(), runs=runs, source=source,
                               cache_dir=cache_dir, console=err_console)
    except (PortalError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(redact(str(exc))) from None
    for line in summary.lines():
        click.echo(line)
    if summary.failed:
        sys.exit(1)


# ---------------------------------------------------------------------------------------- query
@cli.command()
@click.argument("sql")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.pass_obj
def query(state: State, sql: str, fmt: str) -> None:
    """Run a SQL query against the warehouse and print the result."""
    try:
        rows = state.warehouse().query_rows(sql)
    except WarehouseError as exc:
        raise click.ClickException(str(exc)) from None
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
    table = RichTable(title=title, show_lines=False)
    for name in rows[0] if rows else ["(no rows)"]:
        table.add_column(str(name), overflow="fold")
    for row in rows:
        table.add_row(*["" if v is None else str(v) for v in row.values()])
    console.print(table)


if __name__ == "__main__":
    cli()
