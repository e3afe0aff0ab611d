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

from core.errors import InputFileError
from ingest.iris.decode import FILE_SOURCE, Message
from ingest.iris.load import BatchResult, IrisLoader

log = logging.getLogger(__name__)

SKIP_SUFFIXES = (".part", ".tmp", ".swp")
WATCH_SETTLE_S = 2.0  # a watch leaves files this young for its next pass: Elexon's client may be writing them
FILE_BATCH = 10_000  # messages per transaction: fewer, larger commits (about 50,000 rows, 60 MB of memory)


@dataclass
class ReplaySummary:
    files: int = 0
    loaded: int = 0
    duplicate_messages: int = 0
    rows: int = 0
    duplicate_rows: int = 0
    corrections: int = 0
    quarantined: int = 0
    seconds: float = 0.0

    def add(self, result: BatchResult, files: int) -> None:
        self.files += files
        self.loaded += result.messages
        self.duplicate_messages += result.duplicate_messages
        self.rows += result.inserted
        self.duplicate_rows += result.duplicate_rows
        self.corrections += result.corrections
        self.quarantined += result.quarantined

    def lines(self) -> list[str]:
        rate = self.files / self.seconds if self.seconds else 0.0
        return [
            f"IRIS file drop: {self.files:,} files in {self.seconds:,.1f} s ({rate:,.0f} messages/s)",
            f"  loaded          {self.loaded:,} messages, {self.rows:,} rows",
            f"  skipped         {self.duplicate_messages:,} messages already loaded, {self.duplicate_rows:,} duplicate rows",
            f"  corrections     {self.corrections:,} rows replaced an earlier version (kept in _history tables)",
            f"  quarantined     {self.quarantined:,} (see iris_quarantine)",
        ]


@dataclass(frozen=True)
class DropFile:
    """One message file: its path, dataset folder, name (the message id) and arrival time."""

    path: str
    subject: str
    name: str
    arrived: float  # modification time, seconds since the epoch
    size: int


def drop_files(root: str | Path) -> list[DropFile]:
    """Message files under ``root``, oldest first (by arrival, i.e. modification time, then name)."""
    root = Path(root)
    if not root.is_dir():
        raise InputFileError(f"IRIS file drop folder {root} does not exist")
    found = []
    with os.scandir(root) as datasets:
        for dataset_dir in datasets:
            if not dataset_dir.is_dir():
                continue
            with os.scandir(dataset_dir.path) as entries:
                for entry in entries:
                    if entry.is_file() and not entry.name.endswith(SKIP_SUFFIXES) and not entry.name.startswith("."):
                        st = entry.stat()
                        found.append(DropFile(entry.path, dataset_dir.name, entry.name, st.st_mtime, st.st_size))
    found.sort(key=lambda f: (f.arrived, f.name))
    return found


def file_message(file: DropFile) -> Message:
    """A file as a loader message; the arrival time is its enqueued time (the ``stat`` is not repeated)."""
    fd = os.open(file.path, os.O_RDONLY)  # plain system calls: a buffered file object costs more than the read
    try:
        parts = [os.read(fd, file.size + 1)]
        while parts[-1]:  # the file grew since it was listed: read to its end
            parts.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    body = b"".join(parts)
    return Message(
        message_id=file.name,
        body=body,
        subject=None if file.subject.lower() == "unknown" else file.subject,
        source=FILE_SOURCE,
        enqueued_at=dt.datetime.fromtimestamp(file.arrived, dt.timezone.utc),
    )


def _batches(files: list[DropFile], size: int) -> Iterator[list[DropFile]]:
    for i in range(0, len(files), size):
        yield files[i : i + size]


def replay_directory(
    loader: IrisLoader,
    root: str | Path,
    *,
    batch_size: int = FILE_BATCH,
    remove: bool = False,
    on_batch: Callable[[ReplaySummary], None] | None = None,
    settle_s: float = 0.0,
) -> ReplaySummary:
    """Load every message file under ``root`` once (a second replay skips them all).

    ``settle_s``: leave files modified less than this many seconds ago for the next pass (a watch
    beside Elexon's client, which writes files in place, then rarely reads one half-written).
    """
    started = time.perf_counter()
    summary = ReplaySummary()
    files = drop_files(root)
    if settle_s:
        cutoff = time.time() - settle_s
        files = [f for f in files if f.arrived <= cutoff]
    for batch in _batches(files, batch_size):
        result = loader.load([file_message(f) for f in batch])
        summary.add(result, len(batch))
        if remove:  # an unreadable file stays: it may be half-written (its bytes are in iris_quarantine)
            for f in batch:
                if f.name not in result.unreadable_files:
                    Path(f.path).unlink(missing_ok=True)
        summary.seconds = time.perf_counter() - started
        if on_batch:
            on_batch(summary)
    summary.seconds = time.perf_counter() - started
    return summary
