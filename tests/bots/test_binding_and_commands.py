"""Agents bind their chat with an invite, go on and off duty, find clients and list tasks."""

from __future__ import annotations

from datetime import timedelta

from crm.domain.models import Task
from crm.services import notices
from crm.services.clients import ClientDraft
from gateway.keys import CRM, STORE
from gateway.settings import Settings
from tests.bots.conftest import SECRET, AiohttpServer, BotWorld, polling_gateway
from tests.fakes.bot_api import BotApiServer


async def test_an_agent_binds_their_chat_with_the_invite_code(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    assert alice.chat_id == 1001
    again = await world.say(1001, "/start")
    assert "You are set up, Alice" in (again.text or "")


async def test_a_used_or_wrong_code_is_refused_helpfully(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    wrong = await world.say(2002, "/start not-a-code")
    assert "not valid" in (wrong.text or "") and "ask your admin" in (wrong.text or "")
    used = await world.say(2002, f"/start {alice.invite_code}")
    assert "used already" in (used.text or "")
    async with world.store.reading() as s:
        assert (await world.crm.agents.get(s, alice.id)).chat_id == 1001


async def test_an_unused_invite_expires_after_seven_days(world: BotWorld) -> None:
    async with world.store.session() as s:
        alice = await world.crm.agents.add(s, "Alice", phone="+14155550001")
        bob = await world.crm.agents.add(s, "Bob", phone="+14155550002")
        carol = await world.crm.agents.add(s, "Carol", phone="+14155550003")
    assert "Welcome, Carol" in ((await world.say(3003, f"/start {carol.invite_code}")).text or "")

    world.clock.advance(days=7, seconds=-1)
    assert "Welcome, Bob" in ((await world.say(2002, f"/start {bob.invite_code}")).text or "")
    world.clock.advance(seconds=2)
    late = (await world.say(1001, f"/start {alice.invite_code}")).text or ""

    assert "expired" in late and f"crm-gateway agent invite {alice.id}" in late
    async with world.store.reading() as s:
        assert (await world.crm.agents.get(s, alice.id)).chat_id is None
    # A code that was used binds its own chat again, however old: nothing changes hands.
    assert "Welcome, Carol" in ((await world.say(3003, f"/start {carol.invite_code}")).text or "")
    async with world.store.session() as s:
        fresh = (await world.crm.agents.new_invite(s, alice.id)).invite_code
    assert "Welcome, Alice" in ((await world.say(1001, f"/start {fresh}")).text or "")


async def test_a_new_invite_moves_an_agent_whose_chat_is_lost_to_a_new_one(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    old_code = alice.invite_code

    async with world.store.session() as s:
        invited = await world.crm.agents.new_invite(s, alice.id)
    new_code = invited.invite_code

    # The lost chat is cut off at once, and told so: whoever has it reads no more cards.
    told = await world.bot_api.next_message(1001)
    assert "no longer gets Alice's cards" in (told.text or "")
    assert "Write your question here" in ((await world.say(1001, "/tasks")).text or "")
    assert new_code != old_code
    refused = await world.say(2002, f"/start {old_code}")
    assert "not valid" in (refused.text or "")
    assert "Welcome, Alice" in ((await world.say(2002, f"/start {new_code}")).text or "")
    async with world.store.session() as s:
        await notices.tell(s, alice.id, "Call Ada back", clock=world.clock)
    assert "Call Ada back" in ((await world.bot_api.next_message(2002)).text or "")
    await world.bot_api.no_message(1001, within=0.3)


async def test_strangers_are_clients_and_agents_commands_do_nothing_for_them(world: BotWorld) -> None:
    answer = await world.say(3003, "/start")
    assert "Write your question here" in (answer.text or "")
    answer = await world.say(3003, "/tasks")
    assert "Write your question here" in (answer.text or "")


async def test_duty_on_and_off(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    assert "off duty" in ((await world.say(1001, "/duty off")).text or "")
    async with world.store.reading() as s:
        assert not (await world.crm.agents.get(s, alice.id)).on_duty
    assert "You are off duty" in ((await world.say(1001, "/duty")).text or "")
    assert "on duty" in ((await world.say(1001, "/duty on")).text or "")
    async with world.store.reading() as s:
        assert (await world.crm.agents.get(s, alice.id)).on_duty


async def test_find_shows_cards_with_escaped_text(world: BotWorld) -> None:
    await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    async with world.store.session() as s:
        await world.crm.clients.create(
            s,
            ClientDraft(
                name="Ada <b>Lovelace</b> & Co",
                phones=["(415) 555-0100"],
                emails=["ada@example.com"],
                tags=["vip"],
                company="Engines <Ltd>",
            ),
        )
    card = await world.say(1001, "/find lovelace")
    assert "Ada <b>Lovelace</b> & Co" in (card.plain_text or "")
    assert "+1 415-555-0100" in (card.plain_text or "")
    assert "Engines <Ltd>" in (card.plain_text or "")
    by_phone = await world.say(1001, "/find 415 555 0100")
    assert "Lovelace" in (by_phone.plain_text or "")
    none = await world.say(1001, "/find nobody-like-this")
    assert "No client matches" in (none.plain_text or "")
    hint = await world.say(1001, "/find")
    assert "/find Ada" in (hint.plain_text or "")


async def test_tasks_list_and_done_button(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    now = world.clock.now()
    async with world.store.session() as s:
        ada = (await world.crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada")).client_id
        s.add_all(
            [
                Task(
                    client_id=ada,
                    agent_id=alice.id,
                    title="Send the offer",
                    due_at=now + timedelta(days=2),
                    created_at=now,
                    reminded_for=now + timedelta(days=2),
                ),
                Task(
                    client_id=ada,
                    agent_id=alice.id,
                    title="Call back",
                    due_at=now + timedelta(hours=1),
                    created_at=now,
                    reminded_for=now + timedelta(hours=1),
                ),
            ]
        )
    listing = await world.say(1001, "/tasks")
    text = listing.plain_text or ""
    assert text.index("Call back") < text.index("Send the offer")
    await world.press(1001, listing, "✔️ Done: Call back")
    edited = world.bot_api.message(1001, listing.message_id)
    assert [b["text"] for b in edited.buttons] == ["✔️ Done: Send the offer"]
    async with world.store.reading() as s:
        open_tasks = (await world.crm.tasks.search(s, agent_id=alice.id, open_only=True)).items
    assert [t.title for t in open_tasks] == ["Send the offer"]
    assert "No open tasks" not in ((await world.say(1001, "/tasks")).plain_text or "")


async def test_the_command_menu_is_set_on_start(world: BotWorld) -> None:
    commands = world.bot_api.my_commands()
    assert commands is not None
    assert {c["command"] for c in commands} == {"find", "tasks", "clients", "duty", "help"}


async def test_updates_without_the_secret_are_refused_and_have_no_effect(world: BotWorld) -> None:
    alice_code = None
    async with world.store.session() as s:
        alice = await world.crm.agents.add(s, "Alice", phone="+14155550001")
        alice_code = alice.invite_code
    update = world.bot_api.user_message(chat_id=1001, text=f"/start {alice_code}", user_id=1001)
    assert await world.bot_api.post_to_webhook(update, secret=None) == 401
    assert await world.bot_api.post_to_webhook(update, secret="guess") == 401
    await world.bot_api.no_message(1001, within=0.3)
    async with world.store.reading() as s:
        assert (await world.crm.agents.get(s, alice.id)).chat_id is None
    assert world.bot_api.webhook is not None
    assert world.bot_api.webhook["secret_token"] == SECRET


async def test_polling_mode_works_without_a_public_url(
    aiohttp_server: AiohttpServer, bot_settings: Settings, bot_api: BotApiServer
) -> None:
    server = await polling_gateway(aiohttp_server, bot_settings, bot_api)
    async with server.app[STORE].session() as s:
        alice = await server.app[CRM].agents.add(s, "Alice", phone="+14155550001")
    bot_api.push_update(bot_api.user_message(chat_id=1001, text=f"/start {alice.invite_code}", user_id=1001))
    welcome = await bot_api.next_message(1001, timeout=10)
    assert "Welcome, Alice" in (welcome.text or "")
    assert bot_api.webhook is None  # polling mode sets no webhook
