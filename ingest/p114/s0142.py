"""``read_s0142``: one S0142 settlement file → validated Arrow tables, vectorised with Polars.

How it works, all column-wise (no Python loop over records):

1. inflate with ISA-L (2-3x zlib), drop a UTF-8 BOM, read the text as one column of lines;
2. split the lines by their 3-character record id in one pass, count every record type, and check
   every record's width against the flow version's layout;
3. re-read the lines of each loaded record type as typed pipe-delimited CSV (blank = NULL);
4. attach each record to its enclosing context with as-of joins on the line number: the last SPI
   period in the system section; BPH party → SP7 period → BP7 unit in the party section;
5. validate the structure (periods 1..N for the Europe/London day, one BPI/BP7 per unit and period,
   ZZZ count, header against file name).

Any problem raises :class:`S0142Error` naming the file, the 1-based line and the field, before
anything is written anywhere.
"""

from __future__ import annotations

import hashlib
import io
import logging
import math
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
from isal import isal_zlib

from core.errors import S0142Error
from core.iterators import prefetch
from core.settlement import periods_in_day
from ingest.p114.layout import (
    APC_FIELDS,
    BO4_FIELDS,
    BP7_FIELDS,
    BPI_FIELDS,
    SPI_FIELDS,
    Field,
    FileNameError,
    S0142Name,
    widths_for,
)

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {"str": pl.String, "float": pl.Float64, "int": pl.Int32}


@dataclass
class S0142Header:
    """What framing a file establishes before any table is built: identity, layout and counts."""

    name: S0142Name
    flow_version: str
    sha256: str
    size_bytes: int
    periods: int
    record_counts: dict[str, int]
    warnings: list[str] = field(default_factory=list)

    @property
    def records(self) -> int:
        return sum(self.record_counts.values())


@dataclass
class ParsedS0142(S0142Header):
    """A whole parsed file: the header plus one Arrow table per loaded record type."""

    tables: dict[str, pa.Table] = field(default_factory=dict)


def iter_s0142(source: str | Path | bytes, name: str | None = None) -> tuple[S0142Header, Iterator[tuple[str, pa.Table]]]:
    """Frame and validate a file, then yield its tables (spi, bpi, bp7, bo4, apc) as they are built.

    The header, record widths, ZZZ count and record ids are all checked before this returns; the
    iterator may still raise :class:`S0142Error` for structure problems found while building a
    table, so a consumer must treat the file as one unit (the loader writes it in one transaction).
    """
    raw, meta = _source(source, name)
    reader = _Reader(meta, raw)
    header = reader.frame()
    return header, reader.tables()


def read_s0142(source: str | Path | bytes, name: str | None = None) -> ParsedS0142:
    """Parse one S0142 file (gzip or plain) from a path or bytes; ``name`` defaults to the path's name."""
    header, tables = iter_s0142(source, name)
    return ParsedS0142(**vars(header), tables=dict(tables))


def _source(source: str | Path | bytes, name: str | None) -> tuple[bytes, S0142Name]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise S0142Error(name, f"cannot read file: {exc.strerror or exc}") from None
    else:
        raw = source
        if not name:
            raise ValueError("a file given as bytes needs its file name")
    try:
        return raw, S0142Name.parse(name)
    except FileNameError:
        raise


