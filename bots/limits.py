"""Telegram's sending limits, kept on our side: about 30 messages a second overall and one a
second per chat. A 429 with `retry_after` holds that chat back for as long as Telegram asks.

Telegram counts when a request arrives, we count when it leaves: both windows are kept with a
margin (`SLACK`) so that network jitter cannot push two sends into one of Telegram's windows."""

from __future__ import annotations

import asyncio
import time
from collections import deque

SLACK = 0.1  # seconds added to each window


class SendLimits:
    def __init__(self, *, per_second: int = 30, chat_interval: float = 1.0) -> None:
        self.per_second = per_second
        self.chat_interval = chat_interval
        self._recent: deque[float] = deque()
        self._chat_free_at: dict[int, float] = {}
        self._lock = asyncio.Lock()

    async def wait_turn(self, chat_id: int) -> None:
        """Sleep until a message to `chat_id` keeps both limits, and count it as sent."""
        while True:
            async with self._lock:
                now = time.monotonic()
                window = 1.0 + SLACK
                while self._recent and now - self._recent[0] >= window:
                    self._recent.popleft()
                chat_wait = self._chat_free_at.get(chat_id, 0.0) - now
                full = len(self._recent) >= self.per_second
                global_wait = window - (now - self._recent[0]) if full else 0.0
                wait = max(chat_wait, global_wait)
                if wait <= 0:
                    self._recent.append(now)
                    self._chat_free_at[chat_id] = now + self.chat_interval + SLACK
                    self._forget_idle_chats(now)
                    return
            await asyncio.sleep(wait)

    def hold_chat(self, chat_id: int, seconds: float) -> None:
        """Telegram said to wait: nothing more goes to this chat for `seconds`."""
        until = time.monotonic() + seconds
        self._chat_free_at[chat_id] = max(self._chat_free_at.get(chat_id, 0.0), until)

    def _forget_idle_chats(self, now: float) -> None:
        if len(self._chat_free_at) > 10_000:
            self._chat_free_at = {c: t for c, t in self._chat_free_at.items() if t > now}
