"""The agents' bot as one object with a lifetime: built from settings, started and stopped by
the gateway (`gateway.app`), in polling or webhook mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode

from bots import agents
from bots.context import ClickToCall, Context
from bots.limits import PAID_BROADCASTS_PER_SECOND, SendLimits
from bots.once import OncePerUpdate
from bots.sender import MediaFetcher, TelegramSender
from bots.session import BotApiSession
from crm.service import Crm
from crm.storage.store import Store

log = logging.getLogger("bots")

SETUP_RETRY = 5.0  # seconds between tries to reach Telegram at start-up
REQUEST_TIMEOUT = 30


class TelegramBot:
    """Bot, dispatcher and outbox sender; `start()` and `stop()` are all the gateway calls."""

    def __init__(
        self,
        *,
        token: str,
        api_url: str,
        store: Store,
        crm: Crm,
        mode: str,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        fetch_media: MediaFetcher | None = None,
        click_to_call: ClickToCall | None = None,
        paid_broadcast: bool = False,
    ) -> None:
        session = BotApiSession(api=TelegramAPIServer.from_base(api_url), timeout=REQUEST_TIMEOUT)
        self.bot = Bot(
            token,
            session=session,
            default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
        )
        self.dispatcher = Dispatcher()
        self.dispatcher.update.outer_middleware(OncePerUpdate(store, crm))
        self.dispatcher.update.outer_middleware(Context(store, crm, click_to_call))
        self.dispatcher.include_router(agents.build_router())
        limits = SendLimits(paid_per_second=PAID_BROADCASTS_PER_SECOND if paid_broadcast else 0)
        self.sender = TelegramSender(
            self.bot, store, crm, limits=limits, fetch_media=fetch_media, call_back=click_to_call is not None
        )
        store.on_outbox_commit(self.sender.channel, self.sender.wake)
        self.mode = mode
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start sending at once; reach Telegram (commands, webhook or polling) in the background,
        so that a Telegram outage at start-up delays the bot but not the gateway."""
        self.sender.start()
        self._tasks.append(asyncio.create_task(self._connect(), name="telegram-connect"))

    async def _connect(self) -> None:
        while True:
            try:
                await self.bot.set_my_commands(agents.COMMANDS)
                if self.mode == "webhook":
                    await self.bot.set_webhook(
                        url=self.webhook_url or "",
                        secret_token=self.webhook_secret,
                        allowed_updates=self.dispatcher.resolve_used_update_types(),
                    )
                else:
                    await self.bot.delete_webhook(drop_pending_updates=False)
                break
            except Exception as exc:
                log.warning(
                    "cannot reach the Telegram Bot API yet (%s); retrying in %.0f s", exc, SETUP_RETRY
                )
                await asyncio.sleep(SETUP_RETRY)
        log.info("Telegram bot ready (%s mode)", self.mode)
        if self.mode == "polling":
            await self.dispatcher.start_polling(self.bot, handle_signals=False, close_bot_session=False)

    async def stop(self) -> None:
        if self.mode == "polling":
            with contextlib.suppress(RuntimeError):  # polling had not started
                await self.dispatcher.stop_polling()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.sender.stop()
        await self.bot.session.close()
