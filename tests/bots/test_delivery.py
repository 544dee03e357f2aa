"""The outbox sender: every message arrives exactly once and in order, whatever Telegram does."""

from __future__ import annotations

import asyncio
import bisect
import itertools

from aiohttp.test_utils import TestServer
from sqlalchemy import select

from crm.delivery import outbox
from crm.domain.models import OutboxMessage
from crm.services import notices
from gateway.app import create_app
from gateway.keys import TELEGRAM
from gateway.settings import Settings
from tests.bots.conftest import AiohttpServer, BotWorld, free_port
from tests.fakes.bot_api import BotApiServer


async def _notify(world: BotWorld, agent_id: int, *texts: str) -> None:
    async with world.store.session() as s:
        for text in texts:
            await outbox.enqueue(
                s,
                notices.CHANNEL,
                "text",
                {"agent_id": agent_id, "text": text},
                queue=f"agent:{agent_id}",
                clock=world.clock,
            )


async def _received(bot_api: BotApiServer, chat_id: int, count: int, timeout: float = 10.0) -> list[str]:
    return [(await bot_api.next_message(chat_id, timeout=timeout)).text or "" for _ in range(count)]


async def _statuses(world: BotWorld) -> dict[str, int]:
    async with world.store.reading() as s:
        rows = (await s.execute(select(OutboxMessage.status))).scalars().all()
    return {status: rows.count(status) for status in set(rows)}


