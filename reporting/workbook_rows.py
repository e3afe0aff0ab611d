"""The long tables of the workbook, as sheet XML built column by column (Polars), spliced into
the file XlsxWriter writes.

XlsxWriter spends about 13 µs of Python a cell; a month of full-scale data is a quarter of a million
cells, most of them in a few per-unit tables. For such a table XlsxWriter still writes everything
that makes it a table (title, header, the Excel table, conditional colours, the first and last data
rows, so the sheet's dimension and the column formats are its own), and the rows between are built
here as whole columns of ``<c>`` elements, then inserted after the first data row when the
workbook is closed. A table that does not fit this plan (mixed or boolean values, a non-finite
number, a control character, a text longer than a cell holds) is written cell by cell as before.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any, BinaryIO

from xlsxwriter.utility import xl_col_to_name

from reporting.formats import serial

MIN_ROWS = 500  # shorter tables are cheap cell by cell
MAX_TEXT = 32_767  # Excel's limit for one cell
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_MARK = "\x01"  # around a column number: its style index, known when XlsxWriter closes (never in a text: _CONTROL)


@dataclass
class Rows:
    """The XML of rows ``first``..``last`` (Excel's 1-based numbers) of one sheet, with a
    ``\\x01j\\x01`` mark where column j's style index goes, and the formats that give those indices."""

    first: int
    last: int
    xml: str
    formats: list[Any]

    def resolved(self) -> str:
        parts = self.xml.split(_MARK)  # text, column, text, column, …: one pass, not a replace per column
        styles = {str(j): str(fmt.xf_index) for j, fmt in enumerate(self.formats)}
        parts[1::2] = [styles[j] for j in parts[1::2]]
        return "".join(parts)


def column_kind(values: list) -> str | None:
    """'number', 'date' or 'text' when every non-empty value is of that kind (None: all empty),
    else 'mixed'."""
    kinds = {type(v) for v in values if v is not None}
    if not kinds:
        return None
    if kinds <= {int, float}:
        return "number"
    if kinds <= {dt.date, dt.datetime}:
        return "date"
    if kinds == {str}:
        return "text"
    return "mixed"


def build(rows: list[list], first: int, left: int, formats: list[Any]) -> Rows | None:
    """``rows`` as sheet XML starting at Excel row ``first`` and 0-based column ``left`` (each cell
    styled with ``formats[j]``), or None when a value needs XlsxWriter's cell-by-cell handling."""
    if not rows:
        return None
    import polars as pl  # here, not at start-up: its import (0.3 s) overlaps the reports still running

    width = len(rows[0])
    cells = []
    for j in range(width):
        values = [r[j] for r in rows]
        kind = column_kind(values)
        if kind == "mixed":
            return None
        if kind is None:
            continue
        ref = pl.lit(f'<c r="{xl_col_to_name(left + j)}')
        style = f'" s="{_MARK}{j}{_MARK}"'
        if kind == "date":
            serials = {v: serial(v) for v in set(values) if v is not None}
            values = [None if v is None else serials[v] for v in values]
            kind = "number"
        column = pl.Series(values, strict=False)
        if kind == "number":
            if column.dtype.is_float() and not column.drop_nulls().is_finite().all():
                return None
            text = column.cast(pl.String)
            cells.append(pl.concat_str([ref, pl.col("row"), pl.lit(style + "><v>"), pl.lit(text), pl.lit("</v></c>")]))
        else:
            if column.str.len_chars().max() > MAX_TEXT or column.str.contains(_CONTROL.pattern).any():
                return None
            text = column.str.replace_all("&", "&amp;", literal=True).str.replace_all(
                "<", "&lt;", literal=True).str.replace_all(">", "&gt;", literal=True)
            cells.append(pl.concat_str([ref, pl.col("row"), pl.lit(style + ' t="inlineStr"><is><t xml:space="preserve">'),
                                        pl.lit(text), pl.lit("</t></is></c>")]))
    numbers = pl.DataFrame({"row": pl.int_range(first, first + len(rows), eager=True).cast(pl.String)})
    xml = numbers.select(pl.concat_str([pl.lit('<row r="'), pl.col("row"), pl.lit('">'),
                                        pl.concat_str(cells, ignore_nulls=True) if cells else pl.lit(""),
                                        pl.lit("</row>")]).str.join("")).item()
    return Rows(first, first + len(rows) - 1, xml, formats)


def splice(workbook: bytes, out: BinaryIO, inserts: dict[str, list[Rows]]) -> None:
    """Write ``workbook`` (an .xlsx XlsxWriter closed) to ``out`` with each sheet's rows inserted
    after the row before them (``inserts``: sheet part name → rows, ascending)."""
    with zipfile.ZipFile(io.BytesIO(workbook)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename in inserts:
                data = _insert(data.decode("utf-8"), inserts[info.filename]).encode("utf-8")
            dst.writestr(info, data, compresslevel=1)  # a third of the default level's time; the file 1.3x larger


def _insert(sheet: str, inserts: list[Rows]) -> str:
    pieces, at = [], 0
    for rows in inserts:  # XlsxWriter wrote the rows either side; nothing between them
        before = sheet.find(f'<row r="{rows.first - 1}"', at)
        end = sheet.find("</row>", before) + len("</row>")
        if before < 0 or not sheet.startswith(f'<row r="{rows.last + 1}"', end):
            raise ValueError(f"sheet XML: row {rows.first - 1} is not followed by row {rows.last + 1}, so rows "
                             f"{rows.first}-{rows.last} cannot go between them")
        pieces += [sheet[at:end], rows.resolved()]
        at = end
    pieces.append(sheet[at:])
    return "".join(pieces)
