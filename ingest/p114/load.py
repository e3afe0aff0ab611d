"""Load S0142 files into the warehouse: one transaction per file, idempotent by file name.

A file's rows in every table and its manifest row are written in the same transaction, so after
any crash a file is either wholly loaded (and in the manifest) or absent. Loading a file that is
already in the manifest is a no-op; ``force=True`` replaces it in the same single transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from core.iterators import prefetch
from ingest.p114.layout import FileNameError, S0142Name
from ingest.p114.s0142 import S0142Error, S0142Header, iter_s0142
from ingest.p114.tables import DATA_TABLES, LOAD_ERRORS, MANIFEST, ensure_p114_schema
from warehouse.base import Delete, Warehouse, WarehouseError

log = logging.getLogger(__name__)


@dataclass
class LoadResult:
    """What happened to one file."""

    file_name: str
    status: str  # "loaded" | "skipped" | "failed"
    records: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status != "failed"

    def describe(self) -> str:
        if self.status == "skipped":
            return self.warnings[0] if self.warnings else f"{self.file_name}: already loaded; skipped (use --force to reload)"
        if self.status == "failed":
            return f"FAILED {self.error}"
        rate = self.records / self.seconds if self.seconds else 0
        return f"{self.file_name}: loaded {self.records:,} records in {self.seconds:.2f} s ({rate:,.0f} records/s)"


def loaded_file_names(wh: Warehouse) -> set[str]:
    """Names of every file in the manifest."""
    return {r["file_name"] for r in wh.query_rows(f"SELECT file_name FROM {wh.ref(MANIFEST.name)}")}


def is_loaded(wh: Warehouse, file_name: str) -> bool:
    return bool(
        wh.scalar(f"SELECT COUNT(*) FROM {wh.ref(MANIFEST.name)} WHERE file_name = @name", {"name": file_name})
    )


def load_file(
    wh: Warehouse,
    source: str | Path | bytes,
    name: str | None = None,
    *,
    origin: str | None = None,
    force: bool = False,
    ensure_schema: bool = True,
    parsed: "Parsed | None" = None,
) -> LoadResult:
    """Parse and load one S0142 file (path or bytes) in a single transaction.

    Never raises for a bad file: the result says ``failed`` with an error naming the file, line
    and field, and the failure is recorded in ``p114_load_errors``. Warehouse errors propagate.
    ``parsed``: the file already parsed by :func:`parse_whole` (a backfill parses the next file
    while this one is written).
    """
    name = name or Path(source).name  # type: ignore[arg-type]
    origin = origin or (str(source) if isinstance(source, (str, Path)) else "bytes")
    if isinstance(source, (str, Path)) and not Path(source).is_file():
        what = "is a folder, not a file" if Path(source).is_dir() else "no such file"
        return LoadResult(name, "failed", error=f"{source}: {what}")
    if ensure_schema:
        ensure_p114_schema(wh)
    started = time.perf_counter()
    try:
        S0142Name.parse(name)
    except FileNameError as exc:
        return _failed(wh, exc, origin, started)
    if not force and is_loaded(wh, name):
        return _skipped(wh, source, name)
    try:
        header, tables = parsed.result() if parsed is not None else iter_s0142(source, name)
        rows: dict[str, int] = {}
        deletes = (
            [Delete(t.name, "source_file", name) for t in DATA_TABLES.values()] + [Delete(MANIFEST.name, "file_name", name)]
            if force else []
        )
        wh.write(_batches(header, tables, rows, origin, started), deletes)
    except S0142Error as exc:
        return _failed(wh, exc, origin, started)
    for warning in header.warnings:
        log.warning("%s", warning)
    return LoadResult(
        name, "loaded", records=header.records, rows=rows, seconds=time.perf_counter() - started, warnings=header.warnings
    )


@dataclass
class Parsed:
    """A whole file parsed ahead of its write: its header and tables, or the exception parsing raised."""

    header: S0142Header | None = None
    tables: list[tuple[str, pa.Table]] = field(default_factory=list)
    error: BaseException | None = None

    def result(self) -> tuple[S0142Header, Iterator[tuple[str, pa.Table]]]:
        if self.error is not None:
            raise self.error
        return self.header, iter(self.tables)


def parse_whole(source: str | Path | bytes, name: str | None = None) -> Parsed:
    """Parse every table of a file now (on a helper thread, while another file is written); an error
    is kept for :func:`load_file` to report, in order, as if it had parsed the file itself."""
    try:
        header, tables = iter_s0142(source, name)
        return Parsed(header, list(tables))
    except Exception as exc:  # noqa: BLE001 - re-raised by Parsed.result in the loading thread
        return Parsed(error=exc)


def _failed(wh: Warehouse, exc: S0142Error, origin: str, started: float) -> LoadResult:
    _record_error(wh, exc, origin)
    log.debug("%s", exc)  # the result carries it: the caller reports it once
    return LoadResult(exc.file, "failed", seconds=time.perf_counter() - started, error=str(exc))


def _skipped(wh: Warehouse, source: str | Path | bytes, name: str) -> LoadResult:
    """A file already in the manifest; warn if the bytes differ from the ones loaded under that name."""
    loaded = wh.scalar(f"SELECT sha256 FROM {wh.ref(MANIFEST.name)} WHERE file_name = @name", {"name": name})
    try:
        raw = Path(source).read_bytes() if isinstance(source, (str, Path)) else source
    except OSError:
        return LoadResult(name, "skipped")
    if hashlib.sha256(raw).hexdigest() != loaded:
        message = f"{name}: already loaded, but this copy's content differs (sha256); use --force to replace it"
        return LoadResult(name, "skipped", warnings=[message])
    return LoadResult(name, "skipped")


def _batches(
    header: S0142Header, tables: Iterator[tuple[str, pa.Table]], rows: dict[str, int], origin: str, started: float
) -> Iterator[tuple[str, pa.Table]]:
    """The file's tables (built on a helper thread while the previous one is written), then its manifest row."""
    for key, table in prefetch(tables):
        spec = DATA_TABLES[key]
        rows[spec.name] = table.num_rows
        yield spec.name, spec.conform(table)
    name = header.name
    manifest = {
        "file_name": name.name,
        "settlement_date": name.settlement_date,
        "settlement_run": name.settlement_run,
        "file_created_at": name.created_at,
        "flow_version": header.flow_version,
        "layout": header.layout,
        "sha256": header.sha256,
        "size_bytes": header.size_bytes,
        "periods": header.periods,
        "records": header.records,
        "record_counts": json.dumps(header.record_counts, sort_keys=True),
        "rows_loaded": json.dumps(rows, sort_keys=True),
        "source": origin,
        "parse_seconds": round(time.perf_counter() - started, 3),
        "loaded_at": dt.datetime.now(dt.timezone.utc),
    }
    yield MANIFEST.name, MANIFEST.conform(pa.Table.from_pylist([manifest]))


def _record_error(wh: Warehouse, exc: S0142Error, origin: str) -> None:
    row = {
        "file_name": exc.file,
        "line": exc.line,
        "field": exc.field,
        "error": str(exc),
        "source": origin,
        "failed_at": dt.datetime.now(dt.timezone.utc),
    }
    try:
        wh.write({LOAD_ERRORS.name: LOAD_ERRORS.conform(pa.Table.from_pylist([row]))})
    except WarehouseError as werr:  # the error is still reported to the caller
        log.warning("could not record the load error in %s: %s", LOAD_ERRORS.name, werr)
