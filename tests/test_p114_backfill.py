"""Backfills from a folder and from the Portal: planning, resumption after a crash, bad files."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.p114 import load as load_module
from ingest.p114.backfill import publication_dates, run_backfill
from ingest.p114.generate import default_created_at, sample_units, write_s0142
from ingest.p114.portal import PortalClient
from ingest.p114.tables import DATA_TABLES, MANIFEST

ROOT = Path(__file__).resolve().parent.parent
UNITS = sample_units(8, 3, seed=5)
DAYS = [dt.date(2024, 10, 25) + dt.timedelta(days=i) for i in range(4)]  # includes the 50-period 27 Oct


def make_folder(folder: Path, runs=("II", "SF"), units=UNITS) -> list[Path]:
    return [write_s0142(folder, day, run, units=units, seed=5) for day in DAYS for run in runs]


def loaded_counts(wh) -> dict[str, int]:
    rows = wh.query_rows("SELECT source_file, COUNT(*) AS n FROM elexon_p114_s0142_bpi GROUP BY source_file")
    return {r["source_file"]: r["n"] for r in rows}


def assert_each_file_loaded_exactly_once(wh, files: list[Path], units: int) -> None:
    manifest = [r["file_name"] for r in wh.query_rows(f"SELECT file_name FROM {MANIFEST.name}")]
    assert sorted(manifest) == sorted(p.name for p in files)
    from core.settlement import periods_in_day
    from ingest.p114.layout import S0142Name

    expected = {p.name: units * periods_in_day(S0142Name.parse(p.name).settlement_date) for p in files}
    assert loaded_counts(wh) == expected


def test_folder_backfill_loads_the_range_and_runs_asked_for(tmp_path, wh):
    files = make_folder(tmp_path / "in", runs=("II", "SF", "R1"))
    summary = run_backfill(wh, DAYS[1], DAYS[2], runs=("SF", "R1"), source=str(tmp_path / "in"))
    wanted = [p for p in files if any(d in p.name for d in ("20241026", "20241027")) and "_II_" not in p.name]
    assert len(summary.loaded) == len(wanted) == 4 and not summary.failed
    assert_each_file_loaded_exactly_once(wh, wanted, len(UNITS))
    assert summary.records == sum(r.records for r in summary.results)


def test_a_second_backfill_skips_what_is_loaded(tmp_path, wh):
    make_folder(tmp_path / "in")
    run_backfill(wh, DAYS[0], DAYS[-1], source=str(tmp_path / "in"))
    again = run_backfill(wh, DAYS[0], DAYS[-1], source=str(tmp_path / "in"))
    assert again.planned == 0 and again.already_loaded == 8 and not again.results


def test_bad_files_are_reported_and_the_rest_still_load(tmp_path, wh):
    folder = tmp_path / "in"
    files = make_folder(folder)
    broken = files[3]
    broken.write_bytes(broken.read_bytes()[:500])  # truncated download
    (folder / "S0142_2024-10-26.gz").write_bytes(b"junk")  # a name that does not parse
    (folder / "notes.txt").write_text("not an S0142 file at all; ignored")
    summary = run_backfill(wh, DAYS[0], DAYS[-1], source=str(folder))
    assert len(summary.loaded) == 7
    errors = sorted(r.error for r in summary.failed)
    assert len(errors) == 2
    assert "S0142_2024-10-26.gz: file name does not parse" in errors[0]
    assert errors[1].startswith(f"{broken.name}: truncated gzip data")
    assert_each_file_loaded_exactly_once(wh, [p for p in files if p != broken], len(UNITS))
    assert "failed           2" in "\n".join(summary.lines())


def test_the_next_file_is_parsed_while_this_one_is_written_and_at_most_two_are_held(tmp_path, wh, monkeypatch):
    import threading

    from ingest.p114 import backfill as backfill_module

    files = make_folder(tmp_path / "in")
    events: list[str] = []
    lock = threading.Lock()
    real_parse, real_batches = backfill_module.parse_whole, load_module._batches

    def parse(path, *args):
        with lock:
            events.append(f"parse {Path(path).name}")
        return real_parse(path, *args)

    def batches(header, *args, **kwargs):
        with lock:
            events.append(f"write {header.name.name}")
        yield from real_batches(header, *args, **kwargs)
        time.sleep(0.05)  # the next parse has long started by now
        with lock:
            events.append(f"wrote {header.name.name}")

    monkeypatch.setattr(backfill_module, "parse_whole", parse)
    monkeypatch.setattr(load_module, "_batches", batches)
    summary = run_backfill(wh, DAYS[0], DAYS[-1], source=str(tmp_path / "in"))
    assert len(summary.loaded) == 8
    order = sorted(files, key=lambda p: (p.name.split("_")[1], "II SF".index(p.name.split("_")[2])))
    for this, following in zip(order, order[1:]):
        assert events.index(f"parse {following.name}") < events.index(f"wrote {this.name}")  # overlapped
        later = order[order.index(following) + 1:]  # not parsed before this file is written: two files held
        assert all(events.index(f"parse {p.name}") > events.index(f"wrote {this.name}") for p in later)
    assert_each_file_loaded_exactly_once(wh, files, len(UNITS))


def test_loading_files_parses_ahead_but_not_the_ones_already_loaded(tmp_path, wh, monkeypatch):
    from ingest.p114 import backfill as backfill_module
    from ingest.p114.backfill import load_paths

    files = make_folder(tmp_path / "in")
    assert [r.status for r in load_paths(wh, files[:3])] == ["loaded"] * 3
    parsed: list[str] = []
    real_parse = backfill_module.parse_whole
    monkeypatch.setattr(backfill_module, "parse_whole", lambda path, *a: parsed.append(Path(path).name) or real_parse(path, *a))
    assert [r.status for r in load_paths(wh, files)] == ["skipped"] * 3 + ["loaded"] * (len(files) - 3)
    assert parsed == [p.name for p in files[3:]]
    assert [r.status for r in load_paths(wh, files[:1], force=True)] == ["loaded"]
    assert_each_file_loaded_exactly_once(wh, files, len(UNITS))


def test_an_interruption_inside_a_file_rolls_it_back_and_the_rerun_loads_it_once(tmp_path, wh, monkeypatch):
    files = make_folder(tmp_path / "in")
    calls = {"n": 0}
    real_batches = load_module._batches

    def interrupted(*args, **kwargs):
        for i, item in enumerate(real_batches(*args, **kwargs)):
            calls["n"] += 1
            if calls["n"] == 2 * (len(DATA_TABLES) + 1) + 2 and i > 0:  # part-way through the third file
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(load_module, "_batches", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_backfill(wh, DAYS[0], DAYS[-1], source=str(tmp_path / "in"))
    monkeypatch.setattr(load_module, "_batches", real_batches)
    partial = wh.scalar(f"SELECT COUNT(*) FROM {MANIFEST.name}")
    assert partial == 2
    assert set(loaded_counts(wh)) == {p.name for p in files[:2]}  # nothing of the interrupted file

    summary = run_backfill(wh, DAYS[0], DAYS[-1], source=str(tmp_path / "in"))
    assert len(summary.loaded) == 6 and summary.already_loaded == 2
    assert_each_file_loaded_exactly_once(wh, files, len(UNITS))


def test_kill_9_during_a_backfill_then_rerun_loads_every_file_exactly_once(tmp_path):
    units = sample_units(300, 12, seed=9)  # files big enough that a kill can land mid-file
    days = [dt.date(2024, 9, 1) + dt.timedelta(days=i) for i in range(6)]
    folder = tmp_path / "in"
    files = [write_s0142(folder, day, run, units=units, seed=9) for day in days for run in ("II", "SF")]
    db = tmp_path / "wh.duckdb"
    env = {**os.environ, "WAREHOUSE_URL": f"duckdb:///{db}", "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "run.py"), "backfill", "p114", "2024-09-01", "2024-09-06", "--source", str(folder)]

    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    for line in proc.stderr:
        if "[3/12]" in line:
            time.sleep(0.05)  # let it get into the next file
            proc.send_signal(signal.SIGKILL)
            break
        assert time.time() < deadline
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "failed           0" in rerun.stdout

    from warehouse.duckdb import DuckDBWarehouse

    with DuckDBWarehouse(db) as wh:
        assert_each_file_loaded_exactly_once(wh, files, len(units))


def test_publication_dates_cover_each_runs_window_and_stop_today():
    days = publication_dates(dt.date(2024, 10, 1), dt.date(2024, 10, 2), ["II"], today=dt.date(2030, 1, 1))
    assert days[0] == dt.date(2024, 10, 2) and days[-1] == dt.date(2024, 10, 23)
    capped = publication_dates(dt.date(2024, 10, 1), dt.date(2024, 10, 2), ["RF"], today=dt.date(2024, 12, 1))
    assert capped == []
    assert publication_dates(dt.date(2024, 10, 1), dt.date(2024, 10, 1), ["II", "SF"], today=dt.date(2024, 10, 20))[-1] == dt.date(2024, 10, 20)


def publish_all(portal, files: list[Path]) -> None:
    from ingest.p114.layout import S0142Name

    for path in files:
        published = S0142Name.parse(path.name).created_at.date().isoformat()
        portal.publish(published, path.name, path.read_bytes())


def test_portal_backfill_lists_by_publication_date_downloads_and_loads(tmp_path, wh, portal):
    files = make_folder(tmp_path / "made")
    publish_all(portal, files)
    today = max(default_created_at(d, "SF") for d in DAYS).date() + dt.timedelta(days=30)
    client = PortalClient(portal.key, portal.url, backoff_max_s=0.01)
    summary = run_backfill(wh, DAYS[0], DAYS[-1], runs=("II", "SF"), source="portal", cache_dir=tmp_path / "cache",
                           client=client, today=today)
    assert len(summary.loaded) == 8 and not summary.failed
    assert_each_file_loaded_exactly_once(wh, files, len(UNITS))
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(p.name for p in files)
    lists = portal.counts["/p114/list"]
    assert lists == len(publication_dates(DAYS[0], DAYS[-1], ("II", "SF"), today))

    # a second run lists only recent publication dates again and downloads nothing
    again = run_backfill(wh, DAYS[0], DAYS[-1], runs=("II", "SF"), source="portal", cache_dir=tmp_path / "cache",
                         client=client, today=today)
    assert again.planned == 0 and again.already_loaded == 8
    assert portal.counts["/p114/download"] == 8
    assert portal.counts["/p114/list"] - lists <= 4


def test_portal_backfill_reports_a_bad_download_and_loads_the_rest(tmp_path, wh, portal):
    files = make_folder(tmp_path / "made")
    publish_all(portal, files)
    portal.fail(files[2].name, "text")
    today = dt.date(2025, 1, 31)
    summary = run_backfill(wh, DAYS[0], DAYS[-1], runs=("II", "SF"), source="portal", cache_dir=tmp_path / "cache",
                           client=PortalClient(portal.key, portal.url, backoff_max_s=0.01), today=today)
    assert len(summary.loaded) == 7
    assert len(summary.failed) == 1 and "not gzip: 'Scripting Error 001" in summary.failed[0].error
    assert not (tmp_path / "cache" / files[2].name).exists()

    retry = run_backfill(wh, DAYS[0], DAYS[-1], runs=("II", "SF"), source="portal", cache_dir=tmp_path / "cache",
                         client=PortalClient(portal.key, portal.url, backoff_max_s=0.01), today=today)
    assert len(retry.loaded) == 1 and not retry.failed
    assert_each_file_loaded_exactly_once(wh, files, len(UNITS))
