"""The workbook's long tables are built column-wise (Polars) and spliced into XlsxWriter's file: cell
for cell what XlsxWriter writes on its own, tables, rules and widths included."""

from __future__ import annotations

import datetime as dt
import math
import zipfile

import openpyxl
import pytest

import reporting.workbook as workbook
from reporting.dashboard import Block, BlockSpec, Conditional, Tab
from reporting.workbook import WorkbookWriter

FIELDS = ["settlement_date", "bm_unit_id", "periods", "net_gbp", "volume_mwh", "note", "empty", "loaded_at"]
FORMATS = ["date", "text", "int", "gbp", "mwh", "text", "gbp", "datetime"]


def _rows(n: int) -> list[list]:
    rows = []
    for i in range(n):
        rows.append([
            dt.date(2024, 3, 31) + dt.timedelta(days=i % 3),
            f"V__A&<{i:04d}>" if i % 7 else f" 2__B{i} ",  # XML's special characters, and spaces kept
            46 + i % 5,
            None if i % 11 == 0 else round((i - 300) * 1.37, 2),  # None in the first row, negatives, zero
            [0.1 + 0.2, 1e-9, 1e15, -0.0][i % 4] if i % 13 else None,
            None if i % 2 else "reissued",  # None in the last row
            None,  # a column with no value at all
            dt.datetime(2024, 3, 31, 22, 30) + dt.timedelta(minutes=30 * i),
        ])
    return rows


def _tab(rows: list[list], second: list[list]) -> Tab:
    def block(section: str, rows: list[list], top: int, conditional=()) -> Block:
        spec = BlockSpec(section=section, title=section, report="test", at=None, layout="table", columns=None,
                         conditional=conditional)
        return Block(spec, section.title(), [f.replace("_", " ") for f in FIELDS], FIELDS, FORMATS, rows, top, 0)

    first = block("by_unit", rows, 4, (Conditional("net_gbp", "less_than", 0, "#f4cccc"),))
    return Tab("Units", "Per unit", "refreshed", "definition", [], 5,
               [first, block("again", second, 4 + len(rows) + 4)])


def _write(path, tab: Tab):
    book = WorkbookWriter(path)
    book.add(tab)
    return book.close()


def _cells(path) -> dict:
    ws = openpyxl.load_workbook(path)["Units"]
    cells = {c.coordinate: (c.value, c.data_type, c.number_format) for row in ws.iter_rows() for c in row
             if c.value is not None}
    tables = {name: ws.tables[name].ref for name in ws.tables}
    rules = [(str(r.sqref), [x.formula for x in r.rules]) for r in ws.conditional_formatting]
    widths = {k: v.width for k, v in ws.column_dimensions.items()}
    return {"cells": cells, "tables": tables, "rules": rules, "widths": widths, "dimensions": ws.dimensions,
            "freeze": ws.freeze_panes}


def _same(a: dict, b: dict) -> None:
    assert a["cells"].keys() == b["cells"].keys()
    for ref, (value, kind, fmt) in a["cells"].items():
        other = b["cells"][ref]
        assert (kind, fmt) == other[1:], ref
        if isinstance(value, float):  # XlsxWriter writes 16 significant digits, the column-wise path 17
            assert math.isclose(value, other[0], rel_tol=1e-15), ref
        else:
            assert value == other[0], ref
    assert {k: v for k, v in a.items() if k != "cells"} == {k: v for k, v in b.items() if k != "cells"}


def _sheet_xml(path) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read("xl/worksheets/sheet1.xml").decode()


def test_long_tables_are_built_column_wise_with_the_same_cells_as_xlsxwriter_writes(tmp_path, monkeypatch):
    tab = _tab(_rows(700), _rows(600))
    fast = _write(tmp_path / "fast.xlsx", tab)
    monkeypatch.setattr(workbook, "MIN_ROWS", 10**9)
    slow = _write(tmp_path / "slow.xlsx", tab)
    assert 'r="B10"' in _sheet_xml(fast) and 't="inlineStr"' in _sheet_xml(fast)  # the path was taken
    assert 't="inlineStr"' not in _sheet_xml(slow)
    a, b = _cells(fast), _cells(slow)
    _same(a, b)
    assert len(a["cells"]) > 6 * 1300 and a["tables"] == {"t_Units_by_unit": "A6:H706", "t_Units_again": "A710:H1310"}
    assert a["cells"]["B7"][0] == " 2__B0 " and a["cells"]["B8"][0] == "V__A&<0001>"
    assert a["cells"]["A8"][0] == dt.datetime(2024, 4, 1) and a["cells"]["A8"][2] == "yyyy-mm-dd"
    assert a["cells"]["D300"][2] == "£#,##0.00" and a["cells"]["H9"][0] == dt.datetime(2024, 3, 31, 23, 30)


@pytest.mark.parametrize("column, odd", [(5, True), (3, float("nan")), (5, "bell\x07")],
                         ids=["boolean", "nan", "control character"])
def test_a_long_table_with_a_value_the_column_wise_path_cannot_write_is_written_cell_by_cell(tmp_path, column, odd):
    rows = _rows(600)
    rows[300][column] = odd
    path = _write(tmp_path / "odd.xlsx", _tab(rows, _rows(2)))
    assert 't="inlineStr"' not in _sheet_xml(path)  # the whole table went through XlsxWriter
    cells = _cells(path)["cells"]
    assert cells["B606"][0] == "V__A&<0599>" and len([r for r in cells if r.startswith("F")]) > 300


def test_long_tables_side_by_side_are_written_cell_by_cell(tmp_path):
    tab = _tab(_rows(600), _rows(600))
    tab.blocks[1].top, tab.blocks[1].left = 4, 10  # the second table beside the first, on the same rows
    path = _write(tmp_path / "side.xlsx", tab)
    assert 't="inlineStr"' not in _sheet_xml(path)
    cells = _cells(path)
    assert cells["tables"] == {"t_Units_by_unit": "A6:H606", "t_Units_again": "K6:R606"}
    assert cells["cells"]["B606"][0] == "V__A&<0599>" and cells["cells"]["L606"][0] == "V__A&<0599>"
