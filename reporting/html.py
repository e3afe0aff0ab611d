"""The local dashboard as one self-contained HTML page: tabs, formatted tables, inline SVG charts.

No scripts, fonts or images from anywhere else: the file opens offline, in any browser, and can
be mailed as it is.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from html import escape
from pathlib import Path

from reporting.dashboard import Block, Dashboard
from reporting.formats import display, matches, naive_utc

PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
           "#756bb1", "#636363"]
PIE_SLICES = 8
SHOW_ROWS = 200  # rows of a table shown on the page, in the report's order (the workbook has every row)

CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;background:#f5f7fa}
header{background:#1f3864;color:#fff;padding:14px 24px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;font-size:13px;opacity:.85}
.tabs{display:flex;flex-wrap:wrap;padding:0 16px;background:#fff;border-bottom:1px solid #d0d7e2}
.tabs input{display:none}.tabs label{padding:10px 16px;cursor:pointer;font-weight:600;color:#44546a;
border-bottom:3px solid transparent}.tabs input:checked+label{color:#1f3864;border-bottom-color:#1f3864}
.panel{display:none;width:100%;order:99;padding:8px 8px 24px;background:#f5f7fa}
.tabs input:checked+label+.panel{display:block}
h2{font-size:17px;margin:12px 8px 4px}.definition{font-size:12px;color:#595959;margin:0 8px 8px;max-width:1100px}
.warning{font-size:12px;color:#9c0006;background:#ffc7ce;padding:6px 10px;margin:6px 8px;border-radius:4px}
.block{background:#fff;border:1px solid #d0d7e2;border-radius:6px;margin:10px 8px;padding:10px 12px;overflow-x:auto}
.block h3{font-size:14px;margin:0 0 8px;color:#1f3864}
table{border-collapse:collapse;font-size:12px}th{background:#dde5f0;text-align:left;padding:4px 8px;
position:sticky;top:0}td{padding:3px 8px;border-bottom:1px solid #edf0f5;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}tr.bold td{font-weight:700;background:#f2f4f8}
.kv th{width:280px}.row{display:flex;flex-wrap:wrap;align-items:flex-start}
svg text{font-size:11px;fill:#44546a}p.more{cursor:default;font-size:12px;color:#44546a;margin:6px 0}
"""

_NUMERIC = {"int", "number", "mwh", "mw", "gbp", "gbp_per_mwh", "pct", "hz"}


