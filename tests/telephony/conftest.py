"""A gateway with Twilio and Telegram configured; tests act as Twilio and as the agents' phones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from crm.domain.clock import ShiftedClock
from crm.domain.models import Agent, Call
from gateway.app import create_app
from gateway.keys import CRM, STORE, SWEEPER, TELEGRAM
from gateway.settings import Settings
from tests.bots.conftest import AiohttpServer, bot_api, bot_settings, clock  # noqa: F401  # fixtures
from tests.fakes.bot_api import BotApiServer, SentMessage
from tests.fakes.twilio import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    TwilioRestServer,
    TwilioSimulator,
    running_rest_server,
)
from tests.gateway.conftest import settings  # noqa: F401  # fixture

COMPANY = "+14155550000"


@pytest.fixture
async def twilio_rest() -> AsyncIterator[TwilioRestServer]:
    async for server in running_rest_server():
        yield server


@pytest.fixture
def call_settings(bot_settings: Settings, twilio_rest: TwilioRestServer) -> Settings:  # noqa: F811
    return bot_settings.model_copy(
        update={
            "twilio_account_sid": DEFAULT_ACCOUNT_SID,
            "twilio_auth_token": DEFAULT_AUTH_TOKEN,
            "twilio_api_url": twilio_rest.url,
            "twilio_caller_id": COMPANY,
        }
    )


@dataclass
class Phones:
    """The gateway, Twilio acting on it, and the agents' Telegram."""

    server: TestServer
    twilio: TwilioSimulator
    rest: TwilioRestServer
    bot_api: BotApiServer
    clock: ShiftedClock

    @property
    def store(self) -> Any:
        return self.server.app[STORE]

    @property
    def crm(self) -> Any:
        return self.server.app[CRM]

    async def agent(self, name: str, phone: str, chat_id: int, **extra: Any) -> Agent:
        """An agent on duty whose Telegram chat is bound."""
        async with self.store.session() as s:
            agent = await self.crm.agents.add(s, name, phone=phone, **extra)
            await self.crm.agents.bind_chat(s, agent.invite_code, chat_id=chat_id, user_id=chat_id)
            return agent

    async def client(self, name: str, phone: str, owner: Agent | None = None) -> int:
        async with self.store.session() as s:
            match = await self.crm.clients.find_or_create_by_phone(s, phone, name=name)
            if owner is not None:
                await self.crm.clients.set_owner_if_none(s, match.client_id, owner.id)
            return int(match.client_id)

    async def call_row(self, sid: str) -> Call:
        from sqlalchemy import select

        async with self.store.reading() as s:
            return (await s.execute(select(Call).where(Call.provider_call_id == sid))).scalar_one()

    async def sweep(self) -> list[int]:
        return list(await self.server.app[SWEEPER].run_once())

    async def card(self, chat_id: int) -> SentMessage:
        return await self.bot_api.next_message(chat_id)


@pytest.fixture
async def phones(
    call_settings: Settings,
    bot_api: BotApiServer,  # noqa: F811
    twilio_rest: TwilioRestServer,
    clock: ShiftedClock,  # noqa: F811
    aiohttp_server: AiohttpServer,
) -> AsyncIterator[Phones]:
    """The gateway; set up after (and so stopped before) the database and the fakes it talks to."""
    server = await aiohttp_server(create_app(call_settings, clock=clock), port=call_settings.port)
    await bot_api.next_call("setWebhook")
    server.app[TELEGRAM].sender.first_retry = 0.05
    server.app[TELEGRAM].sender.limits.chat_interval = 0.05
    async with TwilioSimulator(base_url=call_settings.public_url, rest=twilio_rest) as twilio:
        yield Phones(server, twilio, twilio_rest, bot_api, clock)
