"""``read_s0142``: one S0142 settlement file → validated Arrow tables, vectorised with Polars.

How it works, all column-wise (no Python loop over records), in one pass over the text:

1. inflate with ISA-L (2-3x zlib) in pieces that end at a line break, drop a UTF-8 BOM, and read
   each piece as one column of lines (refusing over-long lines and implausible inflation on the
   way, so memory follows the file's size, not its worst line);
2. count the records of each type, pick the flow version's :class:`~ingest.p114.layout.Layout`
   from ``AAA`` and check the widths of the record types we do not load on their first and last
   record (a layout difference shows on every record of a type);
3. read the lines of each loaded record type as typed pipe-delimited CSV (blank = NULL) against
   the layout's width: a record of another width, or a value of the wrong type, fails the read,
   and only then are that type's records looked at one by one to name the line and field;
4. attach each record to its enclosing context with as-of joins on the line number: the last SPI
   period in the system section; BPH party → SP7 period → BP7 unit in the party section;
5. validate the structure (periods 1..N for the Europe/London day, one BPI/BP7 per unit and period,
   ZZZ count, header against file name) and the text fields (length, control characters, and for
   a version without a known layout the shape of every field it reads).

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
    BO3_FIELDS,
    BO4_FIELDS,
    BP7_FIELDS,
    BPI_FIELDS,
    SPI_FIELDS,
    Field,
    S0142Name,
    layout_for,
)

log = logging.getLogger(__name__)

BOM = b"\xef\xbb\xbf"
GZIP_MAGIC = b"\x1f\x8b"
_DTYPES = {"str": pl.String, "float": pl.Float64, "int": pl.Int32, "datetime": pl.String}  # datetime: parsed later

#: Limits that make a hostile file cheap to refuse. The widest real record (SSD, 80 fields) is
#: about 700 bytes; ids and codes are at most 11 characters in the IDD (BM Unit Id, Trading Unit
#: Name up to 30); real files inflate about 5:1.
MAX_LINE_BYTES = 4096
MAX_TEXT_BYTES = 32
MAX_INFLATION = 64
#: What an id may contain (BM unit, party, trading unit): letters, digits and ``_ - . / +`` and
#: spaces inside; never NUL or another control character.
ID_PATTERN = r"^[A-Za-z0-9_\-./+]([A-Za-z0-9_\-./+ ]*[A-Za-z0-9_\-./+])?$"
_ID_FIELDS = ("bm_unit_id", "trading_unit", "lead_party_id")
_SENTINEL = "#"  # appended to each record before the typed read: a short record cannot hide


@dataclass
class S0142Header:
    """What framing a file establishes before any table is built: identity, layout and counts."""

    name: S0142Name
    flow_version: str
    layout: str
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
    """Frame and validate a file, then yield its tables (spi, bp7, bpi, bo4, apc) as they are built.

    The header, record ids, the widths of the types not loaded and the ZZZ count are checked
    before this returns; the iterator may still raise :class:`S0142Error` (a loaded record's width,
    a value, the structure), so a consumer must treat the file as one unit (the loader writes it
    in one transaction).
    """
    raw, meta = _source(source, name)
    reader = _Reader(meta, raw)
    header = reader.frame()
    return header, reader.tables()


def read_s0142(source: str | Path | bytes, name: str | None = None) -> ParsedS0142:
    """Parse one S0142 file (gzip or plain) from a path or bytes; ``name`` defaults to the path's name."""
    header, tables = iter_s0142(source, name)
    return ParsedS0142(**vars(header), tables=dict(tables))


def inspect_s0142(source: str | Path | bytes, name: str | None = None) -> dict:
    """What a file is made of, without judging it against a layout: flow version, the layout it
    would be read with, and per record type the count and the widths seen (what a user with an
    older file needs to contribute its layout)."""
    raw, meta = _source(source, name)
    reader = _Reader(meta, raw)
    lines = reader._lines()
    first = lines["line"][0] if lines.height else ""
    version = first.split("|")[1][5:] if first.startswith("AAA|") and first.count("|") > 1 else "?"
    layout = layout_for(version)
    stats = (
        lines.group_by("rec", maintain_order=True)
        .agg(pl.len().alias("records"), _width().min().alias("min_width"), _width().max().alias("max_width"),
             (pl.col("idx").first() + 1).alias("first_line"))
    )
    rows = []
    for rec, n, lo, hi, first_line in stats.iter_rows():
        rec = rec.rstrip("|")
        expected = layout.widths.get(rec) if layout.known else None
        rows.append({
            "record": rec, "records": n, "width": lo if lo == hi else f"{lo}-{hi}", "first_line": first_line,
            "layout_width": expected, "loaded": rec in layout.loaded(),
            "check": "" if expected is None or lo == hi == expected else "DIFFERS",
        })
    return {"file": meta.name, "flow_version": version, "layout": layout.name, "records": lines.height,
            "size_bytes": len(raw), "record_types": rows}


