"""Resumable P114 backfill over a settlement-date range, from a folder or the Elexon Portal.

Resumability comes from the loader: each file is loaded in one transaction together with its
manifest row, so a backfill killed at any point and started again plans the same files, skips the
ones already in the manifest and loads the rest exactly once. Portal listings are cached per
publication date in the warehouse and downloads land in a cache folder via ``.part`` + rename,
so a restart neither re-lists old dates nor re-downloads finished files.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from core.errors import ArgumentError, InputFileError
from core.iterators import prefetch
from core.settlement import RUN_PRECEDENCE, RUN_PUBLICATION_WINDOW_DAYS, RUN_RANK
from ingest.p114.layout import FileNameError, S0142Name
from ingest.p114.load import LoadResult, Parsed, load_file, loaded_file_names, parse_whole
from ingest.p114.portal import PortalClient, PortalError
from ingest.p114.tables import PORTAL_LISTED_DATES, PORTAL_LISTING, ensure_p114_schema
from warehouse.base import Delete, Warehouse

log = logging.getLogger(__name__)

#: Listings of publication dates this recent are fetched again: the Portal may still add files.
RELIST_DAYS = 3


@dataclass
class BackfillSummary:
    start: dt.date
    end: dt.date
    runs: tuple[str, ...]
    source: str
    planned: int = 0
    already_loaded: int = 0
    results: list[LoadResult] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def loaded(self) -> list[LoadResult]:
        return [r for r in self.results if r.status == "loaded"]

    @property
    def failed(self) -> list[LoadResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def records(self) -> int:
        return sum(r.records for r in self.loaded)

    def lines(self) -> list[str]:
        rate = self.records / self.seconds if self.seconds else 0.0
        out = [
            f"P114 backfill {self.start} .. {self.end}, runs {','.join(self.runs)}, from {self.source}",
            f"  files found      {self.planned + self.already_loaded:,} ({self.already_loaded:,} already loaded before this run)",
            f"  loaded now       {len(self.loaded):,} files, {self.records:,} records in {self.seconds:,.1f} s ({rate:,.0f} records/s)",
            f"  failed           {len(self.failed):,}",
        ]
        out += [f"    {r.error}" for r in self.failed]
        return out


def _order(name: S0142Name) -> tuple:
    return (name.settlement_date, RUN_RANK[name.settlement_run], name.created_at, name.name)


def _wanted(name: S0142Name, start: dt.date, end: dt.date, runs: Iterable[str]) -> bool:
    return start <= name.settlement_date <= end and name.settlement_run in runs


def folder_files(
    directory: str | Path, start: dt.date, end: dt.date, runs: Iterable[str]
) -> tuple[list[Path], list[LoadResult]]:
    """S0142 files under ``directory`` for the range, and files whose ``S0142…`` name does not parse."""
    runs = set(runs)
    good: list[tuple[S0142Name, Path]] = []
    bad: list[LoadResult] = []
    root = Path(directory)
    if not root.is_dir():
        raise InputFileError(f"P114 source folder {root} does not exist")
    for path in sorted(root.rglob("*")):
        if not path.is_file() or not path.name.upper().startswith("S0142") or path.name.endswith(".part"):
            continue
        try:
            name = S0142Name.parse(path.name)
        except FileNameError as exc:
            bad.append(LoadResult(path.name, "failed", error=f"{path}: {exc.reason}"))
            continue
        if _wanted(name, start, end, runs):
            good.append((name, path))
    good.sort(key=lambda item: _order(item[0]))
    return [path for _, path in good], bad


def expand_paths(paths: Iterable[str | Path]) -> tuple[list[Path], list[LoadResult]]:
    """The files named on a command line, each folder replaced by the S0142 files under it (every
    date and run, in settlement order); a folder's misnamed ``S0142…`` files, or none at all, fail."""
    files: list[Path] = []
    failed: list[LoadResult] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            files.append(path)
            continue
        found, bad = folder_files(path, dt.date.min, dt.date.max, RUN_PRECEDENCE)
        files += found
        failed += bad
        if not found and not bad:
            failed.append(LoadResult(path.name, "failed", error=f"{path}: a folder with no S0142 files (S0142_*) in it"))
    return files, failed


