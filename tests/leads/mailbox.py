"""A real SMTP server on loopback (aiosmtpd) that keeps the mail it receives, for tests of the
mail the gateway sends. It can be stopped and started again on the same port (an outage), and
told to answer DATA with another reply (a 4xx deferral, a 5xx refusal)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    def part(self, subtype: str) -> str:
        """The body of the `text/<subtype>` part."""
        found = self.message.get_body(preferencelist=(subtype,))
        assert found is not None and found.get_content_type() == f"text/{subtype}", self.message
        return str(found.get_content())


class Mailbox:
    """The SMTP server and what reached it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[Received] = []
        self.reply = "250 Message accepted for delivery"
        self.attempts = 0
        self._controller: Controller | None = None
        self._cursor = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # aiosmtpd's name
        self.attempts += 1
        if not self.reply.startswith("250"):
            return self.reply
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return self.reply

    async def start(self) -> None:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        await asyncio.to_thread(self._controller.start)

    async def stop(self) -> None:
        if self._controller is not None:
            await asyncio.to_thread(self._controller.stop)
            self._controller = None

    async def next_mail(self, timeout: float = 10.0) -> Received:
        """The next mail not returned yet, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        while len(self.received) <= self._cursor:
            if time.monotonic() > deadline:
                raise AssertionError(f"no mail within {timeout}s (received {len(self.received)} in all)")
            await asyncio.sleep(0.02)
        self._cursor += 1
        return self.received[self._cursor - 1]

    async def attempted(self, times: int, timeout: float = 10.0) -> None:
        """Wait until the server has been handed mail `times` times (accepted or not)."""
        deadline = time.monotonic() + timeout
        while self.attempts < times:
            assert time.monotonic() < deadline, f"only {self.attempts} attempts within {timeout}s"
            await asyncio.sleep(0.02)

    async def no_mail(self, within: float = 0.5) -> None:
        await asyncio.sleep(within)
        extra = self.received[self._cursor :]
        assert not extra, f"unexpected mail: {[r.message['Subject'] for r in extra]}"