def _width() -> pl.Expr:
    """Fields in a line, record id included, trailing pipe excluded."""
    line = pl.col("line")
    return line.str.count_matches("|", literal=True).cast(pl.Int32) + (~line.str.ends_with("|")).cast(pl.Int32)


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
    return raw, S0142Name.parse(name)


class _Reader:
    def __init__(self, meta: S0142Name, raw: bytes):
        self.meta = meta
        self.file = meta.name
        self.raw = raw

    def fail(self, message: str, line: int | None = None, field: str | None = None) -> S0142Error:
        return S0142Error(self.file, message, line, field)

    # ------------------------------------------------------------------ framing
    def _chunks(self, size: int = 8 << 20) -> Iterator[bytes]:
        """The file's text in pieces of about ``size`` bytes that end at a line break (BOM dropped).

        Refuses, as soon as it shows, a line longer than :data:`MAX_LINE_BYTES` and text more than
        :data:`MAX_INFLATION` times the compressed size: neither can take memory beyond a piece.
        """
        if not self.raw.startswith(GZIP_MAGIC):
            text = self.raw[len(BOM):] if self.raw.startswith(BOM) else self.raw
            yield text
            return
        pending, tail, first, inflated = self.raw, b"", True, 0
        budget = MAX_INFLATION * len(self.raw) + (1 << 20)
        inflater = isal_zlib.decompressobj(wbits=31)
        while True:
            try:
                out = inflater.decompress(pending, size)
            except (OSError, zlib.error, isal_zlib.error) as exc:
                raise self.fail(f"corrupt gzip data ({exc})") from None
            inflated += len(out)
            if inflated > budget:
                raise self.fail(
                    f"inflates to more than {MAX_INFLATION} times its compressed size ({len(self.raw):,} bytes); "
                    "real S0142 files inflate about 5 times: refused as not a settlement report"
                )
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
            if len(tail) > MAX_LINE_BYTES:
                raise self.fail(f"a line is longer than {MAX_LINE_BYTES:,} bytes (starts {tail[:40]!r})")

    def _lines(self) -> pl.DataFrame:
        """Non-blank lines with their 0-based line index and record id (its first 4 characters).

        Inflating the next piece overlaps with splitting this one into lines.
        """
        frames, offset = [], 0
        for text in prefetch(self._chunks(), depth=2):
            frame = self._split_lines(text, offset)
            offset += frame.height
            frames.append(frame)
        if not frames:
            return pl.DataFrame(schema={"idx": pl.UInt32, "line": pl.String, "rec": pl.String})
        lines = pl.concat(frames).with_row_index("idx")
        if lines["line"].null_count() or (lines["line"] == "").any():  # blank lines are not records
            lines = lines.filter(pl.col("line").is_not_null() & (pl.col("line") != ""))
        return lines

    def _split_lines(self, text: bytes, offset: int) -> pl.DataFrame:
        try:
            frame = pl.read_csv(
                io.BytesIO(text), has_header=False, separator="\x1f", quote_char=None,
                new_columns=["line"], schema={"line": pl.String},
            )
        except Exception as exc:  # polars raises ComputeError for undecodable text
            raise self._locate_bad_text(text, offset, exc) from None
        line = pl.col("line")
        longest = frame.select(line.str.len_bytes().max()).item() or 0
        if longest > MAX_LINE_BYTES:
            at = frame.select((line.str.len_bytes() > MAX_LINE_BYTES).arg_max()).item()
            raise self.fail(f"line is {longest:,} bytes long; the limit is {MAX_LINE_BYTES:,}", offset + at + 1)
        return frame.with_columns(line.str.slice(0, 4).alias("rec"))

    def _locate_bad_text(self, text: bytes, offset: int, exc: Exception) -> S0142Error:
        """The line and byte of text that is not UTF-8 or holds the unit separator (0x1f)."""
        try:
            text.decode("utf-8")
            at, what = text.find(b"\x1f"), "a control character"
        except UnicodeDecodeError as ude:
            at, what = ude.start, "not ASCII/UTF-8 text"
        if at < 0:
            return self.fail(f"cannot split the file into lines ({exc})")
        line_start = text.rfind(b"\n", 0, at) + 1
        return self.fail(
            f"byte {text[at]:#04x} is {what} (in the line starting {text[line_start:line_start + 20]!r})",
            offset + text.count(b"\n", 0, line_start) + 1,
        )

    # ------------------------------------------------------------------ parse
    def frame(self) -> S0142Header:
        """Split into records, check header, ids, widths of unloaded types and the ZZZ count; keep
        each loaded type's lines for tables()."""
        if not self.raw:
            raise self.fail("empty file (0 bytes): an interrupted download or copy?")
        records = self._lines()
        if records.height and not records["line"][0].startswith("AAA|"):
            raise self.fail(f"not an S0142 settlement report: it starts {records['line'][0][:40]!r}, not with an AAA "
                            "record (an error page or another file saved under this name?)", records["idx"][0] + 1)
        if records.height < 3:
            raise self.fail(f"only {records.height} records; an S0142 file has at least AAA, SRH and ZZZ")
        first, second, last = records.row(0, named=True), records.row(1, named=True), records.row(-1, named=True)
        for row, want, what in ((second, "SRH", "second"), (last, "ZZZ", "last")):
            if row["rec"] != want + "|":
                hint = " (file truncated?)" if what == "last" else ""
                raise self.fail(f"{what} record is {row['line'][:3]!r}, expected {want}{hint}", row["idx"] + 1)

        aaa = first["line"].split("|")
        flow_id = aaa[1] if len(aaa) > 1 else ""
        if not (flow_id.startswith("S0142") and len(flow_id) == 8 and flow_id[5:].isdigit()):
            raise self.fail(f"AAA file type is {flow_id!r}, expected S0142 plus a 3-digit version", 1, "AAA 1")
        layout = layout_for(flow_id[5:])
        self.layout = layout

        counts, ends = self._count(records)
        for rec in ("AAA", "SRH", "ZZZ"):
            if counts[rec] != 1:
                extra = records.filter(pl.col("rec") == rec + "|")["idx"][1]
                raise self.fail(f"{counts[rec]} {rec} records; expected exactly one", extra + 1)
        for row in (first, second, last):
            self._check_width(row["line"], row["idx"])
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

        loaded = layout.loaded()
        needed = set(loaded) | {"BPH", "SP7"}
        if layout.known:  # a type we do not load differs on its first and last record if at all
            for rec in counts.keys() - needed:
                for idx, line in ends[rec]:
                    self._check_width(line, idx)
        self.parts = {rec: records.filter(pl.col("rec") == rec + "|").select("idx", "line") for rec in needed}

        warnings = []
        unknown = [rec for rec in counts if rec not in layout.widths and layout.known]
        if unknown:
            warnings.append(
                f"{self.file}: record types not in the S0142{layout.version} layout were counted but not loaded: "
                + ", ".join(f"{rec} x{counts[rec]}" for rec in unknown)
            )
        if not layout.known:
            skipped = sorted(rec for rec in counts if rec in {"BPI"})
            warnings.append(
                f"{self.file}: flow version S0142{layout.version} has no known layout: loaded the fields stable "
                f"since v008 (the rest of each record kept in extra_fields), layout = {layout.name}"
                + (f"; not loaded: {', '.join(skipped)} (layout unknown)" if skipped else "")
            )

        self.n_periods = periods_in_day(self.meta.settlement_date)
        return S0142Header(
            name=self.meta, flow_version=layout.version, layout=layout.name, sha256=hashlib.sha256(self.raw).hexdigest(),
            size_bytes=len(self.raw), periods=self.n_periods, record_counts=counts, warnings=warnings,
        )

    def _count(self, records: pl.DataFrame) -> tuple[dict[str, int], dict[str, list[tuple[int, str]]]]:
        """Records per type, and each type's first and last record (index, line); every record
        starts with a 3-character upper-case id and a pipe. One aggregation over all records."""
        stats = records.lazy().group_by("rec").agg(
            pl.len(), pl.col("idx").first().alias("i0"), pl.col("idx").last().alias("i1")
        ).collect()
        # the lines themselves are looked up afterwards: aggregating them would copy every line
        firsts = records["idx"].search_sorted(stats["i0"]).to_list()  # blank lines dropped: idx != position
        lasts = records["idx"].search_sorted(stats["i1"]).to_list()
        lines = records["line"]
        ends: dict[str, list[tuple[int, str]]] = {}
        for (rec4, _, i0, i1), p0, p1 in zip(stats.iter_rows(), firsts, lasts):
            rec = rec4[:3]
            if len(rec4) != 4 or rec4[3] != "|" or not rec.isalnum() or rec != rec.upper() or not rec.isascii():
                raise self.fail(f"not an S0142 record: {lines[p0][:40]!r}", i0 + 1, "record id")
            ends[rec] = [(i0, lines[p0]), (i1, lines[p1])]
        counts = dict(sorted((rec4[:3], n) for rec4, n, *_ in stats.iter_rows()))
        return counts, ends

    def _check_width(self, line: str, idx: int) -> None:
        """One record's width against the layout (at least the stable prefix, for an unknown one)."""
        rec, layout = line[:3], self.layout
        if rec not in layout.widths:
            return
        width = line.count("|") + (not line.endswith("|"))
        want = layout.widths[rec]
        if width == want or (not layout.known and width >= want):
            return
        raise self.fail(
            f"{rec} record has {width} fields, expected {want if layout.known else f'at least {want}'} "
            f"for flow version S0142{layout.version}" + ("" if layout.known else " (the fields stable since v008)"),
            idx + 1, "field count",
        )

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
    def _fields(self, rec: str, fields: list[Field]) -> pl.DataFrame:
        """The ``rec`` records as typed columns plus ``idx`` (and ``extra_fields`` for an unknown
        layout); blank → NULL; a record of the wrong width or a bad value raises, naming it."""
        part = self.parts.get(rec, pl.DataFrame(schema={"idx": pl.UInt32, "line": pl.String}))
        layout = self.layout
        width = layout.widths[rec] if layout.known or not part.height else self._first_width(part)
        n_data, n_read = width - 1, layout.read(rec, width)
        present = [f for f in fields if f.position <= n_read]
        # record id, data fields, the empty cell after the trailing pipe, the sentinel
        schema = {f"f{i}": pl.String for i in range(n_data + 3)}
        for f in present:
            schema[f"f{f.position}"] = _DTYPES[f.kind]
        extra = [f"f{i}" for i in range(n_read + 1, n_data + 1)] if not layout.known else []
        typed = None
        if part.height:
            blob = io.BytesIO()  # the records' lines, one per line: the quickest way to one buffer
            part.select(pl.col("line") + "|" + _SENTINEL).write_csv(blob, include_header=False, quote_style="never")
            blob.seek(0)
            try:
                typed = pl.read_csv(
                    blob, has_header=False, separator="|", quote_char=None, schema=schema,
                    columns=[f.position for f in present] + [int(c[1:]) for c in extra] + [n_data + 2],
                )
            except pl.exceptions.PolarsError:
                typed = None  # locate the bad record below
            if typed is not None and typed[f"f{n_data + 2}"].null_count():
                typed = None  # a record shorter than the layout (its sentinel moved left)
        if typed is None:
            self._check_widths(part, rec, width)
            typed = self._fields_located(part, rec, present, n_data)
        columns = [pl.col(f"f{f.position}").alias(f.name) for f in present]
        columns += [pl.lit(None, dtype=_DTYPES[f.kind]).alias(f.name) for f in fields if f.position > n_read]
        if extra:
            # the cells after the stable prefix, in order, as a JSON array of strings (blank = null)
            columns.append(
                pl.struct(pl.concat_list(extra).alias("x")).struct.json_encode()
                .str.strip_prefix('{"x":').str.strip_suffix("}").alias("extra_fields")
            )
        out = typed.select(columns)
        self._check_finite(out, part, rec, fields)
        self._check_text(out, part, rec, fields)
        return out.with_columns(part["idx"].alias("idx"))

    def _first_width(self, part: pl.DataFrame) -> int:
        line = part["line"][0]
        self._check_width(line, part["idx"][0])
        return line.count("|") + (not line.endswith("|"))

    def _check_widths(self, part: pl.DataFrame, rec: str, width: int) -> None:
        """Name the first record whose width differs from ``width`` (only run once a read failed)."""
        wrong = part.with_columns(_width().alias("w")).filter(pl.col("w") != width)
        if not wrong.height:
            return
        more = f" ({wrong.height - 1} more {rec} lines like it)" if wrong.height > 1 else ""
        version = self.layout.version
        why = (f"for flow version S0142{version}" if self.layout.known
               else f"as the first {rec} record of this file (flow version S0142{version}, layout unknown)")
        raise self.fail(
            f"{rec} record has {wrong['w'][0]} fields, expected {width} {why}{more}", wrong["idx"][0] + 1, "field count"
        )

    def _fields_located(self, part: pl.DataFrame, rec: str, present: list[Field], n_data: int) -> pl.DataFrame:
        """Slow path: split and cast field by field so the first bad value can be named exactly."""
        split = part.select(
            "idx", pl.col("line").str.split_exact("|", n_data)
            .struct.rename_fields([f"f{i}" for i in range(n_data + 1)]).alias("s")
        ).unnest("s")
        for i in range(1, n_data + 1):
            raw = pl.col(f"f{i}")
            split = split.with_columns(pl.when(raw == "").then(None).otherwise(raw).alias(f"f{i}"))
        for f in present:
            if f.kind == "str":
                continue
            raw = pl.col(f"f{f.position}")
            typed = raw.cast(_DTYPES[f.kind], strict=False)
            bad = split.filter(raw.is_not_null() & typed.is_null())
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

    def _check_text(self, out: pl.DataFrame, part: pl.DataFrame, rec: str, fields: list[Field]) -> None:
        """Text fields: at most :data:`MAX_TEXT_BYTES`; ids look like ids (no NUL or control
        characters); for an unknown layout, codes and names are not numbers. Patterns are checked
        on the distinct values (a few thousand ids in a day's file); the record is found on failure."""
        texts = [f for f in fields if f.kind == "str" and f.name in out.columns]
        if not texts or not out.height:
            return
        longest = out.select(pl.col(f.name).str.len_bytes().max() for f in texts).row(0)
        for f, n in zip(texts, longest):
            if n is not None and n > MAX_TEXT_BYTES:
                self._fail_on(out, part, rec, f, pl.col(f.name).str.len_bytes() > MAX_TEXT_BYTES,
                              f"is longer than {MAX_TEXT_BYTES} bytes")
        for f in texts:
            checks = []
            if f.name in _ID_FIELDS:
                checks.append((~pl.col(f.name).str.contains(ID_PATTERN),
                               "is not an id (letters, digits, _ - . / + only; no NUL or control characters)"))
            if not self.layout.known and f.name in ("trading_unit", "price_derivation_code"):
                checks.append((pl.col(f.name).str.contains(r"^[-+]?\d+(\.\d*)?$"), "is a number where text belongs"))
            if not checks:
                continue
            distinct = out[f.name].unique().to_frame()
            for bad, what in checks:
                values = distinct.filter(bad.fill_null(False))[f.name]
                if values.len():
                    self._fail_on(out, part, rec, f, pl.col(f.name).is_in(values.implode()), what)

    def _fail_on(self, out: pl.DataFrame, part: pl.DataFrame, rec: str, f: Field, bad: pl.Expr, what: str) -> None:
        hit = out.select(bad.fill_null(False).arg_true().first()).item()
        raise self.fail(f"{out[f.name][hit][:40]!r} {what}", part["idx"][hit] + 1, f"{f.name} ({rec} {f.position})")

    # ------------------------------------------------------------------ context
    def tables(self) -> Iterator[tuple[str, pa.Table]]:
        """Build, attach context to and validate each loaded record type; yield each when ready.

        BP7, the largest table, comes first so its write overlaps with building the others.
        """
        n_periods, loaded = self.n_periods, self.layout.loaded()
        bph = self._party_headers()
        party_start = bph["idx"][0] if bph.height else None
        in_party = pl.lit(False) if party_start is None else pl.col("idx") > party_start

        # System section: SPI opens a period.
        spi = self._fields("SPI", SPI_FIELDS)
        self._forbid(spi.filter(in_party), "SPI record inside the party section (after the first BPH)")
        self._check_period_sequence(spi, n_periods)
        yield "spi", self._output(spi, SPI_FIELDS)

        # Party section: BPH opens a party, SP7 a period inside it, BP7 a BM unit inside that period.
        sp7 = self._fields("SP7", [Field(1, "settlement_period", "int")])
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
        bp7 = self._fields("BP7", BP7_FIELDS)
        self._check_loss_factors(bp7)
        bp7 = bp7.join_asof(period_ctx, on="idx", strategy="backward")
        self._forbid(bp7.filter(pl.col("settlement_period").is_null()), "BP7 record without an open SP7 period in its party")
        self._forbid_duplicates(bp7, ["bm_unit_id", "settlement_period"], "BP7")
        yield "bp7", self._output(bp7, BP7_FIELDS, party=True)

        # BPI belongs to the last SPI (its layout before v013 is unknown: such files have no BPI rows).
        if "BPI" in loaded:
            bpi = self._fields("BPI", BPI_FIELDS)
            self._forbid(bpi.filter(in_party), "BPI record inside the party section (after the first BPH)")
            bpi = bpi.join_asof(spi.select("idx", "settlement_period"), on="idx", strategy="backward")
            self._forbid(bpi.filter(pl.col("settlement_period").is_null()),
                         "BPI record before any SPI record (no open settlement period)")
            self._forbid_duplicates(bpi, ["bm_unit_id", "settlement_period"], "BPI")
            yield "bpi", self._output(bpi, BPI_FIELDS)
        else:
            bpi = pl.DataFrame(schema={"idx": pl.UInt32, "bm_unit_id": pl.String, "settlement_period": pl.Int32})

        # BO4 hangs off the last BP7 (or BPI, for order tolerance); an SPI, SP7 or BPH after that
        # unit record closes it.
        bo4 = self._fields("BO4", BO4_FIELDS)
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

        # BO3 (an acceptance) hangs off its BP7 like BO4 (known layouts only).
        if "BO3" in loaded:
            bo3 = self._fields("BO3", BO3_FIELDS)
            stamp = pl.col("acceptance_time").str.strptime(pl.Datetime("us"), "%Y%m%d%H%M%S", strict=False)
            self._forbid(bo3.filter(pl.col("acceptance_time").is_not_null() & stamp.is_null()),
                         "BO3 acceptance time is not YYYYMMDDHHMMSS", "acceptance_time (BO3 2)")
            bo3 = (
                bo3.with_columns(stamp.alias("acceptance_time"))
                .join_asof(closers.select(pl.col("idx"), pl.col("idx").alias("closed_at")), on="idx",
                           strategy="backward")
                .join_asof(bp7.select("idx", pl.col("idx").alias("unit_at"), "bm_unit_id", "settlement_period",
                                      "lead_party_id"), on="idx", strategy="backward")
            )
            self._forbid(
                bo3.filter(pl.col("unit_at").is_null() | (pl.col("closed_at").fill_null(-1) > pl.col("unit_at"))),
                "BO3 record not under a BP7 (no open BM unit)",
            )
            yield "bo3", self._output(bo3, BO3_FIELDS, party=True, unit_from_context=True)

        apc = self._fields("APC", APC_FIELDS).join_asof(bph, on="idx", strategy="backward")
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
        cols.append(pl.lit(self.layout.version).alias("flow_version"))
        if "extra_fields" in frame.columns:
            cols.append("extra_fields")
        cols += [pl.lit(self.file).alias("source_file"), (pl.col("idx").cast(pl.Int64) + 1).alias("source_line")]
        # String views travel zero-copy into DuckDB; Table.conform turns them into plain strings where needed.
        return frame.select(cols).to_arrow(compat_level=pl.CompatLevel.newest())

    def _party_headers(self) -> pl.DataFrame:
        """BPH records as (idx, lead_party_id), checked against the file's settlement date and run."""
        fields = [Field(1, "date", "str"), Field(2, "run", "str"), Field(8, "lead_party_id", "str")]
        bph = self._fields("BPH", fields)
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

    def _check_loss_factors(self, bp7: pl.DataFrame) -> None:
        """For a layout read by its stable prefix only: BP7 11 and 12 must look like a TLF and a TLM,
        or the prefix is not where the reference says and the file is refused."""
        if self.layout.known or not bp7.height:
            return
        tlf, tlm = pl.col("transmission_loss_factor"), pl.col("transmission_loss_multiplier")
        for bad, name, what in ((tlf.abs() >= 1, "transmission_loss_factor (BP7 11)", "a TLF (|x| < 1)"),
                                ((tlm <= 0) | (tlm >= 2), "transmission_loss_multiplier (BP7 12)", "a TLM (0 < x < 2)")):
            hit = bp7.select(bad.fill_null(False).arg_true().first()).item()
            if hit is not None:
                value = bp7[name.split()[0]][hit]
                raise self.fail(f"{value!r} does not look like {what}: this flow version's BP7 prefix differs from "
                                "the one stable since v008", bp7["idx"][hit] + 1, name)

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
