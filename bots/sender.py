"""The outbox sender for Telegram: claims due messages, renders them, sends them within
Telegram's limits, and records what happened.

Failure kinds:
- 429 Too Many Requests: the message waits `retry_after` seconds (its chat is held as long);
  not counted against it.
- 5xx, network errors, timeouts, a rejected bot token: retried with exponential backoff
  (1 s, 2 s, 4 s … capped at 5 minutes, ±20% jitter), for as long as it takes.
- 400 / 403 / 404 from Telegram (chat not found, bot blocked by the user, message malformed),
  or a recipient with no chat: recorded as failed with Telegram's reason, never retried.
Messages to one agent leave in the order they were enqueued, one at a time; a restart picks up
where the last process stopped (pending rows stay in the database; a claim held by a process
that died expires after its lease).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from datetime import timedelta

import aiohttp
from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNotFound,
    TelegramRetryAfter,
)

from bots.deliveries import NoLongerNeeded, Outgoing, Undeliverable, render_delivery
from bots.limits import SendLimits
from crm import outbox, sent_messages
from crm.errors import NotFound
from crm.outbox import Delivery
from crm.service import Crm
from crm.store import Store

log = logging.getLogger("bots.sender")

CHANNEL = "telegram"
LEASE = timedelta(seconds=60)
MAX_BACKOFF = 300.0
IDLE_POLL = 1.0  # other processes may enqueue too: look again this often when idle
PURGE_AFTER = timedelta(days=7)
PERMANENT = (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound, TelegramMigrateToChat)


def backoff(attempts: int, first: float = 1.0) -> float:
    """Seconds to wait before attempt `attempts + 1`: `first`, doubling, capped, with jitter."""
    base = min(first * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF)
    return base * random.uniform(0.8, 1.2)  # noqa: S311  # jitter, not cryptography


class TelegramSender:
    """Drains the `telegram` channel of the outbox; one per gateway process."""

    def __init__(
        self,
        bot: Bot,
        store: Store,
        crm: Crm,
        *,
        limits: SendLimits | None = None,
        concurrency: int = 30,
    ) -> None:
        self.bot = bot
        self.store = store
        self.crm = crm
        self.limits = limits or SendLimits()
        self.concurrency = concurrency
        self.first_retry = 1.0  # seconds; tests shorten it
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="telegram-sender")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let messages being sent finish (the rest stay queued in the store)."""
        self._stopping = True
        self._wakeup.set()
        if self._runner is not None:
            await self._runner
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=grace)
            for task in late:
                task.cancel()

    async def _run(self) -> None:
        last_purge = 0.0
        while not self._stopping:
            self._wakeup.clear()
            try:
                claimed = await self._claim()
            except Exception:
                log.exception("could not claim outbox messages; trying again shortly")
                claimed = []
            for delivery in claimed:
                task = asyncio.create_task(self._deliver(delivery))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            loop_time = asyncio.get_running_loop().time()
            if loop_time - last_purge > 3600:
                last_purge = loop_time
                await self._purge()
            if not claimed or len(self._inflight) >= self.concurrency:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), IDLE_POLL)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wakeup.set()  # the next message of that chat may be due now

    async def _claim(self) -> list[Delivery]:
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return []
        async with self.store.session() as s:
            return await outbox.claim(s, CHANNEL, now=self.crm.clock.now(), lease=LEASE, limit=room)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            async with self.store.reading() as s:
                message = await render_delivery(s, self.crm, delivery)
        except (NoLongerNeeded, NotFound) as exc:
            await self._settle(delivery, skipped=str(exc))
            return
        except Undeliverable as exc:
            log.warning("outbox %s: giving up: %s", delivery.id, exc)
            await self._settle(delivery, failed=str(exc))
            return
        except Exception as exc:
            log.exception("outbox %s: could not render", delivery.id)
            await self._settle(
                delivery, retry_in=backoff(delivery.attempts, self.first_retry), error=f"render: {exc!r}"
            )
            return
        await self.limits.wait_turn(message.chat_id)
        try:
            sent = await self.bot.send_message(
                chat_id=message.chat_id, text=message.text, reply_markup=message.reply_markup
            )
        except TelegramRetryAfter as exc:
            self.limits.hold_chat(message.chat_id, exc.retry_after)
            await self._settle(delivery, retry_in=float(exc.retry_after), error=exc.message, count=False)
        except PERMANENT as exc:
            log.warning("outbox %s: Telegram refused it for good: %s", delivery.id, exc.message)
            await self._settle(delivery, failed=f"{type(exc).__name__}: {exc.message}")
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            delay = backoff(delivery.attempts, self.first_retry)
            log.info("outbox %s: %r; retrying in %.1f s", delivery.id, exc, delay)
            await self._settle(delivery, retry_in=delay, error=repr(exc))
        else:
            await self._settle(delivery, sent_id=sent.message_id, message=message)

    async def _settle(
        self,
        delivery: Delivery,
        *,
        sent_id: int | None = None,
        message: Outgoing | None = None,
        retry_in: float | None = None,
        error: str = "",
        failed: str | None = None,
        skipped: str | None = None,
        count: bool = True,
    ) -> None:
        """Record the outcome; a message that was sent is never sent again from here."""
        now = self.crm.clock.now()
        for attempt in range(5):
            try:
                async with self.store.session() as s:
                    if sent_id is not None and message is not None:
                        await outbox.mark_sent(s, delivery.id, now=now)
                        if message.remember:
                            await sent_messages.remember(
                                s,
                                CHANNEL,
                                str(message.chat_id),
                                str(sent_id),
                                str(message.remember.pop("kind", "message")),
                                clock=self.crm.clock,
                                **message.remember,
                            )
                    elif failed is not None:
                        await outbox.mark_failed(s, delivery.id, now=now, error=failed)
                    elif skipped is not None:
                        await outbox.mark_skipped(s, delivery.id, now=now, reason=skipped)
                    else:
                        at = now + timedelta(seconds=retry_in or 0.0)
                        await outbox.mark_retry(s, delivery.id, at=at, error=error, uncount=not count)
                return
            except Exception:
                log.exception("outbox %s: could not record the outcome (try %d)", delivery.id, attempt + 1)
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _purge(self) -> None:
        try:
            async with self.store.session() as s:
                await outbox.purge_delivered(s, older_than=self.crm.clock.now() - PURGE_AFTER)
        except Exception:
            log.exception("could not purge delivered outbox messages")
