"""A server that answers anything with a line that is not HTTP, as a misconfigured proxy might.
aiohttp's errors then quote what they asked (a Bot API URL holds the bot's token; a request's
headers hold Twilio's credentials): tests use it to check that no secret is passed on."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture
def not_http_server() -> Iterator[str]:
    """The server's base URL."""

    class Garbage(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(65536)
            self.request.sendall(b"garbage\r\n\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Garbage)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