def publication_dates(start: dt.date, end: dt.date, runs: Iterable[str], today: dt.date) -> list[dt.date]:
    """Publication dates on which files for settlement dates ``start..end`` of ``runs`` can appear."""
    days: set[dt.date] = set()
    for run in runs:
        lo, hi = RUN_PUBLICATION_WINDOW_DAYS[run]
        first, last = start + dt.timedelta(days=lo), min(end + dt.timedelta(days=hi), today)
        days.update(first + dt.timedelta(days=i) for i in range((last - first).days + 1))
    return sorted(days)


def portal_files(
    wh: Warehouse,
    client: PortalClient,
    start: dt.date,
    end: dt.date,
    runs: Iterable[str],
    *,
    today: dt.date | None = None,
    console: Console | None = None,
) -> list[str]:
    """Names of the Portal's S0142 files for the range, listing only publication dates not cached yet."""
    runs = tuple(runs)
    today = today or dt.date.today()
    dates = publication_dates(start, end, runs, today)
    fresh_after = today - dt.timedelta(days=RELIST_DAYS)
    cached = {
        r["publication_date"]
        for r in wh.query_rows(f"SELECT publication_date FROM {wh.ref(PORTAL_LISTED_DATES.name)}")
    }
    to_list = [d for d in dates if d not in cached or d >= fresh_after]
    with _progress(console) as progress:
        task = progress.add_task("listing Portal publication dates", total=len(to_list), records="", rate="")
        for day in to_list:
            names = client.list_s0142(day)
            now = dt.datetime.now(dt.timezone.utc)
            wh.write(
                {
                    PORTAL_LISTING.name: PORTAL_LISTING.conform(
                        pa.table({"publication_date": [day] * len(names), "file_name": names, "listed_at": [now] * len(names)})
                    ),
                    PORTAL_LISTED_DATES.name: PORTAL_LISTED_DATES.conform(
                        pa.table({"publication_date": [day], "files": [len(names)], "listed_at": [now]})
                    ),
                },
                deletes=[Delete(PORTAL_LISTING.name, "publication_date", day),
                         Delete(PORTAL_LISTED_DATES.name, "publication_date", day)],
            )
            progress.advance(task)
    rows = wh.query_rows(
        f"SELECT DISTINCT file_name FROM {wh.ref(PORTAL_LISTING.name)} "
        "WHERE publication_date BETWEEN @first AND @last",
        {"first": dates[0], "last": dates[-1]} if dates else {"first": today, "last": today},
    )
    names = []
    for row in rows:
        try:
            name = S0142Name.parse(row["file_name"])
        except FileNameError:
            log.warning("the Portal lists %s, whose name does not parse; ignored", row["file_name"])
            continue
        if _wanted(name, start, end, runs):
            names.append(name)
    return [n.name for n in sorted(names, key=_order)]