async def _tried_in_vain(world: BotWorld, timeout: float = 10.0) -> None:
    """Wait until the sender has tried the first message and recorded its failure to arrive."""
    async with asyncio.timeout(timeout):
        while True:
            async with world.store.reading() as s:
                first = (await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().first()
            if first is not None and first.attempts >= 1 and first.last_error and first.locked_until is None:
                return
            await asyncio.sleep(0.02)


def _busiest_second(arrivals: list[float]) -> int:
    """The most of `arrivals` (sorted) that fall within any one second."""
    return max((bisect.bisect_left(arrivals, t + 1.0) - i for i, t in enumerate(arrivals)), default=0)


async def test_a_429_is_waited_out_and_order_is_kept(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    world.bot_api.fail_next(
        "sendMessage", 1, status=429, description="Too Many Requests: retry after 1", retry_after=1
    )
    await _notify(world, alice.id, "one", "two", "three")
    assert await _received(world.bot_api, 1001, 3) == ["one", "two", "three"]
    one = [c for c in world.bot_api.history if c.method == "sendMessage" and c.params.get("text") == "one"]
    refused, retried = one
    assert (refused.status, retried.status) == (429, 200)
    assert retried.at - refused.at >= 1.0  # the retry came once the "retry after 1" was over
    await world.bot_api.no_message(1001, within=0.3)
    assert await _statuses(world) == {"sent": 3}


async def test_server_errors_are_retried_until_the_message_arrives_once(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    world.bot_api.fail_next("sendMessage", 3, status=500, description="Internal Server Error")
    await _notify(world, alice.id, "first", "second")
    assert await _received(world.bot_api, 1001, 2) == ["first", "second"]
    await world.bot_api.no_message(1001, within=0.3)
    async with world.store.reading() as s:
        first = (await s.execute(select(OutboxMessage).order_by(OutboxMessage.id))).scalars().first()
    assert first is not None and (first.status, first.attempts) == ("sent", 4)


async def test_a_server_that_is_down_for_a_while_loses_nothing(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await world.bot_api.stop()
    await _notify(world, alice.id, *[f"message {i}" for i in range(5)])
    await _tried_in_vain(world)
    assert await _statuses(world) == {"pending": 5}
    await world.bot_api.start()
    assert await _received(world.bot_api, 1001, 5) == [f"message {i}" for i in range(5)]
    await world.bot_api.no_message(1001, within=0.3)


async def test_a_blocked_bot_is_recorded_and_does_not_hold_up_others(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    world.bot_api.fail_chat(1001, status=403, description="Forbidden: bot was blocked by the user")
    await _notify(world, alice.id, "to alice")
    await _notify(world, bob.id, "to bob")
    assert await _received(world.bot_api, 2002, 1) == ["to bob"]
    for _ in range(50):
        if (await _statuses(world)).get("failed"):
            break
        await asyncio.sleep(0.05)
    async with world.store.reading() as s:
        failed = (
            (await s.execute(select(OutboxMessage).where(OutboxMessage.status == "failed"))).scalars().all()
        )
    assert [m.payload["text"] for m in failed] == ["to alice"]
    assert "blocked by the user" in (failed[0].last_error or "")
    assert failed[0].attempts == 1


async def test_an_unbound_agent_is_recorded_as_undeliverable(world: BotWorld) -> None:
    async with world.store.session() as s:
        carol = await world.crm.agents.add(s, "Carol", phone="+14155550003")
    await _notify(world, carol.id, "hello")
    for _ in range(50):
        if (await _statuses(world)).get("failed"):
            break
        await asyncio.sleep(0.05)
    async with world.store.reading() as s:
        row = (await s.execute(select(OutboxMessage))).scalar_one()
    assert row.status == "failed" and "has not bound a Telegram chat" in (row.last_error or "")


async def test_a_gateway_restart_in_between_delivers_each_message_once_in_order(
    world: BotWorld, aiohttp_server: AiohttpServer, bot_settings: Settings
) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await world.bot_api.stop()
    await _notify(world, alice.id, *[f"queued {i}" for i in range(4)])
    await _tried_in_vain(world)
    await world.server.close()  # the gateway stops while Telegram is unreachable
    await _notify(world, alice.id, "written while stopped")
    await world.bot_api.start()
    port = free_port()
    restarted: TestServer = await aiohttp_server(
        create_app(
            bot_settings.model_copy(update={"port": port, "public_url": f"http://127.0.0.1:{port}"}),
            clock=world.clock,
        ),
        port=port,
    )
    restarted.app[TELEGRAM].sender.limits.chat_interval = 0.05
    restarted.app[TELEGRAM].sender.first_retry = 0.05
    assert await _received(world.bot_api, 1001, 5) == [
        *(f"queued {i}" for i in range(4)),
        "written while stopped",
    ]
    await world.bot_api.no_message(1001, within=0.5)


async def test_sending_keeps_telegrams_limits(
    aiohttp_server: AiohttpServer, bot_settings: Settings, db_url: str
) -> None:
    """40 agents and a burst for one of them, against a server that answers 429 to any excess."""
    async with BotApiServer(token=bot_settings.telegram_bot_token or "", enforce_limits=True) as strict:
        settings = bot_settings.model_copy(update={"telegram_api_url": strict.url})
        server = await aiohttp_server(create_app(settings), port=settings.port)
        app = server.app
        from gateway.keys import CRM, STORE

        store, crm = app[STORE], app[CRM]
        agents = []
        async with store.session() as s:
            for i in range(40):
                agent = await crm.agents.add(s, f"Agent {i}", phone=f"+1415555{1000 + i}")
                await crm.agents.bind_chat(s, agent.invite_code or "", chat_id=5000 + i, user_id=5000 + i)
                agents.append(agent)
        async with store.session() as s:
            for i, agent in enumerate(agents):
                count = 3 if i == 0 else 1
                for n in range(count):
                    await outbox.enqueue(
                        s,
                        notices.CHANNEL,
                        "text",
                        {"agent_id": agent.id, "text": f"{i}/{n}"},
                        queue=f"agent:{agent.id}",
                        clock=crm.clock,
                    )
        for i in range(40):
            for n in range(3 if i == 0 else 1):
                assert (await strict.next_message(5000 + i, timeout=15)).text == f"{i}/{n}"
        sends = [c for c in strict.history if c.method == "sendMessage"]
        assert [c for c in sends if c.status == 429] == []
        assert _busiest_second(sorted(c.at for c in sends)) <= 30  # never more than 30 in a second
        times = strict.send_times(5000)
        assert all(b - a >= 0.95 for a, b in itertools.pairwise(times))


async def _burst(
    strict: BotApiServer, settings: Settings, aiohttp_server: AiohttpServer, agents: int
) -> None:
    """One message to each of `agents` agents, all enqueued at once; waits until all arrived."""
    server = await aiohttp_server(create_app(settings), port=settings.port)
    from gateway.keys import CRM, STORE

    store, crm = server.app[STORE], server.app[CRM]
    async with store.session() as s:
        ids = []
        for i in range(agents):
            agent = await crm.agents.add(s, f"Agent {i}", phone=f"+1415555{1000 + i}")
            await crm.agents.bind_chat(s, agent.invite_code or "", chat_id=5000 + i, user_id=5000 + i)
            ids.append(agent.id)
    async with store.session() as s:
        for i, agent_id in enumerate(ids):
            payload = {"agent_id": agent_id, "text": f"card {i}"}
            await outbox.enqueue(
                s, notices.CHANNEL, "text", payload, queue=f"agent:{agent_id}", clock=crm.clock
            )
    for i in range(agents):
        assert (await strict.next_message(5000 + i, timeout=15)).text == f"card {i}"


async def test_with_paid_broadcasts_only_the_overflow_past_30_a_second_is_paid(
    aiohttp_server: AiohttpServer, bot_settings: Settings
) -> None:
    """CRM_TELEGRAM_PAID_BROADCAST: 90 cards at once go out without waiting for the free 30 a
    second; the server (which refuses any excess) refuses none, and no more than 30 are free in
    any second."""
    async with BotApiServer(token=bot_settings.telegram_bot_token or "", enforce_limits=True) as strict:
        settings = bot_settings.model_copy(
            update={"telegram_api_url": strict.url, "telegram_paid_broadcast": True}
        )
        await _burst(strict, settings, aiohttp_server, agents=90)
    sent = [m for chat in range(5000, 5090) for m in strict.messages(chat)]
    refused = [c for c in strict.history if c.method == "sendMessage" and c.status == 429]
    assert refused == [] and len(sent) == 90
    paid = [m for m in sent if m.paid]
    assert 0 < len(paid) <= 60  # the first 30 are free; later ones only when the free 30 are used up
    assert len(sent) - len(paid) >= 30


async def test_without_paid_broadcasts_nothing_is_paid_for(
    aiohttp_server: AiohttpServer, bot_settings: Settings
) -> None:
    async with BotApiServer(token=bot_settings.telegram_bot_token or "", enforce_limits=True) as strict:
        settings = bot_settings.model_copy(update={"telegram_api_url": strict.url})
        await _burst(strict, settings, aiohttp_server, agents=40)
    sent = [m for chat in range(5000, 5040) for m in strict.messages(chat)]
    assert len(sent) == 40 and not any(m.paid for m in sent)
