"""Local stand-ins for alert targets: a JSON webhook (HTTP) and an SMTP server (aiosmtpd).

The real apprise library talks to them exactly as it would to Slack's or a mail relay's
counterpart: ``json://127.0.0.1:PORT/hook`` posts ``{"version", "title", "message", "type"}``;
``mailto://127.0.0.1:PORT?from=..&to=..&mode=insecure`` speaks SMTP.
"""

from __future__ import annotations

import json
import socket
import threading
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Webhook:
    """Records every POST; answers ``fail_next`` requests with HTTP 500 first (or every one with ``always_fail``)."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.requests = 0
        self.fail_next = 0
        self.always_fail = False
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.port = self._server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/hook"

    def _handler(self):
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with hook._lock:
                    hook.requests += 1
                    fail = hook.always_fail or hook.fail_next > 0
                    if hook.fail_next > 0:
                        hook.fail_next -= 1
                    if not fail:
                        hook.posts.append(json.loads(body))
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        return Handler

    def start(self) -> "Webhook":
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Mailbox:
    """An SMTP server on a free local port that keeps each message it receives."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list = []
        box = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
                box.messages.append(message_from_bytes(envelope.content, policy=policy.default))
                return "250 OK"

        with socket.socket() as probe:  # a free port (the controller checks it is up by connecting to it)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> "Mailbox":
        self._controller.start()
        self.url = f"mailto://127.0.0.1:{self.port}?from=alerts@example.com&to=desk@example.com&mode=insecure"
        return self

    def stop(self) -> None:
        self._controller.stop()
