"""What a stranger in Telegram cannot do: take over a client with a contact card that is not their
own, have an update applied twice by replaying it, or work on a call another agent answered."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from crm.domain.models import Call, Client, ClientIdentity, ClientPhone, Interaction, Task
from gateway.keys import CRM, STORE
from gateway.settings import Settings
from tests.bots.conftest import SECRET, AiohttpServer, BotWorld, polling_gateway
from tests.bots.test_cards_and_outcomes import _answered_call
from tests.fakes.bot_api import BotApiServer


async def _count(world: BotWorld, what: Any) -> int:
    async with world.store.reading() as s:
        return int((await s.execute(select(func.count()).select_from(what))).scalar_one())


async def _known_caller(world: BotWorld) -> int:
    async with world.store.session() as s:
        match = await world.crm.clients.find_or_create_by_phone(s, "(415) 555-0100", name="Ada Lovelace")
        return int(match.client_id)


async def test_a_landlines_contact_card_does_not_take_over_the_client(world: BotWorld) -> None:
    """A contact card anyone can make has no `user_id`: it proves nothing about the sender."""
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    ada = await _known_caller(world)
    share = world.bot_api.user_message(
        chat_id=3003, text="", user_id=3003, contact={"phone_number": "+14155550100", "first_name": "Ada"}
    )
    assert await world.bot_api.post_to_webhook(share, secret=SECRET) == 200
    answer = await world.bot_api.next_message(3003)
    assert "not your own contact" in (answer.text or "")
    assert await _count(world, ClientIdentity) == 0  # the stranger is not joined to Ada
    async with world.store.reading() as s:
        phones = (await s.execute(select(ClientPhone.client_id))).scalars()
        assert list(phones) == [ada]


async def test_someone_elses_contact_changes_nothing(world: BotWorld) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await _known_caller(world)
    share = world.bot_api.user_message(
        chat_id=3003,
        text="",
        user_id=3003,
        contact={"phone_number": "+14155550100", "first_name": "Ada", "user_id": 4004},
    )
    assert await world.bot_api.post_to_webhook(share, secret=SECRET) == 200
    assert "not your own contact" in ((await world.bot_api.next_message(3003)).text or "")
    assert (await _count(world, ClientIdentity), await _count(world, Client)) == (0, 1)


async def test_a_replayed_webhook_update_is_answered_and_not_applied_again(world: BotWorld) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    update = world.bot_api.user_message(chat_id=3003, text="Hello there", user_id=3003)
    assert await world.bot_api.post_to_webhook(update, secret=SECRET) == 200
    await world.bot_api.next_message(1001)
    await world.bot_api.next_message(3003)
    assert await world.bot_api.post_to_webhook(update, secret=SECRET) == 200
    await world.bot_api.no_message(1001, within=0.5)
    await world.bot_api.no_message(3003, within=0.1)
    async with world.store.reading() as s:
        said = (await s.execute(select(Interaction.summary).where(Interaction.kind == "message"))).scalars()
        assert list(said) == ["Hello there"]


async def test_a_redelivered_update_is_not_applied_again_in_polling_mode(
    aiohttp_server: AiohttpServer, bot_settings: Settings, bot_api: BotApiServer
) -> None:
    server = await polling_gateway(aiohttp_server, bot_settings, bot_api)
    async with server.app[STORE].session() as s:
        await server.app[CRM].agents.add(s, "Alice", phone="+14155550001")
    update = bot_api.user_message(chat_id=3003, text="Hello there", user_id=3003)
    bot_api.push_update(update)
    await bot_api.next_message(3003, timeout=10)
    bot_api.push_update(dict(update))  # Telegram sends it again: the poller died before confirming
    await bot_api.no_message(3003, within=2.0)
    assert bot_api.pending_updates() == []  # taken (and confirmed), not applied
    async with server.app[STORE].reading() as s:
        said = (await s.execute(select(Interaction.summary).where(Interaction.kind == "message"))).scalars()
        assert list(said) == ["Hello there"]


async def test_another_agents_outcome_button_is_refused(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    await world.bound_agent("Carol", "+14155550003", chat_id=3003)
    _, call_id = await _answered_call(world, bob.id)
    card = await world.bot_api.next_message(2002)
    data = card.button_data("🏆 Won")

    hello = await world.say(3003, "/help")
    forged = world.bot_api.callback(
        chat_id=3003, message=hello, data=data, user_id=3003, require_button=False
    )
    assert await world.bot_api.post_to_webhook(forged, secret=SECRET) == 200
    answer = await world.bot_api.next_call("answerCallbackQuery")
    assert answer["show_alert"] is True
    assert answer["text"] == "this call is not yours: only Bob, who answered it, or an admin can change it"
    async with world.store.reading() as s:
        call = await s.get(Call, call_id)
        assert call is not None and call.outcome is None
    assert await _count(world, Interaction) == 0

    admin = await world.bound_agent("Root", "+14155550009", chat_id=9009, role="admin")
    assert admin.role == "admin"
    hello = await world.say(9009, "/help")
    by_admin = world.bot_api.callback(
        chat_id=9009, message=hello, data=data, user_id=9009, require_button=False
    )
    assert await world.bot_api.post_to_webhook(by_admin, secret=SECRET) == 200
    assert (await world.bot_api.next_call("answerCallbackQuery"))["text"] == "Saved: Won"


async def test_a_note_on_another_agents_call_is_refused(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    carol = await world.bound_agent("Carol", "+14155550003", chat_id=3003)
    ada, call_id = await _answered_call(world, bob.id)
    await world.bot_api.next_message(2002)
    # Carol holds a card about Bob's call (say, Bob's work was handed to her and back): her reply
    # to it must not write on the call.
    hello = await world.say(3003, "/help")
    async with world.store.session() as s:
        from crm.services import notices

        await world.crm.sent_messages.remember(
            s,
            notices.CHANNEL,
            "3003",
            str(hello.message_id),
            "card",
            client_id=ada,
            call_id=call_id,
            agent_id=carol.id,
        )
    answer = await world.say(3003, "He asked for a discount", reply_to=hello)
    assert (
        answer.text
        == "Not saved: this call is not yours: only Bob, who answered it, or an admin can change it."
    )
    async with world.store.reading() as s:
        call = await s.get(Call, call_id)
        assert call is not None and call.notes is None
    assert await _count(world, Interaction) == 0


async def test_a_missed_call_is_worked_by_the_agent_following_it_up(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    await world.bound_agent("Carol", "+14155550003", chat_id=3003)
    ada, call_id = await _answered_call(world, bob.id)
    async with world.store.session() as s:
        call = await s.get(Call, call_id)
        assert call is not None
        call.agent_id, call.status = None, "missed"
        s.add(
            Task(
                client_id=ada,
                agent_id=bob.id,
                title="Call back",
                due_at=world.clock.now(),
                call_id=call_id,
                created_at=world.clock.now(),
            )
        )
    card = await world.bot_api.next_message(2002)
    await world.press(2002, card, "👍 Interested")
    assert (await world.bot_api.next_call("answerCallbackQuery"))["text"] == "Saved: Interested"


async def test_handover_ids_are_read_safely(world: BotWorld) -> None:
    await world.bound_agent("Root", "+14155550009", chat_id=9009, role="admin")
    for args in ("²3 4", "1 99999999999999999999999999", "1", "1 2 3", "-1 2", "1 0"):
        answer = await world.say(9009, f"/handover {args}")
        assert "Send /handover FROM_ID TO_ID" in (answer.plain_text or ""), args


async def test_a_forged_button_with_an_impossible_id_changes_nothing(world: BotWorld) -> None:
    await world.bound_agent("Root", "+14155550009", chat_id=9009, role="admin")
    hello = await world.say(9009, "/help")
    for data in ("oc:99999999999999999999999999:won", "ho:1:99999999999999999999999999:1", "td:0", "cb:-5"):
        forged = world.bot_api.callback(
            chat_id=9009, message=hello, data=data, user_id=9009, require_button=False
        )
        assert await world.bot_api.post_to_webhook(forged, secret=SECRET) == 200, data
    assert await _count(world, Interaction) == 0
