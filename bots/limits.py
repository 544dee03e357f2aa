"""Telegram's sending limits, kept on our side: about 30 messages a second overall (up to 1000
with paid broadcasts, when enabled) and one a second per chat. A 429 with `retry_after` holds
that chat back for as long as Telegram asks. When several sends wait for one chat's turn, those
marked `first` (cards and notices) take it before the others (relayed messages, voicemails).

Telegram counts a message when it arrives, which is somewhere between the moment we start sending
it and the moment its answer comes back. So a send counts against the limits from its start until
one window after its answer: then no window of Telegram's can hold more than the limit, whatever
the network's delays, with no safety margin to guess.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

WINDOW = 1.0  # seconds of the overall limit
PAID_BROADCASTS_PER_SECOND = 1000  # Telegram's cap with allow_paid_broadcast
POLL = 0.02  # how often a waiting send looks again when the sends it waits for are still in flight


class _Send:
    __slots__ = ("ended", "paid")

    def __init__(self, *, paid: bool) -> None:
        self.ended = math.inf  # in flight
        self.paid = paid


class SendLimits:
    """`paid_per_second` > 0: past the free `per_second`, sends go out as paid broadcasts
    (Telegram's `allow_paid_broadcast`, 0.1 Stars each from the bot's balance) up to that many a
    second overall, instead of waiting. Only the overflow is paid for."""

    def __init__(self, *, per_second: int = 30, chat_interval: float = 1.0, paid_per_second: int = 0) -> None:
        self.per_second = per_second
        self.chat_interval = chat_interval
        self.paid_per_second = paid_per_second
        self._sends: list[_Send] = []
        self._chat_free_at: dict[int, float] = {}
        self._first_waiting: dict[int, int] = {}  # chat → sends marked `first` waiting for its turn
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def turn(self, chat_id: int, *, first: bool = False) -> AsyncIterator[bool]:
        """Wait until a message to `chat_id` keeps the limits (and, unless `first`, until no send
        marked `first` waits for that chat); send it inside the block, as a paid broadcast when
        the block is given True."""
        if first:
            self._first_waiting[chat_id] = self._first_waiting.get(chat_id, 0) + 1
        try:
            send = await self._acquire(chat_id, first=first)
        finally:
            if first:
                self._give_way_done(chat_id)
        try:
            yield send.paid
        finally:
            end = time.monotonic()
            send.ended = end
            self._chat_free_at[chat_id] = end + self.chat_interval  # `hold_chat` may push it later

    def _give_way_done(self, chat_id: int) -> None:
        left = self._first_waiting.get(chat_id, 0) - 1
        if left > 0:
            self._first_waiting[chat_id] = left
        else:
            self._first_waiting.pop(chat_id, None)

    async def _acquire(self, chat_id: int, *, first: bool) -> _Send:
        while True:
            async with self._lock:
                now = time.monotonic()
                self._sends = [s for s in self._sends if now - s.ended < WINDOW]
                free_at = self._chat_free_at.get(chat_id, 0.0)
                chat_wait = POLL if free_at == math.inf else free_at - now  # inf: a send is under way
                if not first and self._first_waiting.get(chat_id):
                    chat_wait = max(chat_wait, POLL)  # a card waits for this chat: it goes first
                free = [s for s in self._sends if not s.paid]
                paid = False
                global_wait = 0.0
                if len(free) >= self.per_second:
                    if len(self._sends) < self.paid_per_second:
                        paid = True
                    else:
                        oldest = min(s.ended for s in (self._sends if self.paid_per_second else free))
                        global_wait = oldest + WINDOW - now if oldest != math.inf else POLL
                wait = max(chat_wait, global_wait)
                if wait <= 0:
                    send = _Send(paid=paid)
                    self._sends.append(send)
                    self._chat_free_at[chat_id] = math.inf  # busy until this send ends
                    self._forget_idle_chats(now)
                    return send
            await asyncio.sleep(min(wait, 5.0))

    def hold_chat(self, chat_id: int, seconds: float) -> None:
        """Telegram said to wait: nothing more goes to this chat for `seconds`."""
        until = time.monotonic() + seconds
        self._chat_free_at[chat_id] = max(self._chat_free_at.get(chat_id, 0.0), until)

    def _forget_idle_chats(self, now: float) -> None:
        if len(self._chat_free_at) > 10_000:
            self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > now}
