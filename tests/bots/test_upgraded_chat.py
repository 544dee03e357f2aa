"""A gateway upgraded past 0006 (the chat's words) finds its agents bound and sends what waited."""

from __future__ import annotations

from crm.domain.clock import ShiftedClock
from gateway.app import create_app
from gateway.settings import Settings
from tests.bots.conftest import AiohttpServer, BotWorld
from tests.crm.test_migrations import downgrade_to, write_at_0005
from tests.fakes.bot_api import BotApiServer


async def test_a_notice_waiting_in_a_0005_database_reaches_the_still_bound_agent(
    db_url: str,
    bot_settings: Settings,
    bot_api: BotApiServer,
    clock: ShiftedClock,
    aiohttp_server: AiohttpServer,
) -> None:
    await downgrade_to(db_url, "0005")
    agent_id = await write_at_0005(db_url, chat_id=1001, text="Call Ada back")

    server = await aiohttp_server(create_app(bot_settings, clock=clock, upgrade=True), port=bot_settings.port)
    await bot_api.next_call("setWebhook")
    world = BotWorld(server, bot_api, clock)

    assert (await bot_api.next_message(1001)).text == "Call Ada back"
    async with world.store.reading() as s:
        alice = await world.crm.agents.by_chat(s, 1001)
    assert alice is not None and alice.id == agent_id
    assert "Client cards come here" in ((await world.say(1001, "/help")).text or "")
