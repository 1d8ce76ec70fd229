"""Stand-in OpenAI-compatible endpoints on 127.0.0.1 for tests that need no real model."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any


class JSONHandler(BaseHTTPRequestHandler):
    """Answers every POST with ``respond(body)`` as JSON; quiet.

    Subclasses implement :meth:`respond`; returning ``None`` sends an empty 503.
    """

    def respond(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """The JSON reply to a request body (``None``: the server is unavailable)."""
        raise NotImplementedError

    def do_POST(self) -> None:
        """Read the JSON body, send the JSON reply."""
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.respond(body)
        if reply is None:
            self.send_response(503)
            self.end_headers()
            return
        payload = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        """No request log on stderr."""


def chat_choices(texts: list[str], **extra: Any) -> list[dict[str, Any]]:
    """``choices`` of a chat completion reply, one per text."""
    return [
        {
            "index": i,
            "message": {"role": "assistant", "content": t},
            "finish_reason": "stop",
            **extra,
        }
        for i, t in enumerate(texts)
    ]


@contextlib.contextmanager
def serve(handler: Callable[..., BaseHTTPRequestHandler], threaded: bool = False) -> Iterator[str]:
    """Serve ``handler`` on a free port in a thread; yields the ``/v1`` base URL.

    ``threaded`` answers each connection in its own thread, so a slow reply (a trickle the
    client gives up on) does not hold back the next request.
    """
    server = ThreadingHTTPServer if threaded else HTTPServer
    httpd = server(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