def write_html(dashboard: Dashboard, path: str | Path) -> Path:
    """Write ``dashboard`` as a single HTML file at ``path``; return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{escape(dashboard.title)}</title>",
             f"<meta name='viewport' content='width=device-width,initial-scale=1'><style>{CSS}</style></head><body>",
             f"<header><h1>{escape(dashboard.title)}</h1><p>{escape(dashboard.stamp)}</p></header><div class='tabs'>"]
    for i, tab in enumerate(dashboard.tabs):
        checked = " checked" if i == 0 else ""
        parts.append(f"<input type='radio' name='tab' id='tab{i}'{checked}><label for='tab{i}'>{escape(tab.name)}</label>")
        parts.append("<div class='panel'>")
        parts.append(f"<h2>{escape(tab.title)}</h2><p class='definition'>{escape(tab.definition)}</p>")
        parts += [f"<div class='warning'>{escape(w)}</div>" for w in tab.warnings]
        parts.append("<div class='row'>")
        for block in tab.blocks:
            parts.append(_block(block))
        parts.append("</div></div>")
    parts.append("</div></body></html>")
    tmp = path.with_name(path.name + ".part")
    tmp.write_text("".join(parts), encoding="utf-8")
    os.replace(tmp, path)
    return path


def _block(block: Block) -> str:
    out = [f"<div class='block'><h3>{escape(block.title)}</h3>"]
    if block.spec.chart and block.rows:
        out.append(_chart(block))
    if block.spec.layout == "vertical":
        values = block.rows[0] if block.rows else [None] * len(block.headers)
        out.append("<table class='kv'>")
        for header, value, fmt in zip(block.headers, values, block.formats):
            cls = " class='num'" if fmt in _NUMERIC else ""
            out.append(f"<tr><th>{escape(header)}</th><td{cls}>{escape(display(value, fmt))}</td></tr>")
        out.append("</table></div>")
        return "".join(out)
    if not block.rows:
        out.append("<p><em>No rows.</em></p></div>")
        return "".join(out)
    table = ["<table><tr>" + "".join(f"<th>{escape(h)}</th>" for h in block.headers) + "</tr>"]
    bold = block.spec.bold_rows
    bold_index = block.fields.index(bold[0]) if bold else None
    for row in block.rows[:SHOW_ROWS]:
        row_cls = " class='bold'" if bold_index is not None and row[bold_index] == bold[1] else ""
        cells = []
        for field, value, fmt in zip(block.fields, row, block.formats):
            style = ""
            for rule in block.spec.conditional:
                if rule.field == field and matches(rule.rule, value, rule.value):
                    style = f" style='background:{escape(rule.colour)}'"
            cls = " class='num'" if fmt in _NUMERIC else ""
            cells.append(f"<td{cls}{style}>{escape(display(value, fmt))}</td>")
        table.append(f"<tr{row_cls}>" + "".join(cells) + "</tr>")
    table.append("</table>")
    out.append("".join(table))
    if len(block.rows) > SHOW_ROWS:
        out.append(f"<p class='more'>The first {SHOW_ROWS} of {len(block.rows):,} rows; the workbook holds them all.</p>")
    out.append("</div>")
    return "".join(out)


def _series(block: Block, field: str) -> list:
    i = block.fields.index(field)
    return [row[i] for row in block.rows]


def _chart(block: Block) -> str:
    spec = block.spec.chart
    if spec.x not in block.fields or not all(y in block.fields for y in spec.y):
        return ""
    xs = _series(block, spec.x)
    if spec.type == "pie":
        return _pie(spec.title, [str(x) for x in xs], [float(v or 0) for v in _series(block, spec.y[0])])
    ys = [[float(v) if v is not None else None for v in _series(block, y)] for y in spec.y]
    labels = [_label(x) for x in xs]
    if spec.type == "column" and spec.stacked and len(ys) > 1:
        return _stacked(spec.title, labels, ys, list(spec.y))
    if spec.type == "column":
        return _columns(spec.title, labels, ys[0])
    return _line(spec.title, labels, ys)


def _label(x) -> str:
    x = naive_utc(x)
    if isinstance(x, dt.datetime):
        return x.strftime("%H:%M") if x.second == 0 else x.strftime("%H:%M:%S")
    if isinstance(x, dt.date):
        return x.strftime("%d %b")
    return str(x)


def _scale(values: list[float | None], height: float, pad: float) -> tuple[list[float], callable]:
    """Round ticks covering ``values`` and the value -> y pixel function for a plot ``height`` high."""
    real = [v for v in values if v is not None] or [0.0]
    ticks = _ticks(min(real), max(real))
    lo, hi = ticks[0], ticks[-1]
    return ticks, lambda v: pad + (hi - v) / (hi - lo) * (height - 2 * pad)


def _ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    """About ``count`` intervals of 1, 2, 2.5 or 5 x 10^k from a multiple below ``lo`` to one above ``hi``."""
    if lo == hi:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    first, last = math.floor(lo / step + 1e-9) * step, math.ceil(hi / step - 1e-9) * step
    return [first + i * step for i in range(round((last - first) / step) + 1)]


def _unit(title: str) -> str:
    """The unit a chart's title ends with, in brackets: "Net BM revenue per day (£)" -> "£"."""
    match = re.search(r"\(([^()]+)\)\s*$", title)
    return match.group(1) if match else ""


def _tick_label(value: float, ticks: list[float], unit: str) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > step * 1e-6:
        decimals += 1
    text = f"{abs(value):,.{decimals}f}"
    sign = "-" if value < 0 and float(text.replace(",", "")) else ""
    if unit in ("£", "$", "€"):
        return f"{sign}{unit}{text}"
    return f"{sign}{text} {unit}".rstrip()


def _frame(title: str, w: int, h: int, left: int, ticks: list[float], y, unit: str, zero_line: bool = False) -> list[str]:
    """An SVG chart's opening: its title, a grid line and label per tick, and (columns) the zero line."""
    out = [f"<svg viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img' aria-label='{escape(title)}'>",
           f"<text x='{left}' y='12' font-weight='600'>{escape(title)}</text>",
           *(f"<line x1='{left}' x2='{w - 10}' y1='{y(t):.1f}' y2='{y(t):.1f}' stroke='#e3e8ef'/>"
             f"<text x='{left - 6}' y='{y(t) + 4:.1f}' text-anchor='end'>{_tick_label(t, ticks, unit)}</text>"
             for t in ticks)]
    if zero_line:
        out.append(f"<line x1='{left}' x2='{w - 10}' y1='{y(0.0):.1f}' y2='{y(0.0):.1f}' stroke='#9aa5b5'/>")
    return out


def _line(title: str, labels: list[str], series: list[list[float | None]]) -> str:
    w, h, left, pad = 640, 220, 72, 18
    ticks, y = _scale([v for s in series for v in s], h - 16, pad)
    unit = _unit(title)
    n = max(len(labels) - 1, 1)
    x = lambda i: left + i * (w - left - 10) / n  # noqa: E731
    out = _frame(title, w, h, left, ticks, y, unit)
    for k, values in enumerate(series):
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values) if v is not None)
        out.append(f"<polyline fill='none' stroke='{PALETTE[k]}' stroke-width='1.6' points='{points}'/>")
    if labels:
        out.append(f"<text x='{left}' y='{h - 2}'>{escape(labels[0])}</text>"
                   f"<text x='{w - 10}' y='{h - 2}' text-anchor='end'>{escape(labels[-1])}</text>")
    out.append("</svg>")
    return "".join(out)


