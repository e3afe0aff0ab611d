"""A local Elexon Portal (P114 list/download) with scriptable failures, on 127.0.0.1.

Behaves like the real one where we know it: the scripting key goes in the query string, the list
is JSON keyed by file name (``[]`` when empty), and errors such as a bad key come back as HTTP 200
with a short text ("Scripting Error 001 …").
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

SCRIPTING_ERROR = b"Scripting Error 001: Scripting key provided does not resolve to a valid user"


class FakePortal:
    def __init__(self, key: str = "test-portal-key-123"):
        self.key = key
        self.published: dict[str, dict[str, bytes]] = defaultdict(dict)  # publication date -> name -> bytes
        self.failures: dict[str, list] = defaultdict(list)  # path or file name -> scripted answers
        self.requests: list[tuple[str, dict]] = []
        self.counts: Counter = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def publish(self, publication_date: str, name: str, data: bytes) -> None:
        self.published[publication_date][name] = data

    def fail(self, target: str, *answers) -> None:
        """Script the next answers for a path ('/p114/list') or a file name: an int status, 'slow:SECONDS', 'text'."""
        self.failures[target].extend(answers)

    def start(self) -> "FakePortal":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        portal = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output quiet
                pass

            def _send(self, status: int, body: bytes, content_type: str = "text/html") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                portal.requests.append((url.path, params))
                portal.counts[url.path] += 1
                target = params.get("filename", url.path)
                for key in (target, url.path):
                    if portal.failures.get(key):
                        answer = portal.failures[key].pop(0)
                        if isinstance(answer, int):
                            return self._send(answer, b"<html>Service Unavailable</html>")
                        if answer == "text":
                            return self._send(200, SCRIPTING_ERROR)
                        if isinstance(answer, str) and answer.startswith("slow:"):
                            time.sleep(float(answer[5:]))
                        break
                if params.get("key") != portal.key:
                    return self._send(200, SCRIPTING_ERROR)
                if url.path == "/p114/list":
                    files = portal.published.get(params.get("date", ""), {})
                    listing = {name: {"size": len(data)} for name, data in files.items()} or []
                    return self._send(200, json.dumps(listing).encode(), "application/json")
                if url.path == "/p114/download":
                    for files in portal.published.values():
                        if params.get("filename") in files:
                            return self._send(200, files[params["filename"]], "application/octet-stream")
                    return self._send(404, b"Not Found")
                return self._send(404, b"Not Found")

        return Handler
