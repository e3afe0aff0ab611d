"""IRIS message bodies → records, whatever the encoding.

An IRIS body is normally *double-encoded*: a JSON string literal whose content is the JSON array
of records (``../shared/reference/IRIS.md`` 2.2). Files written by Elexon's client hold the plain
array, and the API returns arrays or ``{"data": [...]}``. All of them decode here.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat

import orjson

from core.errors import DecodeError

DATASET_CODE = re.compile(r"^[A-Z][A-Z0-9_]{1,31}$")


FILE_SOURCE = "file"  # a message read from a file drop: its file may still change (written in place)


@dataclass
class Message:
    """One unit of ingestion: an IRIS message, a file from a file drop, or an API response chunk."""

    message_id: str
    body: bytes
    subject: str | None = None
    source: str = "iris"  # iris | file | api
    enqueued_at: dt.datetime | None = None
    sequence_number: int | None = None
    delivery_count: int = 0
    received_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


def decode_body(body: bytes | str) -> list[dict]:
    """The records in a body: double-encoded JSON, a plain array, one object, or ``{"data": [...]}``."""
    if isinstance(body, str):
        body = body.encode()
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    try:
        value = orjson.loads(body)
        if isinstance(value, str):  # double-encoded: the JSON text of the array, as a JSON string
            value = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not JSON: {exc}") from None
    if isinstance(value, dict):
        value = value["data"] if isinstance(value.get("data"), list) else [value]
    if not isinstance(value, list):
        raise DecodeError(f"body is JSON {type(value).__name__}, expected an array of records")
    if not all(map(isinstance, value, repeat(dict))):  # C-level check; the slow search only on failure
        i, record = next((i, r) for i, r in enumerate(value) if not isinstance(r, dict))
        raise DecodeError(f"record {i} is {type(record).__name__}, expected an object")
    return value


def dataset_of(message: Message, record: dict) -> str | None:
    """The dataset a record belongs to: the message subject, else the record's ``dataset`` field."""
    for candidate in (message.subject, record.get("dataset")):
        code = _dataset_code(candidate) if isinstance(candidate, str) else None
        if code:
            return code
    return None


@lru_cache(maxsize=4096)
def _dataset_code(text: str) -> str | None:
    code = text.strip().upper()
    return code if DATASET_CODE.match(code) else None