class _Reader:
    def __init__(self, meta: S0142Name, raw: bytes):
        self.meta = meta
        self.file = meta.name
        self.raw = raw

    def fail(self, message: str, line: int | None = None, field: str | None = None) -> S0142Error:
        return S0142Error(self.file, message, line, field)

    # ------------------------------------------------------------------ framing
    def _chunks(self, size: int = 8 << 20) -> Iterator[bytes]:
        """The file's text in pieces of about ``size`` bytes that end at a line break (BOM dropped)."""
        if not self.raw.startswith(GZIP_MAGIC):
            yield self.raw[len(BOM):] if self.raw.startswith(BOM) else self.raw
            return
        pending, tail, first = self.raw, b"", True
        inflater = isal_zlib.decompressobj(wbits=31)
        while True:
            try:
                out = inflater.decompress(pending, size)
            except (OSError, zlib.error, isal_zlib.error) as exc:
                raise self.fail(f"corrupt gzip data ({exc})") from None
            pending = inflater.unconsumed_tail
            text = tail + out
            if first and text.startswith(BOM):
                text = text[len(BOM):]
            first = False
            if inflater.eof:
                if inflater.unused_data.strip(b"\0"):  # another gzip member follows
                    pending, inflater = inflater.unused_data, isal_zlib.decompressobj(wbits=31)
                    tail = text
                    continue
                if text:
                    yield text
                return
            if not out and not pending:
                raise self.fail("truncated gzip data (the compressed stream ends before its end marker)")
            cut = text.rfind(b"\n") + 1
            if cut:
                yield text[:cut]
            tail = text[cut:]

    def _lines(self) -> pl.DataFrame:
        """Non-blank lines with their 0-based line index, record id and field count.

        Inflating the next piece overlaps with splitting this one into lines.
        """
        frames = [self._split_lines(text) for text in prefetch(self._chunks(), depth=2)]
        if not frames:
            return pl.DataFrame(schema={"idx": pl.UInt32, "line": pl.String, "rec": pl.String,
                                        "nfields": pl.Int32, "id_ok": pl.Boolean})
        lines = pl.concat(frames).with_row_index("idx")
        if lines["line"].null_count() or (lines["line"] == "").any():  # blank lines are not records
            lines = lines.filter(pl.col("line").is_not_null() & (pl.col("line") != ""))
        return lines

    def _split_lines(self, text: bytes) -> pl.DataFrame:
        try:
            frame = pl.read_csv(
                io.BytesIO(text), has_header=False, separator="\x1f", quote_char=None,
                new_columns=["line"], schema={"line": pl.String},
            )
        except Exception as exc:  # polars raises ComputeError for undecodable text
            try:
                text.decode("utf-8")
            except UnicodeDecodeError as ude:
                line_start = text.rfind(b"\n", 0, ude.start) + 1
                raise self.fail(
                    f"byte {text[ude.start]:#04x} is not ASCII/UTF-8 text (in the line starting "
                    f"{text[line_start:line_start + 20]!r})"
                ) from None
            raise self.fail(f"cannot split the file into lines ({exc})") from None
        line = pl.col("line")
        return frame.with_columns(
            line.str.slice(0, 3).alias("rec"),
            # fields = pipes, +1 when the trailing pipe is missing; the id must be followed by a pipe
            (line.str.count_matches("|", literal=True).cast(pl.Int32)
             + (~line.str.ends_with("|")).cast(pl.Int32)).alias("nfields"),
            (line.str.slice(3, 1) == "|").alias("id_ok"),
        )

    # ------------------------------------------------------------------ parse
    def frame(self) -> S0142Header:
        """Split into records, check header, ids, widths and the ZZZ count; keep the parts for tables()."""
        records = self._lines()
        if records.height < 3:
            raise self.fail(f"only {records.height} records; an S0142 file has at least AAA, SRH and ZZZ")
        first, second, last = records.row(0, named=True), records.row(1, named=True), records.row(-1, named=True)
        for row, want, what in ((first, "AAA", "first"), (second, "SRH", "second"), (last, "ZZZ", "last")):
            if row["rec"] != want:
                hint = " (file truncated?)" if what == "last" else ""
                raise self.fail(f"{what} record is {row['line'][:3]!r}, expected {want}{hint}", row["idx"] + 1)

        aaa = first["line"].split("|")
        flow_id = aaa[1] if len(aaa) > 1 else ""
        if not (flow_id.startswith("S0142") and len(flow_id) == 8 and flow_id[5:].isdigit()):
            raise self.fail(f"AAA file type is {flow_id!r}, expected S0142 plus a 3-digit version", 1, "AAA 1")
        flow_version = flow_id[5:]
        widths = widths_for(flow_version)

        counts = self._count_and_check(records, widths, flow_version)
        parts = {key[0]: part for key, part in records.partition_by("rec", as_dict=True).items()}
        for rec in ("AAA", "SRH", "ZZZ"):
            if counts[rec] != 1:
                raise self.fail(f"{counts[rec]} {rec} records; expected exactly one", parts[rec]["idx"][1] + 1)
        self._check_header(aaa, second["line"].split("|"), first["idx"] + 1, second["idx"] + 1)
        zzz = last["line"].split("|")
        try:
            declared = int(zzz[1])
        except ValueError:
            raise self.fail(f"ZZZ record count {zzz[1]!r} is not a number", last["idx"] + 1, "ZZZ 1") from None
        if declared != records.height:
            raise self.fail(
                f"ZZZ says {declared} records but the file has {records.height} (truncated or corrupt)",
                last["idx"] + 1, "ZZZ 1",
            )

        warnings = []
        unknown = [rec for rec in counts if rec not in widths]
        if unknown:
            warnings.append(
                f"{self.file}: record types not in the S0142{flow_version} layout were counted but not loaded: "
                + ", ".join(f"{rec} x{counts[rec]}" for rec in unknown)
            )
        if flow_version not in ("013", "014"):
            warnings.append(f"{self.file}: flow version {flow_version} read with the 013 layout (all widths matched)")

        self.parts, self.widths = parts, widths
        self.n_periods = periods_in_day(self.meta.settlement_date)
        return S0142Header(
            name=self.meta, flow_version=flow_version, sha256=hashlib.sha256(self.raw).hexdigest(),
            size_bytes=len(self.raw), periods=self.n_periods, record_counts=counts, warnings=warnings,
        )

    def _count_and_check(self, records: pl.DataFrame, widths: dict[str, int], version: str) -> dict[str, int]:
        """Records per type; every line starts with a 3-character id and a pipe, and known types have
        their layout's width. One aggregation over all records; the offending line is looked up only
        when something is wrong."""
        stats = records.group_by("rec").agg(
            pl.len().alias("n"), pl.col("nfields").min().alias("lo"), pl.col("nfields").max().alias("hi"),
            pl.col("id_ok").all().alias("ids_ok"),
        )
        for rec, n, lo, hi, ids_ok in stats.iter_rows():
            if not ids_ok or len(rec) != 3 or not (rec.isalnum() and rec == rec.upper()):
                bad = records.filter((pl.col("rec") == rec) & (~pl.col("id_ok") | pl.lit(ids_ok)))
                raise self.fail(f"not an S0142 record: {bad['line'][0][:40]!r}", bad["idx"][0] + 1, "record id")
            if rec in widths and not lo == hi == widths[rec]:
                wrong = records.filter((pl.col("rec") == rec) & (pl.col("nfields") != widths[rec]))
                more = f" ({wrong.height - 1} more {rec} lines like it)" if wrong.height > 1 else ""
                raise self.fail(
                    f"{rec} record has {wrong['nfields'][0]} fields, expected {widths[rec]} "
                    f"for flow version S0142{version}{more}",
                    wrong["idx"][0] + 1, "field count",
                )
        return dict(sorted((rec, n) for rec, n, *_ in stats.iter_rows()))

    def _check_header(self, aaa: list[str], srh: list[str], aaa_line: int, srh_line: int) -> None:
        meta = self.meta
        stamp, day = f"{meta.created_at:%Y%m%d%H%M%S}", f"{meta.settlement_date:%Y%m%d}"
        if aaa[3] != stamp:
            raise self.fail(f"AAA creation time {aaa[3]} differs from the file name stamp {stamp}", aaa_line, "AAA 3")
        if srh[1] != day:
            raise self.fail(f"SRH settlement date {srh[1]} differs from the file name date {day}", srh_line, "SRH 1")
        if srh[2] != meta.settlement_run:
            raise self.fail(
                f"SRH settlement run {srh[2]} differs from the file name run {meta.settlement_run}", srh_line, "SRH 2"
            )

    # ------------------------------------------------------------------ fields
    def _fields(self, parts: dict[str, pl.DataFrame], rec: str, fields: list[Field], width: int) -> pl.DataFrame:
        """The ``rec`` records as typed columns plus ``idx``; blank → NULL; a bad value raises."""
        part = parts.get(rec, pl.DataFrame(schema={"idx": pl.UInt32, "line": pl.String, "rec": pl.String}))
        n_data = width - 1
        present = [f for f in fields if f.position <= n_data]
        schema = {f"f{i}": pl.String for i in range(n_data + 2)}  # record id, data fields, after the trailing pipe
        for f in present:
            schema[f"f{f.position}"] = _DTYPES[f.kind]
        typed = None
        if part.height and part["line"].str.ends_with("|").all():
            blob = io.BytesIO()  # the records' lines, one per line: the quickest way to one buffer
            part.select("line").write_csv(blob, include_header=False, quote_style="never")
            blob.seek(0)
            try:
                typed = pl.read_csv(
                    blob, has_header=False, separator="|", quote_char=None, schema=schema,
                    columns=[f.position for f in present],
                )
            except pl.exceptions.PolarsError:
                typed = None  # locate the bad value below, record by record
        if typed is None:
            typed = self._fields_located(part, rec, present, n_data)
        out = typed.select(
            [pl.col(f"f{f.position}").alias(f.name) for f in present]
            + [pl.lit(None, dtype=_DTYPES[f.kind]).alias(f.name) for f in fields if f.position > n_data]
        ).select([f.name for f in fields])
        self._check_finite(out, part, rec, fields)
        return out.with_columns(part["idx"].alias("idx"))

    def _fields_located(self, part: pl.DataFrame, rec: str, present: list[Field], n_data: int) -> pl.DataFrame:
        """Slow path: split and cast field by field so the first bad value can be named exactly."""
        split = part.select(
            "idx", pl.col("line").str.split_exact("|", n_data)
            .struct.rename_fields([f"f{i}" for i in range(n_data + 1)]).alias("s")
        ).unnest("s")
        for f in present:
            raw = pl.col(f"f{f.position}")
            if f.kind == "str":
                split = split.with_columns(pl.when(raw == "").then(None).otherwise(raw).alias(f"f{f.position}"))
                continue
            typed = raw.cast(_DTYPES[f.kind], strict=False)
            bad = split.filter((raw != "") & typed.is_null())
            if bad.height:
                what = "an integer" if f.kind == "int" else "a number"
                raise self.fail(
                    f"{bad[f'f{f.position}'][0]!r} is not {what} ({bad.height} bad {rec} record(s))",
                    bad["idx"][0] + 1, f"{f.name} ({rec} {f.position})",
                )
            split = split.with_columns(typed.alias(f"f{f.position}"))
        return split

    def _check_finite(self, out: pl.DataFrame, part: pl.DataFrame, rec: str, fields: list[Field]) -> None:
        """Reject NaN and infinities (the CSV reader accepts 'nan'/'inf'): a row sum is finite iff its values are."""
        floats = [f for f in fields if f.kind == "float" and f.name in out.columns]
        if not floats or not out.height:
            return
        finite = out.select(pl.sum_horizontal([pl.col(f.name) for f in floats]).is_finite().fill_null(True)).to_series()
        if finite.all():
            return
        i = (~finite).arg_max()
        f = next(f for f in floats if out[f.name][i] is not None and not math.isfinite(out[f.name][i]))
        raise self.fail(f"{out[f.name][i]!r} is not a finite number", part["idx"][i] + 1, f"{f.name} ({rec} {f.position})")

    # ------------------------------------------------------------------ context
    def tables(self) -> Iterator[tuple[str, pa.Table]]:
        """Build, attach context to and validate each loaded record type; yield each when ready.

        BP7, the largest table, comes first so its write overlaps with building the others.
        """
        parts, widths, n_periods = self.parts, self.widths, self.n_periods
        bph = self._party_headers(parts, widths["BPH"])
        party_start = bph["idx"][0] if bph.height else None
        in_party = pl.lit(False) if party_start is None else pl.col("idx") > party_start

        # System section: SPI opens a period.
        spi = self._fields(parts, "SPI", SPI_FIELDS, widths["SPI"])
        self._forbid(spi.filter(in_party), "SPI record inside the party section (after the first BPH)")
        self._check_period_sequence(spi, n_periods)
        yield "spi", self._output(spi, SPI_FIELDS)

        # Party section: BPH opens a party, SP7 a period inside it, BP7 a BM unit inside that period.
        sp7 = self._fields(parts, "SP7", [Field(1, "settlement_period", "int")], widths["SP7"])
        sp7 = sp7.join_asof(bph, on="idx", strategy="backward")
        self._forbid(sp7.filter(pl.col("lead_party_id").is_null()), "SP7 record before any BPH record (no open party)")
        outside = sp7.filter(~pl.col("settlement_period").is_between(1, n_periods))
        if outside.height:
            raise self.fail(
                f"SP7 period {outside['settlement_period'][0]} outside 1..{n_periods} for "
                f"{self.meta.settlement_date} ({n_periods} periods, Europe/London)",
                outside["idx"][0] + 1, "settlement_period (SP7 1)",
            )
        self._forbid_duplicates(sp7, ["lead_party_id", "settlement_period"], "SP7")
        # The last SP7 or BPH before a record decides its period: a new BPH closes the open period.
        no_int = pl.lit(None, dtype=pl.Int32)
        period_ctx = pl.concat(
            [sp7.select("idx", "settlement_period", "lead_party_id"),
             bph.select("idx", no_int.alias("settlement_period"), "lead_party_id")]
        ).sort("idx")
        bp7 = self._fields(parts, "BP7", BP7_FIELDS, widths["BP7"]).join_asof(period_ctx, on="idx", strategy="backward")
        self._forbid(bp7.filter(pl.col("settlement_period").is_null()), "BP7 record without an open SP7 period in its party")
        self._forbid_duplicates(bp7, ["bm_unit_id", "settlement_period"], "BP7")
        yield "bp7", self._output(bp7, BP7_FIELDS, party=True)

        # BPI belongs to the last SPI.
        bpi = self._fields(parts, "BPI", BPI_FIELDS, widths["BPI"])
        self._forbid(bpi.filter(in_party), "BPI record inside the party section (after the first BPH)")
        bpi = bpi.join_asof(spi.select("idx", "settlement_period"), on="idx", strategy="backward")
        self._forbid(bpi.filter(pl.col("settlement_period").is_null()), "BPI record before any SPI record (no open settlement period)")
        self._forbid_duplicates(bpi, ["bm_unit_id", "settlement_period"], "BPI")
        yield "bpi", self._output(bpi, BPI_FIELDS)

        # BO4 hangs off the last BP7 (or BPI, for order tolerance); an SPI, SP7 or BPH after that
        # unit record closes it.
        bo4 = self._fields(parts, "BO4", BO4_FIELDS, widths["BO4"])
        closers = pl.concat([spi.select("idx"), period_ctx.select("idx")]).sort("idx")
        bo4 = (
            bo4.join_asof(closers.select(pl.col("idx"), pl.col("idx").alias("closed_at")), on="idx", strategy="backward")
            .join_asof(bp7.select("idx", pl.col("idx").alias("bp7_at"), "bm_unit_id", "settlement_period",
                                  "lead_party_id"), on="idx", strategy="backward")
            .join_asof(bpi.select("idx", pl.col("idx").alias("bpi_at"), pl.col("bm_unit_id").alias("bpi_unit"),
                                  pl.col("settlement_period").alias("bpi_period")), on="idx", strategy="backward")
        )
        from_bp7 = pl.col("bp7_at").fill_null(-1) > pl.col("bpi_at").fill_null(-1)
        bo4 = bo4.with_columns(
            pl.when(from_bp7).then("bm_unit_id").otherwise("bpi_unit").alias("bm_unit_id"),
            pl.when(from_bp7).then("settlement_period").otherwise("bpi_period").alias("settlement_period"),
            pl.when(from_bp7).then("lead_party_id").otherwise(None).alias("lead_party_id"),
            pl.max_horizontal("bp7_at", "bpi_at").alias("unit_at"),
        )
        self._forbid(
            bo4.filter(pl.col("unit_at").is_null() | (pl.col("closed_at").fill_null(-1) > pl.col("unit_at"))),
            "BO4 record not under a BP7 (no open BM unit)",
        )
        yield "bo4", self._output(bo4, BO4_FIELDS, party=True, unit_from_context=True)

        apc = self._fields(parts, "APC", APC_FIELDS, widths["APC"]).join_asof(bph, on="idx", strategy="backward")
        self._forbid(apc.filter(pl.col("lead_party_id").is_null()), "APC record before any BPH record (no open party)")
        yield "apc", self._output(apc, APC_FIELDS, party=True, period=False)

    def _output(self, frame: pl.DataFrame, fields: list[Field], *, party: bool = False, period: bool = True,
                unit_from_context: bool = False) -> pa.Table:
        """Identity columns, then the record's fields, then its source file and line, as Arrow."""
        meta = self.meta
        cols: list[pl.Expr | str] = [pl.lit(meta.settlement_date).alias("settlement_date")]
        if period:
            cols.append(pl.col("settlement_period").cast(pl.Int64))
        cols += [
            pl.lit(meta.settlement_run).alias("settlement_run"),
            pl.lit(meta.created_at).cast(pl.Datetime("us")).alias("file_created_at"),
        ]
        if party:
            cols.append("lead_party_id")
        if unit_from_context or any(f.name == "bm_unit_id" for f in fields):
            cols.append("bm_unit_id")
        cols += [
            pl.col(f.name).cast(pl.Int64) if f.kind == "int" else pl.col(f.name)
            for f in fields if f.name not in ("settlement_period", "bm_unit_id")
        ]
        cols += [pl.lit(self.file).alias("source_file"), (pl.col("idx").cast(pl.Int64) + 1).alias("source_line")]
        # String views travel zero-copy into DuckDB; Table.conform turns them into plain strings where needed.
        return frame.select(cols).to_arrow(compat_level=pl.CompatLevel.newest())

    def _party_headers(self, parts: dict[str, pl.DataFrame], width: int) -> pl.DataFrame:
        """BPH records as (idx, lead_party_id), checked against the file's settlement date and run."""
        fields = [Field(1, "date", "str"), Field(2, "run", "str"), Field(8, "lead_party_id", "str")]
        bph = self._fields(parts, "BPH", fields, width)
        day, run = f"{self.meta.settlement_date:%Y%m%d}", self.meta.settlement_run
        bad = bph.filter((pl.col("date") != day) | (pl.col("run") != run))
        if bad.height:
            raise self.fail(
                f"BPH is for {bad['date'][0]} run {bad['run'][0]} but the file is {day} run {run}",
                bad["idx"][0] + 1, "BPH 1-2",
            )
        self._forbid(bph.filter(pl.col("lead_party_id").is_null()), "BPH record without a BSC Party Id", "BPH 8")
        return bph.select("idx", "lead_party_id")

    def _check_period_sequence(self, spi: pl.DataFrame, n_periods: int) -> None:
        periods = spi["settlement_period"].to_list()
        for i, (got, want) in enumerate(zip(periods, range(1, n_periods + 1))):
            if got != want:
                raise self.fail(
                    f"SPI periods must run 1..{n_periods} in order for {self.meta.settlement_date} "
                    f"(Europe/London); found period {got} where {want} was expected",
                    spi["idx"][i] + 1, "settlement_period (SPI 1)",
                )
        if len(periods) != n_periods:
            where = spi["idx"][n_periods] + 1 if len(periods) > n_periods else None
            raise self.fail(
                f"{self.meta.settlement_date} has {n_periods} settlement periods (Europe/London) "
                f"but the file has {len(periods)} SPI records", where,
            )

    def _forbid(self, offending: pl.DataFrame, message: str, field: str | None = None) -> None:
        if offending.height:
            raise self.fail(message, offending["idx"][0] + 1, field)

    def _forbid_duplicates(self, frame: pl.DataFrame, key: list[str], rec: str) -> None:
        if frame.select(pl.struct(key).hash().n_unique()).item() == frame.height:  # exact check only on a clash
            return
        dup = frame.filter(~pl.struct(key).is_first_distinct())
        if dup.height:
            what = ", ".join(f"{k}={dup[k][0]}" for k in key)
            raise self.fail(f"duplicate {rec} record for {what}", dup["idx"][0] + 1)
