"""Outbox leases: a message still being sent is never claimed again, however long the send takes;
a crashed sender's messages are taken over once its lease runs out; and a sender that lost its
lease cannot undo what the one that took over did."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from crm.delivery import outbox
from crm.domain.clock import FrozenClock
from crm.domain.models import OutboxMessage
from crm.services import notices
from crm.storage.store import Store
from gateway.app import create_app
from gateway.keys import TELEGRAM
from gateway.settings import Settings
from tests.bots.conftest import AiohttpServer, BotWorld, bot_settings, clock, world  # noqa: F401  # fixtures
from tests.fakes.bot_api import BotApiServer
from tests.processes import free_port

HOLD = 3.0  # seconds the Bot API takes to answer a slow send
LEASE = timedelta(seconds=1)


class SlowBotApi(BotApiServer):
    """A Bot API that holds every sendMessage whose text says "slowly" for `HOLD` seconds."""

    async def _m_sendMessage(self, params: Any) -> Any:  # type: ignore[override]  # the fake awaits it
        if "slowly" in str(params.get("text", "")):
            await asyncio.sleep(HOLD)
        return super()._m_sendMessage(params)


@pytest.fixture
async def bot_api() -> AsyncIterator[BotApiServer]:
    async with SlowBotApi() as server:
        yield server


async def _second_gateway(first: BotWorld, aiohttp_server: AiohttpServer, settings: Settings) -> TestServer:
    """Another gateway process on the same database, its sender polling often."""
    port = free_port()
    other = settings.model_copy(update={"port": port, "public_url": f"http://127.0.0.1:{port}"})
    server: TestServer = await aiohttp_server(create_app(other, clock=first.clock), port=port)
    sender = server.app[TELEGRAM].sender
    sender.lease, sender.idle_poll, sender.first_retry = LEASE, 0.1, 0.05
    return server


async def _tell(gateway: BotWorld, agent_id: int, text: str) -> int:
    async with gateway.store.session() as s:
        return await outbox.enqueue(
            s,
            notices.CHANNEL,
            "text",
            {"agent_id": agent_id, "text": text},
            queue=f"agent:{agent_id}",
            clock=gateway.clock,
        )


async def _row(store: Store, message_id: int) -> OutboxMessage:
    async with store.reading() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.id == message_id))).scalar_one()


def _sends(bot_api: BotApiServer, text: str) -> int:
    return sum(1 for params in bot_api.calls("sendMessage") if params.get("text") == text)


async def test_a_send_slower_than_the_lease_reaches_the_agent_once_even_with_two_gateways(
    world: BotWorld,  # noqa: F811
    aiohttp_server: AiohttpServer,
    bot_settings: Settings,  # noqa: F811
) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    world.sender.lease = LEASE
    world.sender.idle_poll = 0.1
    await _second_gateway(world, aiohttp_server, bot_settings)
    message = await _tell(world, alice.id, "Call Ada back, slowly")
    assert (await world.bot_api.next_message(1001, timeout=HOLD + 5)).text == "Call Ada back, slowly"
    # Three leases went by while Telegram held the request; both senders kept polling meanwhile.
    await world.bot_api.no_message(1001, within=2 * LEASE.total_seconds())
    assert _sends(world.bot_api, "Call Ada back, slowly") == 1
    row = await _row(world.store, message)
    assert (row.status, row.attempts, row.locked_until) == ("sent", 1, None)


async def test_a_crashed_senders_message_is_sent_by_another_once_its_lease_runs_out(world: BotWorld) -> None:  # noqa: F811
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    world.sender.idle_poll = 0.1
    async with world.store.session() as s:  # a process claims it, then dies: no send, no renewal
        message = await outbox.enqueue(
            s,
            notices.CHANNEL,
            "text",
            {"agent_id": alice.id, "text": "Call Ada"},
            queue=f"agent:{alice.id}",
            clock=world.clock,
        )
        assert [d.id for d in await outbox.claim(s, notices.CHANNEL, now=world.clock.now(), lease=LEASE)] == [
            message
        ]
    await world.bot_api.no_message(1001, within=0.6 * LEASE.total_seconds())
    assert (await world.bot_api.next_message(1001, timeout=3)).text == "Call Ada"
    await world.bot_api.no_message(1001, within=0.5)
    row = await _row(world.store, message)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_a_sender_that_lost_its_lease_cannot_undo_the_next_ones_work(store: Store) -> None:
    frozen = FrozenClock(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))
    async with store.session() as s:
        message = await outbox.enqueue(s, "mail", "lead", {"lead_id": 1}, queue="lead:1", clock=frozen)
        (stalled,) = await outbox.claim(s, "mail", now=frozen.now(), lease=LEASE)
    frozen.advance(seconds=2)  # the first sender froze past its lease; a second one takes the message
    async with store.session() as s:
        (taken,) = await outbox.claim(s, "mail", now=frozen.now(), lease=LEASE)
        held_until = frozen.now() + LEASE
    async with store.session() as s:
        assert await outbox.renew(s, [stalled], until=frozen.now() + timedelta(hours=1)) == set()
        assert not await outbox.mark_retry(s, stalled, at=frozen.now(), error="timed out")
        assert not await outbox.mark_failed(s, stalled, now=frozen.now(), error="550 no such user")
        assert not await outbox.note(s, stalled, {"lead_id": 1, "note": "about to send"})
    row = await _row(store, message)
    assert (row.status, row.locked_until, row.attempts) == ("pending", held_until, 2)  # still the second's
    assert row.payload == {"lead_id": 1}

    async with store.session() as s:
        assert await outbox.renew(s, [taken], until=frozen.now() + LEASE) == {message}
        assert await outbox.mark_sent(s, stalled, now=frozen.now())  # it did get through after all
        assert not await outbox.mark_retry(s, taken, at=frozen.now(), error="timed out")
    row = await _row(store, message)
    assert (row.status, row.locked_until) == ("sent", None)  # nobody sends it a third time
