"""Dashboards: a declarative layout (``sheets_templates/<name>.yaml``) filled with report results.

``load_template`` reads and validates a layout; ``build_dashboard`` runs each report it names
once and places every block at its cell, producing a :class:`Dashboard` that the targets
(Google Sheets, the local workbook, the HTML page) render without running anything themselves.
Each tab starts with its title, a "last refreshed" line with the data's freshness, the report's
definition and any warnings; blocks follow, stacked below each other unless placed with ``at``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from core.errors import TemplateError

from ingest.iris.datasets import SPECS, table_name
from ingest.p114.tables import MANIFEST
from reporting.reports import REPORTS, ReportOptions, ReportResult, ensure_reporting_schema, run_report
from warehouse.base import Warehouse

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "sheets_templates"
FORMATS = {"text", "int", "number", "mwh", "mw", "gbp", "gbp_per_mwh", "pct", "hz", "date", "datetime"}
RULES = {"less_than", "greater_than", "equals", "not_equals"}
CHARTS = {"line", "column", "pie"}
HEADER_ROWS = 4  # title, refreshed/freshness, definition, warnings
CHART_ROWS = 17  # rows a chart covers: 320 px in Sheets, 9 cm in the workbook
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: the layout parses 10x faster


@dataclass(frozen=True)
class ColumnSpec:
    field: str
    header: str
    format: str = "text"


@dataclass(frozen=True)
class Conditional:
    field: str
    rule: str
    value: Any
    colour: str


@dataclass(frozen=True)
class ChartSpec:
    type: str
    x: str
    y: tuple[str, ...]
    title: str
    at: tuple[int, int] | None
    stacked: bool = False  # column charts: the series stacked (components of a total)


@dataclass(frozen=True)
class BlockSpec:
    section: str
    title: str
    report: str
    at: tuple[int, int] | None
    layout: str  # table | vertical
    columns: tuple[ColumnSpec, ...] | None
    conditional: tuple[Conditional, ...] = ()
    bold_rows: tuple[str, Any] | None = None
    chart: ChartSpec | None = None
    where: tuple[str, Any] | None = None  # only the section's rows whose field equals this value


@dataclass(frozen=True)
class TabSpec:
    name: str
    report: str
    freeze_rows: int
    blocks: tuple[BlockSpec, ...]


@dataclass(frozen=True)
class DashboardSpec:
    name: str
    title: str
    tabs: tuple[TabSpec, ...]
    source: str


# ---------------------------------------------------------------------------------------- rendered model
@dataclass
class Block:
    spec: BlockSpec
    title: str
    headers: list[str]
    fields: list[str]
    formats: list[str]
    rows: list[list[Any]]
    top: int  # 0-based row of the block title
    left: int  # 0-based column

    @property
    def header_row(self) -> int:
        return self.top + 1

    @property
    def first_data_row(self) -> int:
        return self.top + 2

    @property
    def width(self) -> int:
        return 2 if self.spec.layout == "vertical" else len(self.headers)

    @property
    def height(self) -> int:
        """Rows used including the title (and header) rows."""
        return 1 + (len(self.headers) if self.spec.layout == "vertical" else 1 + max(len(self.rows), 1))


@dataclass
class Tab:
    name: str
    title: str
    refreshed: str
    definition: str
    warnings: list[str]
    freeze_rows: int
    blocks: list[Block]

    @property
    def n_rows(self) -> int:
        bottom = max((b.top + b.height for b in self.blocks), default=HEADER_ROWS)
        for b in self.blocks:
            if b.spec.chart and b.spec.chart.at:
                bottom = max(bottom, b.spec.chart.at[0] + 20)
        return bottom

    @property
    def n_cols(self) -> int:
        right = max((b.left + b.width for b in self.blocks), default=1)
        for b in self.blocks:
            if b.spec.chart and b.spec.chart.at:
                right = max(right, b.spec.chart.at[1] + 8)
        return max(right, 1)


@dataclass
class Dashboard:
    name: str
    title: str
    stamp: str  # "Last refreshed … · <data freshness>" (or the demo's stamp), as every tab shows it
    tabs: list[Tab]
    reports: dict[str, ReportResult] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------- loading
def cell(a1: str) -> tuple[int, int]:
    """'B7' → (6, 1): 0-based row and column."""
    m = re.fullmatch(r"([A-Z]{1,3})([1-9][0-9]{0,5})", a1.strip().upper())
    if not m:
        raise ValueError(f"not a cell reference: {a1!r}")
    col = 0
    for ch in m.group(1):
        col = col * 26 + ord(ch) - 64
    return int(m.group(2)) - 1, col - 1


def a1(row: int, col: int) -> str:
    """(6, 1) → 'B7'."""
    letters, col = "", col + 1
    while col:
        col, rem = divmod(col - 1, 26)
        letters = chr(65 + rem) + letters
    return f"{letters}{row + 1}"


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))


def load_template(name: str, directory: Path = TEMPLATES_DIR) -> DashboardSpec:
    """The layout ``sheets_templates/<name>.yaml``; ``name`` is a plain name, never a path."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", name or ""):
        raise TemplateError(f"dashboard names are plain names (letters, digits, - and _) of layouts in "
                            f"{directory.name}/, got {name!r}; dashboards: {', '.join(template_names()) or 'none'}")
    path = directory / f"{name}.yaml"
    if not path.exists():
        raise TemplateError(f"no dashboard layout {path}; dashboards: {', '.join(template_names()) or 'none'}")
    try:
        raw = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: not valid YAML: {exc}") from None
    where = str(path)

    def need(mapping: dict, key: str, context: str):
        if key not in mapping:
            raise TemplateError(f"{where}: {context} needs '{key}'")
        return mapping[key]

    def position(value, context):
        if value is None:
            return None
        try:
            return cell(str(value))
        except ValueError as exc:
            raise TemplateError(f"{where}: {context}: {exc}") from None

    tabs = []
    for t in need(raw, "tabs", "the dashboard"):
        tab_name = need(t, "name", "a tab")
        context = f"tab '{tab_name}'"
        report = t.get("report")
        blocks = []
        for b in need(t, "blocks", context):
            b_report = b.get("report", report)
            if b_report not in REPORTS:
                raise TemplateError(f"{where}: {context}: unknown report {b_report!r}; reports: {', '.join(REPORTS)}")
            section = need(b, "section", f"{context}, a block")
            sections = [s.name for s in REPORTS[b_report].sections]
            if section not in sections:
                raise TemplateError(f"{where}: {context}: report {b_report} has no section {section!r}; "
                                    f"sections: {', '.join(sections)}")
            bcontext = f"{context}, block '{section}'"
            columns = None
            if "columns" in b:
                columns = []
                for c in b["columns"]:
                    fmt = c.get("format", "text")
                    if fmt not in FORMATS:
                        raise TemplateError(f"{where}: {bcontext}: unknown format {fmt!r}; formats: {', '.join(sorted(FORMATS))}")
                    columns.append(ColumnSpec(need(c, "field", bcontext), c.get("header", c["field"]), fmt))
            conditional = []
            for rule in b.get("conditional", []):
                if rule.get("rule") not in RULES:
                    raise TemplateError(f"{where}: {bcontext}: unknown conditional rule {rule.get('rule')!r}; "
                                        f"rules: {', '.join(sorted(RULES))}")
                conditional.append(Conditional(need(rule, "field", bcontext), rule["rule"], need(rule, "value", bcontext),
                                               rule.get("colour", "#f4cccc")))
            chart = None
            if "chart" in b:
                c = b["chart"]
                if c.get("type") not in CHARTS:
                    raise TemplateError(f"{where}: {bcontext}: chart type must be one of {', '.join(sorted(CHARTS))}")
                x = c.get("x", c.get("labels"))
                y = c.get("y", c.get("values"))
                if not x or not y:
                    raise TemplateError(f"{where}: {bcontext}: a chart needs x (or labels) and y (or values)")
                chart = ChartSpec(c["type"], x, tuple(y if isinstance(y, list) else [y]), c.get("title", ""),
                                  position(c.get("at"), bcontext), bool(c.get("stacked", False)))
            bold, only = b.get("bold_rows"), b.get("where")
            if only is not None and (not isinstance(only, dict) or set(only) != {"field", "equals"}):
                raise TemplateError(f"{where}: {bcontext}: where must be {{field: NAME, equals: VALUE}}")
            blocks.append(BlockSpec(
                section=section, title=b.get("title", section), report=b_report, at=position(b.get("at"), bcontext),
                layout=b.get("layout", "table"), columns=tuple(columns) if columns is not None else None,
                conditional=tuple(conditional), bold_rows=(bold["field"], bold["equals"]) if bold else None,
                chart=chart, where=(only["field"], only["equals"]) if only else None,
            ))
        tabs.append(TabSpec(tab_name, report or blocks[0].report, int(t.get("freeze_rows", 3)), tuple(blocks)))
    return DashboardSpec(need(raw, "name", "the dashboard"), raw.get("title", name), tuple(tabs), where)


