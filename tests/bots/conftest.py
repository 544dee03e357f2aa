"""A gateway with its Telegram bot pointed at a local Bot API server, and agents who use it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from crm.domain.clock import ShiftedClock
from crm.domain.models import Agent
from gateway.app import create_app
from gateway.keys import CRM, STORE, TELEGRAM
from gateway.settings import Settings
from tests.fakes.bot_api import BotApiServer, SentMessage, running_bot_api
from tests.processes import free_port

SECRET = "test-webhook-secret"
AiohttpServer = Callable[..., Awaitable[TestServer]]


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApiServer]:
    async for server in running_bot_api():
        yield server


@pytest.fixture
def clock() -> ShiftedClock:  # type: ignore[override]  # real time here: the sender sleeps for real
    return ShiftedClock()


@pytest.fixture
def bot_settings(db_url: str, bot_api: BotApiServer) -> Settings:
    port = free_port()
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=db_url,
        port=port,
        public_url=f"http://127.0.0.1:{port}",
        telegram_bot_token=bot_api.token,
        telegram_api_url=bot_api.url,
        telegram_mode="webhook",
        telegram_webhook_secret=SECRET,
    )


@dataclass
class BotWorld:
    """The gateway (webhook mode) and the Bot API server it talks to."""

    server: TestServer
    bot_api: BotApiServer
    clock: ShiftedClock

    @property
    def app(self) -> web.Application:
        return self.server.app  # type: ignore[return-value]

    @property
    def store(self) -> Any:
        return self.app[STORE]

    @property
    def crm(self) -> Any:
        return self.app[CRM]

    @property
    def sender(self) -> Any:
        return self.app[TELEGRAM].sender

    async def say(self, chat_id: int, text: str, *, reply_to: SentMessage | None = None) -> SentMessage:
        """A user types `text` in their chat; returns the bot's answer."""
        update = self.bot_api.user_message(chat_id=chat_id, text=text, user_id=chat_id, reply_to=reply_to)
        status = await self.bot_api.post_to_webhook(update, secret=SECRET)
        assert status == 200
        return await self.bot_api.next_message(chat_id)

    async def press(self, chat_id: int, message: SentMessage, label: str) -> None:
        """A user presses the button labelled `label` under `message`."""
        data = message.button_data(label)
        update = self.bot_api.callback(chat_id=chat_id, message=message, data=data, user_id=chat_id)
        assert await self.bot_api.post_to_webhook(update, secret=SECRET) == 200

    async def bound_agent(self, name: str, phone: str, chat_id: int, role: str = "agent") -> Agent:
        """An agent added by the admin who then sent `/start CODE` from their chat."""
        async with self.store.session() as s:
            agent = await self.crm.agents.add(s, name, phone=phone, role=role)
        welcome = await self.say(chat_id, f"/start {agent.invite_code}")
        assert "Welcome" in (welcome.text or "")
        async with self.store.reading() as s:
            return await self.crm.agents.get(s, agent.id)


async def polling_gateway(
    aiohttp_server: AiohttpServer, bot_settings: Settings, bot_api: BotApiServer
) -> TestServer:
    """The gateway in polling mode (no webhook, no public URL), once it has told Telegram so."""
    settings = bot_settings.model_copy(update={"telegram_mode": "polling", "telegram_webhook_secret": None})
    server = await aiohttp_server(create_app(settings), port=settings.port)
    await bot_api.next_call("deleteWebhook")
    return server


@pytest.fixture
async def world(
    bot_settings: Settings, bot_api: BotApiServer, clock: ShiftedClock, aiohttp_server: AiohttpServer
) -> BotWorld:
    """The gateway; it is set up after (and so stopped before) the database and the Bot API."""
    server = await aiohttp_server(create_app(bot_settings, clock=clock), port=bot_settings.port)
    await bot_api.next_call("setWebhook")
    server.app[TELEGRAM].sender.first_retry = 0.05
    server.app[TELEGRAM].sender.limits.chat_interval = 0.05
    return BotWorld(server, bot_api, clock)
