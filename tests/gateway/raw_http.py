"""HTTP written byte for byte on a socket: for header bytes no HTTP client sends (bytes that are
not UTF-8, say), which any stranger's script can."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    status: int
    content_type: str
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    host: str, port: int, request_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> RawAnswer:
    """Send `request_line` (`POST /path`) with `headers` and `body`; the answer, once it is whole."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        head = [request_line + b" HTTP/1.1", b"Host: " + host.encode()]
        head += [name + b": " + value for name, value in headers]
        head += [b"Content-Length: %d" % len(body), b"Connection: close"]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = raw.partition(b"\r\n")
    head_text, _, payload = rest.partition(b"\r\n\r\n")
    fields = {}
    for line in head_text.split(b"\r\n"):
        name, _, value = line.decode("latin-1").partition(":")
        fields[name.strip().lower()] = value.strip()
    content_type = fields.get("content-type", "").split(";")[0].strip()
    return RawAnswer(int(status_line.split()[1]), content_type, payload)
