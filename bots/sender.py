"""The outbox sender for Telegram: renders each message from the store, sends it within
Telegram's limits, and says what happened (`crm.delivery.outbox_worker` records it and retries).

Failure kinds:
- 429 Too Many Requests: the message waits `retry_after` seconds (its chat is held as long);
  not counted against it.
- 5xx, network errors, timeouts, a rejected bot token: retried with exponential backoff
  (1 s, 2 s, 4 s … capped at 5 minutes, ±20% jitter), for as long as it takes.
- 400 / 403 / 404 from Telegram (chat not found, bot blocked by the user, message malformed),
  or a recipient with no chat: recorded as failed with Telegram's reason, never retried.
- A voicemail whose recording cannot be fetched yet: retried for `MEDIA_PATIENCE` (Twilio makes
  a recording available a little after its callback), then sent as text with a link.
Messages of one lane (`crm.services.notices`) leave in the order they were enqueued, one at a time; cards
go first when several messages wait for one chat. A restart picks up where the last process
stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

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
from aiogram.types import BufferedInputFile, Message
from sqlalchemy.ext.asyncio import AsyncSession

from bots.deliveries import (
    BEHIND_CARDS,
    Audio,
    MediaUnavailable,
    NoLongerNeeded,
    NotYet,
    Outgoing,
    Undeliverable,
    render_delivery,
    without_audio,
)
from bots.limits import SendLimits
from crm.delivery.outbox import Delivery
from crm.delivery.outbox_worker import Failed, OutboxWorker, Outcome, Retry, Sent, Skipped
from crm.domain.errors import NotFound
from crm.service import Crm
from crm.services import notices
from crm.storage.store import Store

log = logging.getLogger("bots.sender")

PERMANENT = (TelegramBadRequest, TelegramForbiddenError, TelegramNotFound, TelegramMigrateToChat)
MEDIA_PATIENCE = timedelta(minutes=5)  # then the voicemail goes out as a link, rather than never

# Fetches a recording's audio (name, bytes) with the provider's credentials.
MediaFetcher = Callable[[str], Awaitable[tuple[str, bytes]]]


class TelegramSender(OutboxWorker):
    """Drains the chat's channel of the outbox; one per gateway process."""

    channel = notices.CHANNEL

    def __init__(
        self,
        bot: Bot,
        store: Store,
        crm: Crm,
        *,
        limits: SendLimits | None = None,
        fetch_media: MediaFetcher | None = None,
        call_back: bool = False,
    ) -> None:
        super().__init__(store, crm.clock)
        self.call_back = call_back
        self.bot = bot
        self.crm = crm
        self.limits = limits or SendLimits()
        self.fetch_media = fetch_media

    async def deliver(self, delivery: Delivery) -> Outcome:
        try:
            async with self.store.looking_up() as s:
                message = await render_delivery(s, self.crm, delivery, call_back=self.call_back)
        except (NoLongerNeeded, NotFound) as exc:
            return Skipped(str(exc))
        except Undeliverable as exc:
            return Failed(str(exc))
        except NotYet as exc:
            return Retry(self.first_retry, str(exc), counts=False)
        audio = None
        if message.audio is not None:
            try:
                audio = await self._fetch(message.audio)
            except MediaUnavailable as exc:
                waited = self.clock.now() - delivery.created_at
                if waited < MEDIA_PATIENCE:
                    retry = self.retry(delivery, str(exc))
                    return Retry(min(retry.delay, (MEDIA_PATIENCE - waited).total_seconds()), retry.error)
                without_audio(message, message.audio, str(exc))
        try:
            async with self.limits.turn(message.chat_id, first=delivery.kind not in BEHIND_CARDS) as paid:
                sent = await self._send(message, audio, paid=paid)
        except TelegramRetryAfter as exc:
            self.limits.hold_chat(message.chat_id, exc.retry_after)
            return Retry(float(exc.retry_after), exc.message, counts=False)
        except PERMANENT as exc:
            return Failed(f"{type(exc).__name__}: {exc.message}")
        except (TelegramAPIError, aiohttp.ClientError, TimeoutError, OSError) as exc:
            return self.retry(delivery, repr(exc))
        return Sent(self._remember(message, sent.message_id))

    async def _fetch(self, audio: Audio) -> tuple[str, bytes]:
        if self.fetch_media is None:
            raise MediaUnavailable("recordings cannot be fetched: the telephony provider is off")
        try:
            return await self.fetch_media(audio.url)
        except MediaUnavailable:
            raise
        except Exception as exc:
            raise MediaUnavailable(str(exc)) from exc

    async def _send(self, message: Outgoing, audio: tuple[str, bytes] | None, *, paid: bool) -> Message:
        paid_broadcast = True if paid else None
        if audio is not None:
            name, data = audio
            return await self.bot.send_audio(
                chat_id=message.chat_id,
                audio=BufferedInputFile(data, filename=name),
                caption=message.text,
                reply_markup=message.reply_markup,
                allow_paid_broadcast=paid_broadcast,
            )
        return await self.bot.send_message(
            chat_id=message.chat_id,
            text=message.text,
            reply_markup=message.reply_markup,
            allow_paid_broadcast=paid_broadcast,
        )

    def _remember(
        self, message: Outgoing, message_id: int
    ) -> Callable[[AsyncSession], Awaitable[None]] | None:
        if not message.remember:
            return None
        about: dict[str, Any] = dict(message.remember)
        kind = str(about.pop("kind", "message"))

        async def record(s: AsyncSession) -> None:
            await self.crm.sent_messages.remember(
                s, self.channel, str(message.chat_id), str(message_id), kind, **about
            )

        return record