# ---------------------------------------------------------------------------------------- building
def data_freshness(wh: Warehouse, now: dt.datetime | None = None) -> str:
    parts = []
    existing = wh.table_names()
    latest = wh.query_rows(
        f"SELECT settlement_date, settlement_run FROM {wh.ref('p114_canonical_files')} "
        "ORDER BY settlement_date DESC LIMIT 1"
    ) if MANIFEST.name in existing else []
    if latest:
        parts.append(f"P114 settlement to {latest[0]['settlement_date']} ({latest[0]['settlement_run']})")
    # real-time datasets only (PN and MELS carry future periods), in one query; the last week's
    # partitions first, every partition only when nothing is that recent
    now = now or dt.datetime.now(dt.timezone.utc)
    parts_sql = [f"SELECT MAX({spec.event_time}) AS t FROM {wh.ref(table_name(code))} "
                 f"WHERE {spec.event_time} <= @now AND {spec.event_time} > @since"
                 for code, spec in SPECS.items() if spec.cadence and table_name(code) in existing]
    newest = None
    if parts_sql:
        sql = f"SELECT MAX(t) FROM ({' UNION ALL '.join(parts_sql)}) AS latest"
        newest = (wh.scalar(sql, {"now": now, "since": now - dt.timedelta(days=7)})
                  or wh.scalar(sql, {"now": now, "since": dt.datetime(2001, 1, 1, tzinfo=dt.timezone.utc)}))
    if newest:
        parts.append(f"IRIS to {newest:%Y-%m-%d %H:%M} UTC")
    return "Data: " + (" · ".join(parts) if parts else "none loaded yet")