def run_backfill(
    wh: Warehouse,
    start: dt.date,
    end: dt.date,
    *,
    runs: Iterable[str] = RUN_PRECEDENCE,
    source: str = "portal",
    cache_dir: str | Path = "data/p114/raw",
    client: PortalClient | None = None,
    console: Console | None = None,
    today: dt.date | None = None,
) -> BackfillSummary:
    """Load every S0142 file for settlement dates ``start..end`` and ``runs`` not loaded yet."""
    if end < start:
        raise ArgumentError(f"END {end} is before START {start}")
    runs = tuple(r for r in RUN_PRECEDENCE if r in set(runs))
    ensure_p114_schema(wh)
    summary = BackfillSummary(start, end, runs, source)
    started = time.perf_counter()
    loaded = loaded_file_names(wh)

    if source == "portal":
        client = client or PortalClient()
        listed = portal_files(wh, client, start, end, runs, today=today, console=console)
        names = [n for n in listed if n not in loaded]
        summary.already_loaded = len(listed) - len(names)
        # the next file downloads while the current one loads
        pending: Iterator[tuple[str, Path | None, str | None]] = prefetch(_downloads(client, names, Path(cache_dir)))
        planned = len(names)
    else:
        paths, bad = folder_files(source, start, end, runs)
        summary.results.extend(bad)
        todo = [p for p in paths if p.name not in loaded]
        summary.already_loaded = len(paths) - len(todo)
        pending = ((p.name, p, None) for p in todo)
        planned = len(todo)
    summary.planned = planned

    with _progress(console) as progress, ThreadPoolExecutor(1, thread_name_prefix="parse-ahead") as parser:
        task = progress.add_task("loading S0142 files", total=planned, records="0 records", rate="")
        records = 0
        for done, (name, path, error, parsed) in enumerate(_parsed_ahead(pending, parser), start=1):
            if error is not None:
                result = LoadResult(name, "failed", error=error)  # reported once, in the summary
            else:
                result = load_file(wh, path, origin=str(path) if source != "portal" else f"portal:{path}",
                                   ensure_schema=False, parsed=parsed)
            summary.results.append(result)
            records += result.records
            elapsed = time.perf_counter() - started
            progress.update(task, advance=1, records=f"{records:,} records", rate=f"{records / elapsed:,.0f} rec/s")
            if progress.disable:  # no terminal (cron, systemd): one log line per file instead of a bar
                log.info("[%d/%d] %s", done, planned, result.describe())
    summary.seconds = time.perf_counter() - started
    return summary


def load_paths(wh: Warehouse, paths: Iterable[Path], *, force: bool = False) -> Iterator[LoadResult]:
    """Load files in the order given, each in its own transaction, the next parsed while this one is
    written; a file already loaded is skipped (not parsed) unless ``force``."""
    ensure_p114_schema(wh)
    skip = set() if force else loaded_file_names(wh)
    with ThreadPoolExecutor(1, thread_name_prefix="parse-ahead") as parser:
        for _, path, _, parsed in _parsed_ahead(((p.name, p, None) for p in paths), parser, skip):
            yield load_file(wh, path, force=force, ensure_schema=False, parsed=parsed)


def _parsed_ahead(pending: Iterator[tuple[str, Path | None, str | None]], parser: ThreadPoolExecutor,
                  skip: set[str] = frozenset()) -> Iterator[tuple[str, Path | None, str | None, Parsed | None]]:
    """Each file with its parse, the next file's parse started before this one is handed over: file
    N+1 is parsed (Polars, off the GIL) while file N is written (DuckDB). At most two files are in
    memory; nothing is written ahead, so an interrupted backfill resumes exactly as before. Files
    named in ``skip`` are not parsed."""
    def start(item):
        if item is None:
            return None
        name, path, error = item
        wanted = error is None and path is not None and name not in skip
        return item, (parser.submit(parse_whole, path) if wanted else None)

    items = iter(pending)
    current = start(next(items, None))
    while current is not None:
        (name, path, error), future = current
        parsed = future.result() if future is not None else None
        current = start(next(items, None))
        yield name, path, error, parsed


def _downloads(client: PortalClient, names: list[str], cache: Path) -> Iterator[tuple[str, Path | None, str | None]]:
    """Each file from the cache folder if complete there, else from the Portal; errors as values."""
    for name in names:
        cached = cache / name
        if cached.is_file():
            yield name, cached, None
            continue
        try:
            yield name, client.download(name, cache), None
        except PortalError as exc:
            yield name, None, str(exc)


def _progress(console: Console | None) -> Progress:
    console = console or Console(stderr=True)
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TextColumn("{task.fields[records]}"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
    )
