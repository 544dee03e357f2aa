"""One gateway per fuzz test, with Twilio and the Telegram webhook on and a few real records."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from crm.domain.clock import ShiftedClock
from crm.domain.models import Call
from gateway.app import create_app
from gateway.keys import CRM, STORE, TELEGRAM
from gateway.settings import Settings
from tests.bots.conftest import AiohttpServer, bot_api, bot_settings, clock  # noqa: F401  # fixtures
from tests.fakes.bot_api import BotApiServer
from tests.fakes.twilio import TwilioSimulator
from tests.gateway.fuzz.world import World
from tests.telephony.conftest import call_settings, twilio_rest  # noqa: F401  # fixtures


@pytest.fixture
async def world(
    call_settings: Settings,  # noqa: F811
    bot_api: BotApiServer,  # noqa: F811
    clock: ShiftedClock,  # noqa: F811
    aiohttp_server: AiohttpServer,
) -> AsyncIterator[World]:
    """The gateway (set up after, so stopped before, its database and fakes), with agent Alice
    bound in Telegram, her client Ada, a call from Ada, and a task to call her back."""
    settings = call_settings.model_copy(update={"leads_rate_limit": "100000/minute"})
    server = await aiohttp_server(create_app(settings, clock=clock), port=settings.port)
    await bot_api.next_call("setWebhook")
    server.app[TELEGRAM].sender.first_retry = 0.05
    crm, store = server.app[CRM], server.app[STORE]
    async with store.session() as s:
        alice = await crm.agents.add(s, "Alice", phone="+14155550001")
        await crm.agents.bind_chat(s, alice.invite_code, chat_id=1001, user_id=1001)
        ada = (await crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada")).client_id
        await crm.clients.set_owner_if_none(s, ada, alice.id)
        task = await crm.tasks.create(
            s, client_id=ada, title="Call Ada back", due_at=clock.now() + timedelta(days=1), agent_id=None
        )
        token = await crm.tokens.create(s, "fuzz")
    async with (
        aiohttp.ClientSession() as http,
        TwilioSimulator(base_url=settings.public_url, http=http) as twilio,
    ):
        call = await twilio.inbound(from_="+14155550100")
        call_id = await _call_id(server.app, call.sid)
        yield World(server, http, twilio, settings.public_url, token, (ada, alice.id, call_id, task.id))


async def _call_id(app: web.Application, sid: str) -> int:
    async with app[STORE].reading() as s:
        return int((await s.execute(select(Call.id).where(Call.provider_call_id == sid))).scalar_one())
