"""The Elexon Portal client against a local Portal over HTTP: listing, downloads, retries, secrecy."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import logging

import pytest

from core.logs import setup_logging
from ingest.p114.portal import PortalClient, PortalError

NAME = "S0142_20241011_SF_20241103120209.gz"
GZ = gzip.compress(b"AAA|S0142013|D|20241103120209|\n")


def client(portal, **kwargs) -> PortalClient:
    kwargs.setdefault("backoff_max_s", 0.05)
    return PortalClient(kwargs.pop("key", portal.key), kwargs.pop("base_url", portal.url), **kwargs)


def test_list_returns_the_s0142_files_published_that_day(portal):
    portal.publish("2024-11-03", NAME, GZ)
    portal.publish("2024-11-03", "S0142_20241010_II_20241103120000.gz", GZ)
    assert client(portal).list_s0142(dt.date(2024, 11, 3)) == ["S0142_20241010_II_20241103120000.gz", NAME]
    path, params = portal.requests[-1]
    assert path == "/p114/list" and params == {"key": portal.key, "date": "2024-11-03", "filter": "s0142"}


def test_an_empty_day_is_listed_as_no_files(portal):
    assert client(portal).list_s0142(dt.date(2024, 11, 4)) == []


def test_download_writes_the_gzip_file_atomically(portal, tmp_path):
    portal.publish("2024-11-03", NAME, GZ)
    path = client(portal).download(NAME, tmp_path)
    assert path == tmp_path / NAME and path.read_bytes() == GZ
    assert not list(tmp_path.glob("*.part"))


def test_a_200_text_answer_instead_of_gzip_is_an_error_and_leaves_no_file(portal, tmp_path):
    portal.publish("2024-11-03", NAME, GZ)
    portal.fail(NAME, "text")
    with pytest.raises(PortalError, match="answered with text, not gzip: 'Scripting Error 001"):
        client(portal).download(NAME, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert portal.counts["/p114/download"] == 1  # not retried


def test_a_bad_key_is_reported_without_showing_the_key(portal, monkeypatch):
    with pytest.raises(PortalError) as info:
        client(portal, key="wrong-secret-key-999").list_s0142(dt.date(2024, 11, 3))
    assert "Scripting Error 001" in str(info.value)
    assert "wrong-secret-key-999" not in str(info.value)


def test_5xx_answers_are_retried_with_backoff(portal, tmp_path):
    portal.publish("2024-11-03", NAME, GZ)
    portal.fail(NAME, 503, 502)
    assert client(portal).download(NAME, tmp_path).read_bytes() == GZ
    assert portal.counts["/p114/download"] == 3


def test_timeouts_are_retried(portal):
    portal.publish("2024-11-03", NAME, GZ)
    portal.fail("/p114/list", "slow:1.0")
    assert client(portal, timeout=0.3).list_s0142(dt.date(2024, 11, 3)) == [NAME]
    assert portal.counts["/p114/list"] == 2


def test_4xx_answers_are_not_retried(portal, tmp_path):
    with pytest.raises(PortalError, match="HTTP 404"):
        client(portal).download("S0142_20241011_SF_20241103999999.gz", tmp_path)
    assert portal.counts["/p114/download"] == 1


def test_it_gives_up_after_the_configured_attempts_without_leaking_the_key(portal):
    portal.fail("/p114/list", 500, 500, 500)
    with pytest.raises(PortalError) as info:
        client(portal, attempts=3).list_s0142(dt.date(2024, 11, 3))
    assert "gave up after 3 attempts" in str(info.value)
    assert portal.key not in str(info.value)
    assert portal.counts["/p114/list"] == 3


def test_connection_refused_fails_fast_without_the_key(monkeypatch):
    with pytest.raises(PortalError) as info:
        PortalClient("refused-secret-key-42", "http://127.0.0.1:9", attempts=3, backoff_max_s=0.01).list_s0142(dt.date(2024, 1, 1))
    assert "refused-secret-key-42" not in str(info.value)


def test_missing_key_is_a_clear_error(monkeypatch):
    with pytest.raises(PortalError, match="ELEXON_PORTAL_KEY is not set"):
        PortalClient(None, "http://127.0.0.1:9")


def test_the_key_never_reaches_the_logs_even_at_debug(portal, tmp_path):
    stream = io.StringIO()
    setup_logging("DEBUG", stream=stream)
    try:
        portal.publish("2024-11-03", NAME, GZ)
        c = client(portal)
        c.list_s0142(dt.date(2024, 11, 3))
        c.download(NAME, tmp_path)
        portal.fail("/p114/list", 503)
        c.list_s0142(dt.date(2024, 11, 3))
    finally:
        setup_logging("WARNING")
    text = stream.getvalue()
    assert "GET /p114/list?key=***" in text  # urllib3 logged the request line, redacted
    assert portal.key not in text
    logging.getLogger().handlers.clear()
