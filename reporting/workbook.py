"""The local dashboard as an ``.xlsx`` workbook (openpyxl): same tabs, cells, formats and charts as the Sheet.

Written to a temporary file and renamed, so a workbook open elsewhere is never half-written.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, PieChart, Reference
from openpyxl.formatting.rule import CellIsRule
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.table import Table, TableStyleInfo

from reporting.dashboard import Block, Dashboard, Tab
from reporting.formats import excel_pattern, naive_utc

HEADER_FILL = PatternFill("solid", fgColor="DDE5F0")
TITLE_FONT = Font(bold=True, size=14)
BLOCK_FONT = Font(bold=True, size=11, color="1F3864")
_OPERATORS = {"less_than": "lessThan", "greater_than": "greaterThan", "equals": "equal", "not_equals": "notEqual"}


def write_workbook(dashboard: Dashboard, path: str | Path) -> Path:
    """Write ``dashboard`` to ``path`` (an .xlsx file); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook()
    wb.remove(wb.active)
    for tab in dashboard.tabs:
        _write_tab(wb.create_sheet(tab.name[:31]), tab)
    tmp = path.with_name(path.name + ".part")
    wb.save(tmp)
    os.replace(tmp, path)
    return path


def _write_tab(ws, tab: Tab) -> None:
    ws["A1"] = tab.title
    ws["A1"].font = TITLE_FONT
    ws["A2"] = tab.refreshed
    ws["A2"].font = Font(italic=True, color="595959")
    ws["A3"] = tab.definition
    ws["A3"].alignment = Alignment(wrap_text=False)
    ws["A3"].font = Font(size=9, color="595959")
    if tab.warnings:
        ws["A4"] = "Warning: " + " | ".join(tab.warnings)
        ws["A4"].font = Font(color="C00000")
    ws.freeze_panes = ws.cell(row=tab.freeze_rows + 1, column=1)
    widths: dict[int, int] = {}
    for block in tab.blocks:
        _write_block(ws, block, widths)
    for col, width in widths.items():
        ws.column_dimensions[get_column_letter(col)].width = min(max(width + 2, 8), 48)


def _write_block(ws, block: Block, widths: dict[int, int]) -> None:
    r0, c0 = block.top + 1, block.left + 1  # openpyxl is 1-based
    ws.cell(row=r0, column=c0, value=block.title).font = BLOCK_FONT
    if block.spec.layout == "vertical":
        values = block.rows[0] if block.rows else [None] * len(block.headers)
        for i, (header, value, fmt) in enumerate(zip(block.headers, values, block.formats)):
            label = ws.cell(row=r0 + 1 + i, column=c0, value=header)
            label.fill = HEADER_FILL
            cell = ws.cell(row=r0 + 1 + i, column=c0 + 1, value=naive_utc(value))
            cell.number_format = excel_pattern(fmt)
            widths[c0] = max(widths.get(c0, 0), len(header))
            widths[c0 + 1] = max(widths.get(c0 + 1, 0), 20)
        return
    for j, header in enumerate(block.headers):
        cell = ws.cell(row=r0 + 1, column=c0 + j, value=header)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        widths[c0 + j] = max(widths.get(c0 + j, 0), len(header))
    bold_index = block.fields.index(block.spec.bold_rows[0]) if block.spec.bold_rows else None
    for i, row in enumerate(block.rows):
        bold = bold_index is not None and row[bold_index] == block.spec.bold_rows[1]
        for j, (value, fmt) in enumerate(zip(row, block.formats)):
            cell = ws.cell(row=r0 + 2 + i, column=c0 + j, value=naive_utc(value))
            cell.number_format = excel_pattern(fmt)
            if bold:
                cell.font = Font(bold=True)
            widths[c0 + j] = max(widths.get(c0 + j, 0), min(len(str(value)) if value is not None else 0, 40))
    if not block.rows:
        ws.cell(row=r0 + 2, column=c0, value="(no rows)").font = Font(italic=True, color="7F7F7F")
        return
    last = r0 + 1 + len(block.rows)
    if len(set(block.headers)) == len(block.headers):  # an Excel table: filters, sorting and pivots work on it
        ref = f"{get_column_letter(c0)}{r0 + 1}:{get_column_letter(c0 + len(block.headers) - 1)}{last}"
        name = re.sub(r"\W", "_", f"t_{ws.title}_{block.spec.section}")
        ws.add_table(Table(displayName=name, ref=ref, tableStyleInfo=TableStyleInfo(
            name="TableStyleLight1", showRowStripes=True)))
    for rule in block.spec.conditional:
        if rule.field not in block.fields:
            continue
        col = get_column_letter(c0 + block.fields.index(rule.field))
        value = rule.value if isinstance(rule.value, (int, float)) else f'"{rule.value}"'
        ws.conditional_formatting.add(
            f"{col}{r0 + 2}:{col}{last}",
            CellIsRule(operator=_OPERATORS[rule.rule], formula=[str(value)],
                       fill=PatternFill("solid", fgColor=rule.colour.lstrip("#"))),
        )
    if block.spec.chart:
        _chart(ws, block, r0, c0, last)


def _chart(ws, block: Block, r0: int, c0: int, last: int) -> None:
    spec = block.spec.chart
    if spec.x not in block.fields or not all(y in block.fields for y in spec.y):
        return
    x_col = c0 + block.fields.index(spec.x)
    categories = Reference(ws, min_col=x_col, min_row=r0 + 2, max_row=last)
    chart = {"line": LineChart, "column": BarChart, "pie": PieChart}[spec.type]()
    chart.title = spec.title
    for y in spec.y:
        y_col = c0 + block.fields.index(y)
        chart.add_data(Reference(ws, min_col=y_col, min_row=r0 + 1, max_row=last), titles_from_data=True)
    chart.set_categories(categories)
    if spec.type == "column":
        chart.type = "col"
    chart.width, chart.height = 18, 9
    anchor_row, anchor_col = spec.at if spec.at else (block.top, block.left + len(block.headers) + 1)
    ws.add_chart(chart, f"{get_column_letter(anchor_col + 1)}{anchor_row + 1}")