def build_dashboard(wh: Warehouse, spec: DashboardSpec, options: ReportOptions | None = None,
                    now: dt.datetime | None = None, on_tab: Callable[[Tab], None] | None = None) -> Dashboard:
    """Run every report the layout needs (once each) and lay the tabs out.

    Reports run two at a time, in the order of the tabs that need them; each tab is laid out (and given to
    ``on_tab``, e.g. a workbook writer) as soon as its reports are done, while the engine runs the next ones.
    """
    options = options or ReportOptions()
    now = now or dt.datetime.now(dt.timezone.utc)
    if options.now is None:
        options = replace(options, now=now)
    ensure_reporting_schema(wh, options.vlp_units)
    needed: dict[str, set[str]] = {}
    for b in (b for t in spec.tabs for b in t.blocks):
        needed.setdefault(b.report, set()).add(b.section)
    for t in spec.tabs:
        needed.setdefault(t.report, set())

    def one(name: str) -> ReportResult:
        reader = wh.reader()
        try:
            return run_report(reader, name, options, ensure=False, only=needed[name])
        finally:
            if reader is not wh:
                reader.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(one, name) for name in needed}  # dicts keep the tabs' order
        freshness = data_freshness(wh, now)
        refreshed = (f"Demo data, generated by python run.py demo on {now:%Y-%m-%d %H:%M} UTC · {freshness}"
                     if options.demo else f"Last refreshed {now:%Y-%m-%d %H:%M} UTC · {freshness}")
        tabs = []
        for t in spec.tabs:
            tab = _lay_out(t, {name: futures[name].result() for name in {t.report, *(b.report for b in t.blocks)}},
                           refreshed)
            tabs.append(tab)
            if on_tab is not None:
                on_tab(tab)
        results = {name: future.result() for name, future in futures.items()}
    return Dashboard(spec.name, spec.title, refreshed, tabs, results)


def _lay_out(t: TabSpec, results: dict[str, ReportResult], refreshed: str) -> Tab:
    result = results[t.report]
    tab = Tab(
        name=t.name,
        title=f"{result.title}{_window_text(result)}",
        refreshed=refreshed,
        definition=result.definition,
        warnings=sorted({w for b in t.blocks for w in results[b.report].warnings}),
        freeze_rows=t.freeze_rows,
        blocks=[],
    )
    next_top = HEADER_ROWS
    for b in t.blocks:
        table = results[b.report].sections[b.section]
        fields = [c.field for c in b.columns] if b.columns else table.column_names
        headers = [c.header for c in b.columns] if b.columns else table.column_names
        formats = [c.format for c in b.columns] if b.columns else ["text"] * len(fields)
        present = set(table.column_names)
        records = table.to_pylist()
        if b.where is not None:
            records = [r for r in records if r.get(b.where[0]) == b.where[1]]
        rows = [[row.get(f) if f in present else None for f in fields] for row in records]
        top, left = b.at if b.at else (next_top, 0)
        block = Block(b, b.title, headers, fields, formats, rows, top, left)
        tab.blocks.append(block)
        if b.at is None or b.at[1] == 0:
            next_top = max(next_top, top + block.height + 1)
            if b.chart is not None:  # the next block goes below the chart too
                next_top = max(next_top, (b.chart.at[0] if b.chart.at else top) + CHART_ROWS + 1)
    return tab


def _window_text(result: ReportResult) -> str:
    p = result.params
    if "date_from" in p and "date_to" in p:
        return f" — settlement dates {p['date_from']} to {p['date_to']}"
    if "as_of" in p:
        return f" — as of {p['as_of']:%Y-%m-%d %H:%M} UTC"
    return ""
