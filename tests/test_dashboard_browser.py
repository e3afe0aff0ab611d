"""The HTML dashboard in a real browser: Debian's headless Chromium, driven by Playwright.

The demo's dashboard is opened from disk; every tab is clicked and must show its blocks' tables
(with rows) and charts (drawn, with a size), and the page must log no console error.
``.ci/run`` installs Chromium (``apt-get install chromium``) when it is missing.
"""

from __future__ import annotations

import os
import shutil

import pytest

from reporting.dashboard import load_template

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# no background networking: on a closed network Chromium's own connections are refused
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def demo_page(demo_run):
    result, folder = demo_run
    assert result.exit_code == 0, result.output
    return folder / "out" / "demo" / "main.html"


def test_every_tab_renders_its_tables_and_charts_without_console_errors(demo_page):
    if not os.path.exists(CHROMIUM):
        pytest.fail("Chromium is not installed: apt-get install chromium (.ci/run does)")
    from playwright.sync_api import sync_playwright

    spec = load_template("main")
    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)  # Playwright gives it a fresh profile
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.goto(f"file://{demo_page}")
        assert "Demo data" in page.locator("header").inner_text()
        labels = page.locator(".tabs > label")
        assert labels.all_inner_texts() == [t.name for t in spec.tabs]
        for i, tab in enumerate(spec.tabs):
            labels.nth(i).click()
            panel = page.locator(f"#tab{i} + label + .panel")
            assert panel.is_visible(), tab.name
            blocks = panel.locator(".block")
            assert blocks.count() == len(tab.blocks), tab.name
            for j, block in enumerate(tab.blocks):
                shown = blocks.nth(j)
                if block.layout == "vertical":
                    assert shown.locator("table.kv tr").count() == len(block.columns), (tab.name, block.title)
                else:
                    rows = shown.locator("table tr")
                    assert rows.count() >= 2, f"{tab.name} / {block.title}: no rows shown"
                if block.chart:
                    box = shown.locator("svg").first.bounding_box()
                    assert box and box["width"] > 100 and box["height"] > 50, f"{tab.name} / {block.title}: chart"
            others = [k for k in range(len(spec.tabs)) if k != i]
            assert not any(page.locator(f"#tab{k} + label + .panel").is_visible() for k in others)
        browser.close()
    assert not problems, problems
