"""Replay a file drop written by Elexon's IRIS client: ``DIR/<DATASET>/<message id>``.

This is the migration path from the user's ``iris_data/`` folders: each file is one message
(its name is the message id, its folder the dataset, its modification time when it arrived).
Files are loaded in arrival order, in batches, each batch in one transaction; replaying the same
folder again loads nothing twice. With ``remove=True`` a file is deleted once its batch is committed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ingest.iris.decode import Message
from ingest.iris.load import BatchResult, IrisLoader

log = logging.getLogger(__name__)

SKIP_SUFFIXES = (".part", ".tmp", ".swp")


@dataclass
class ReplaySummary:
    files: int = 0
    loaded: int = 0
    duplicate_messages: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def add(self, result: BatchResult, files: int) -> None:
        self.files += files
        self.loaded += result.messages
        self.duplicate_messages += result.duplicate_messages
        self.rows += result.inserted
        self.duplicate_rows += result.duplicate_rows
        self.quarantined += result.quarantined

    def lines(self) -> list[str]:
        rate = self.files / self.seconds if self.seconds else 0.0
        return [
            f"IRIS file drop: {self.files:,} files in {self.seconds:,.1f} s ({rate:,.0f} messages/s)",
            f"  loaded          {self.loaded:,} messages, {self.rows:,} rows",
            f"  skipped         {self.duplicate_messages:,} messages already loaded, {self.duplicate_rows:,} duplicate rows",
            f"  quarantined     {self.quarantined:,} (see iris_quarantine)",
        ]


def drop_files(root: str | Path) -> list[Path]:
    """Message files under ``root``, oldest first (by modification time, then name)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"IRIS file drop folder {root} does not exist")
    found = []
    for dataset_dir in root.iterdir():
        if not dataset_dir.is_dir():
            continue
        with os.scandir(dataset_dir) as entries:
            for entry in entries:
                if entry.is_file() and not entry.name.endswith(SKIP_SUFFIXES) and not entry.name.startswith("."):
                    found.append((entry.stat().st_mtime, entry.name, Path(entry.path)))
    found.sort()
    return [path for _, _, path in found]


def file_message(path: Path) -> Message:
    subject = path.parent.name
    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
    return Message(
        message_id=path.name,
        body=path.read_bytes(),
        subject=None if subject.lower() == "unknown" else subject,
        source="file",
        enqueued_at=mtime,
    )


def _batches(paths: list[Path], size: int) -> Iterator[list[Path]]:
    for i in range(0, len(paths), size):
        yield paths[i : i + size]


def replay_directory(
    loader: IrisLoader,
    root: str | Path,
    *,
    batch_size: int = 2000,
    remove: bool = False,
    on_batch: Callable[[ReplaySummary], None] | None = None,
) -> ReplaySummary:
    """Load every message file under ``root`` once (a second replay skips them all)."""
    started = time.perf_counter()
    summary = ReplaySummary()
    for paths in _batches(drop_files(root), batch_size):
        messages = [file_message(p) for p in paths]
        summary.add(loader.load(messages), len(paths))
        if remove:
            for p in paths:
                p.unlink(missing_ok=True)
        summary.seconds = time.perf_counter() - started
        if on_batch:
            on_batch(summary)
    summary.seconds = time.perf_counter() - started
    return summary