def _columns(title: str, labels: list[str], values: list[float | None]) -> str:
    w, h, left, pad = 640, 240, 70, 20
    vals = [v or 0.0 for v in values]
    ticks, y = _scale(vals + [0.0], h - 30, pad)
    unit = _unit(title)
    n = max(len(vals), 1)
    slot = (w - left - 10) / n
    zero = y(0.0)
    out = _frame(title, w, h, left, ticks, y, unit, zero_line=True)
    for i, (label, v) in enumerate(zip(labels, vals)):
        top, bottom = sorted((y(v), zero))
        colour = "#2ca02c" if v >= 0 else "#d62728"
        bx = left + i * slot + slot * 0.15
        out.append(f"<rect x='{bx:.1f}' y='{top:.1f}' width='{slot * 0.7:.1f}' height='{max(bottom - top, 0.5):.1f}' "
                   f"fill='{colour}'><title>{escape(label)}: {v:,.2f}</title></rect>")
        out.append(f"<text x='{bx + slot * 0.35:.1f}' y='{h - 6}' text-anchor='middle'>{escape(label)}</text>")
    out.append("</svg>")
    return "".join(out)


def _stacked(title: str, labels: list[str], series: list[list[float | None]], names: list[str]) -> str:
    """Columns of several series stacked: positive parts above zero, negative parts below, a legend."""
    w, h, left, pad = 640, 260, 70, 20
    values = [[v or 0.0 for v in s] for s in series]
    tops = [sum(v for v in col if v > 0) for col in zip(*values)]
    bottoms = [sum(v for v in col if v < 0) for col in zip(*values)]
    ticks, y = _scale(tops + bottoms + [0.0], h - 50, pad)
    unit = _unit(title)
    n = max(len(labels), 1)
    slot = (w - left - 10) / n
    out = _frame(title, w, h, left, ticks, y, unit, zero_line=True)
    for i, label in enumerate(labels):
        bx, up, down = left + i * slot + slot * 0.15, 0.0, 0.0
        for k, s in enumerate(values):
            v = s[i]
            base = up if v >= 0 else down
            top, bottom = sorted((y(base + v), y(base)))
            if v >= 0:
                up += v
            else:
                down += v
            out.append(f"<rect x='{bx:.1f}' y='{top:.1f}' width='{slot * 0.7:.1f}' height='{max(bottom - top, 0.5):.1f}' "
                       f"fill='{PALETTE[k % len(PALETTE)]}'><title>{escape(label)} {escape(names[k])}: {v:,.2f}</title></rect>")
        out.append(f"<text x='{bx + slot * 0.35:.1f}' y='{h - 26}' text-anchor='middle'>{escape(label)}</text>")
    for k, name in enumerate(names):
        out.append(f"<rect x='{left + k * 170}' y='{h - 12}' width='10' height='10' fill='{PALETTE[k % len(PALETTE)]}'/>"
                   f"<text x='{left + k * 170 + 14}' y='{h - 3}'>{escape(name)}</text>")
    out.append("</svg>")
    return "".join(out)


def _pie(title: str, labels: list[str], values: list[float]) -> str:
    w, h, cx, cy, r = 460, 260, 120, 135, 100
    total = sum(v for v in values if v > 0) or 1.0
    out = [f"<svg viewBox='0 0 {w} {h}' width='{w}' height='{h}' role='img' aria-label='{escape(title)}'>",
           f"<text x='10' y='14' font-weight='600'>{escape(title)}</text>"]
    angle = -math.pi / 2
    shown = sorted(((lab, v) for lab, v in zip(labels, values) if v > 0), key=lambda p: -p[1])
    if len(shown) > PIE_SLICES:  # the largest slices, the rest as one: a pie of 20 slivers says nothing
        rest = shown[PIE_SLICES - 1:]
        shown = shown[:PIE_SLICES - 1] + [(f"{len(rest)} others", sum(v for _, v in rest))]
    for k, (label, v) in enumerate(shown):
        sweep = v / total * 2 * math.pi
        end = angle + sweep
        x1, y1 = cx + r * math.cos(angle), cy + r * math.sin(angle)
        x2, y2 = cx + r * math.cos(end), cy + r * math.sin(end)
        large = 1 if sweep > math.pi else 0
        colour = PALETTE[k % len(PALETTE)]
        path = (f"M{cx},{cy} L{x1:.2f},{y1:.2f} A{r},{r} 0 {large} 1 {x2:.2f},{y2:.2f} Z" if len(shown) > 1
                else f"M{cx - r},{cy} a{r},{r} 0 1 0 {2 * r},0 a{r},{r} 0 1 0 {-2 * r},0")
        out.append(f"<path d='{path}' fill='{colour}' stroke='#fff'><title>{escape(label)}: {v:,.0f} "
                   f"({v / total:.1%})</title></path>")
        if k < 14:
            ly = 30 + k * 16
            out.append(f"<rect x='250' y='{ly - 9}' width='10' height='10' fill='{colour}'/>"
                       f"<text x='266' y='{ly}'>{escape(label)} {v / total:.1%}</text>")
        angle = end
    out.append("</svg>")
    return "".join(out)
