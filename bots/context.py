"""What every handler gets: the domain, units of work, and the agent behind the chat.

Handlers open their own short units of work (`uow.write()`) and talk to Telegram after they
commit: a write transaction must not stay open across a network call (on SQLite it would hold
the one write lock while Telegram answers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware
from aiogram.filters import Filter
from aiogram.types import Chat, TelegramObject
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import Agent
from crm.service import Crm
from crm.storage.store import Store


@dataclass(frozen=True, slots=True)
class ClickToCall:
    """Set when the gateway can place calls: the provider and the company's caller ID."""

    provider: str
    caller_id: str


class UnitOfWork:
    def __init__(self, store: Store) -> None:
        self._store = store

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        async with self._store.session() as s:
            yield s

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        async with self._store.reading() as s:
            yield s


class Context(BaseMiddleware):
    """Outer middleware: puts `crm`, `uow` and `agent` (the bound agent, or None) in the data."""

    def __init__(self, store: Store, crm: Crm, click_to_call: ClickToCall | None = None) -> None:
        self.uow = UnitOfWork(store)
        self.crm = crm
        self.click_to_call = click_to_call

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data["crm"] = self.crm
        data["uow"] = self.uow
        data["click_to_call"] = self.click_to_call
        chat: Chat | None = data.get("event_chat")
        agent: Agent | None = None
        if chat is not None and chat.type == "private":
            async with self.uow.read() as s:
                agent = await self.crm.agents.by_chat(s, chat.id)
        data["agent"] = agent
        return await handler(event, data)


class IsAgent(Filter):
    """Filter: the chat is bound to an active agent."""

    async def __call__(self, event: TelegramObject, agent: Agent | None = None) -> bool:
        return agent is not None
