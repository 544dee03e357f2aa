"""Each Telegram update is applied once (webhook and polling alike): an update Telegram delivers
again, or that someone replays, is answered and ignored (`Crm.applied_updates`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import TelegramObject, Update

from bots import MESSENGER
from crm.domain.paging import MAX_ID
from crm.service import Crm
from crm.storage.store import Store

log = logging.getLogger("bots")

FORGET_EVERY = 3600.0  # seconds between purges of old marks


class OncePerUpdate(BaseMiddleware):
    """Outer middleware of the dispatcher's `update` observer, before everything else."""

    def __init__(self, store: Store, crm: Crm) -> None:
        self.store = store
        self.applied = crm.applied_updates
        self.clock = crm.clock
        self._next_purge = 0.0

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        assert isinstance(event, Update)
        update_id = event.update_id
        if not 0 <= update_id <= MAX_ID:
            log.warning("Telegram update with an impossible id %s ignored", update_id)
            return UNHANDLED
        now = self.clock.now()
        async with self.store.session() as s:
            fresh = await self.applied.first_time(s, MESSENGER, update_id)
            if now.timestamp() >= self._next_purge:
                self._next_purge = now.timestamp() + FORGET_EVERY
                await self.applied.forget_old(s)
        if not fresh:
            log.info("Telegram update %s was applied before; ignored", update_id)
            return UNHANDLED
        try:
            return await handler(event, data)
        except BaseException:
            async with self.store.session() as s:
                await self.applied.release(s, MESSENGER, update_id)
            raise
