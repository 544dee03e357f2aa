"""Clients write to the bot: the message reaches their agent, the agent's reply reaches them, and
a shared phone joins the Telegram writer to the client who already has that number."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from crm.domain.models import Client, ClientIdentity, Interaction
from crm.services.conversations import RELAY_PER_MINUTE
from tests.bots.conftest import SECRET, BotWorld


async def _write(world: BotWorld, chat_id: int, text: str, first_name: str = "Ada") -> None:
    update = world.bot_api.user_message(chat_id=chat_id, text=text, user_id=chat_id, first_name=first_name)
    assert await world.bot_api.post_to_webhook(update, secret=SECRET) == 200


async def _written_by(world: BotWorld, account: str) -> list[str]:
    """What the client with this Telegram account wrote, as their timeline has it."""
    async with world.store.reading() as s:
        rows = await s.execute(
            select(Interaction.summary)
            .join(ClientIdentity, ClientIdentity.client_id == Interaction.client_id)
            .where(ClientIdentity.external_id == account, Interaction.direction == "inbound")
            .order_by(Interaction.id)
        )
        return list(rows.scalars())


async def test_a_client_writes_an_agent_answers_and_the_thread_is_on_the_record(world: BotWorld) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await _write(world, 3003, "Hi, do you sell <analytical> engines?")
    thanks = await world.bot_api.next_message(3003)
    assert "reached our team" in (thanks.text or "")
    assert thanks.reply_markup is not None and "request_contact" in str(thanks.reply_markup)
    relayed = await world.bot_api.next_message(1001)
    assert "Ada" in (relayed.plain_text or "") and "<analytical> engines" in (relayed.plain_text or "")

    update = world.bot_api.user_message(
        chat_id=1001, text="We do! Shall I call you?", user_id=1001, reply_to=relayed
    )
    assert await world.bot_api.post_to_webhook(update, secret=SECRET) == 200
    assert "Sent to Ada" in ((await world.bot_api.next_message(1001)).text or "")
    answer = await world.bot_api.next_message(3003)
    assert answer.text == "We do! Shall I call you?"

    await _write(world, 3003, "Yes please")
    second = await world.bot_api.next_message(1001)
    assert "Yes please" in (second.plain_text or "")
    await world.bot_api.no_message(3003, within=0.3)  # no second "thank you"

    async with world.store.reading() as s:
        client_id = (await s.execute(select(ClientIdentity.client_id))).scalar_one()
        card = await world.crm.cards.build(s, client_id, recent=10)
    assert card is not None
    assert [(i.kind, i.summary) for i in reversed(card.recent_interactions)] == [
        ("message", "Hi, do you sell <analytical> engines?"),
        ("message", "We do! Shall I call you?"),
        ("message", "Yes please"),
    ]
    assert card.owner is not None and card.owner.name == "Alice"


async def test_a_shared_phone_merges_the_writer_into_the_known_caller(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    async with world.store.session() as s:
        ada = (
            await world.crm.clients.find_or_create_by_phone(s, "(415) 555-0100", name="Ada Lovelace")
        ).client_id
        await world.crm.clients.set_owner_if_none(s, ada, alice.id)
    await _write(world, 3003, "Hello, it's me again")
    await world.bot_api.next_message(3003)
    await world.bot_api.next_message(1001)
    share = world.bot_api.user_message(
        chat_id=3003,
        text="",
        user_id=3003,
        contact={"phone_number": "14155550100", "first_name": "Ada", "user_id": 3003},
    )
    assert await world.bot_api.post_to_webhook(share, secret=SECRET) == 200
    assert "know who you are" in ((await world.bot_api.next_message(3003)).text or "")
    async with world.store.reading() as s:
        clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
        owner_of_identity = (await s.execute(select(ClientIdentity.client_id))).scalar_one()
        card = await world.crm.cards.build(s, ada, recent=10)
    assert clients == 1 and owner_of_identity == ada
    assert card is not None and any(i.summary == "Hello, it's me again" for i in card.recent_interactions)
    await _write(world, 3003, "Any news?")
    relayed = await world.bot_api.next_message(1001)
    assert "Ada Lovelace" in (relayed.plain_text or "")


async def test_a_stranger_starting_the_bot_is_greeted_as_a_client(world: BotWorld) -> None:
    hello = await world.say(3003, "/start")
    assert "Write your question here" in (hello.text or "")


async def test_a_client_who_floods_the_bot_is_kept_on_record_without_flooding_their_agent(
    world: BotWorld,
) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    for n in range(100):  # in 50 seconds
        await _write(world, 3003, f"message {n}")
        world.clock.advance(seconds=0.5)
    await _write(world, 4004, "Hello from Grace", first_name="Grace")
    arrived = [await world.bot_api.next_message(1001)]
    async with asyncio.timeout(5):  # Grace's message is not held up by Ada's
        while "Grace" not in (arrived[-1].plain_text or ""):
            arrived.append(await world.bot_api.next_message(1001))
    await world.bot_api.no_message(1001, within=0.5)
    from_ada = [m.plain_text or "" for m in arrived if "Ada" in (m.plain_text or "")]
    assert len(from_ada) == RELAY_PER_MINUTE + 1
    assert [t.split("\n")[1] for t in from_ada[:-1]] == [f"message {n}" for n in range(RELAY_PER_MINUTE)]
    assert f"Ada is writing more than {RELAY_PER_MINUTE} messages a minute" in from_ada[-1]
    assert await _written_by(world, "3003") == [f"message {n}" for n in range(100)]

    world.clock.advance(minutes=1)  # a minute later Ada's messages come through again
    await _write(world, 3003, "Sorry, my cat sat on the keyboard")
    assert "my cat sat on the keyboard" in ((await world.bot_api.next_message(1001)).plain_text or "")


async def test_a_reply_to_the_flood_note_answers_the_client(world: BotWorld) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    for n in range(RELAY_PER_MINUTE + 1):
        await _write(world, 3003, f"message {n}")
    for _ in range(RELAY_PER_MINUTE):
        await world.bot_api.next_message(1001)
    note = await world.bot_api.next_message(1001)
    update = world.bot_api.user_message(chat_id=1001, text="Slow down please", user_id=1001, reply_to=note)
    assert await world.bot_api.post_to_webhook(update, secret=SECRET) == 200
    assert "Sent to Ada" in ((await world.bot_api.next_message(1001)).text or "")
    await world.bot_api.next_message(3003)  # the thanks for the first message
    assert (await world.bot_api.next_message(3003)).text == "Slow down please"
