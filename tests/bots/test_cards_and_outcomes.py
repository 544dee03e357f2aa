"""The card pops into the agent's chat; outcome buttons and replies write the call's story."""

from __future__ import annotations

from datetime import timedelta

from crm.delivery import outbox
from crm.domain.models import Call
from crm.services import notices, timeline
from tests.bots.conftest import BotWorld


async def _answered_call(world: BotWorld, agent_id: int) -> tuple[int, int]:
    """A call from Ada that `agent_id` answered, and the card the call flow enqueues for them."""
    now = world.clock.now()
    async with world.store.session() as s:
        ada = (
            await world.crm.clients.find_or_create_by_phone(s, "(415) 555-0100", name="Ada Lovelace")
        ).client_id
        call = Call(
            provider="twilio",
            provider_call_id="CA1",
            direction="inbound",
            from_number="+14155550100",
            to_number="+14155550000",
            client_id=ada,
            agent_id=agent_id,
            status="in_progress",
            started_at=now,
            answered_at=now,
        )
        s.add(call)
        await s.flush()
        await outbox.enqueue(
            s,
            notices.CHANNEL,
            "card",
            {"agent_id": agent_id, "client_id": ada, "call_id": call.id},
            queue=f"agent:{agent_id}",
            clock=world.clock,
        )
    return ada, call.id


async def test_the_answering_agent_gets_the_card_and_picks_an_outcome(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    ada, call_id = await _answered_call(world, bob.id)
    card = await world.bot_api.next_message(2002)
    assert "Call from +1 415-555-0100" in (card.plain_text or "")
    assert "Ada Lovelace" in (card.plain_text or "")
    assert "+1 415-555-0100" in (card.plain_text or "")
    labels = [b["text"] for b in card.buttons]
    assert labels == ["👍 Interested", "🔁 Callback", "👎 Not interested", "🏆 Won", "❌ Wrong number"]

    await world.press(2002, card, "🏆 Won")
    await world.bot_api.next_call("editMessageText")
    edited = world.bot_api.message(2002, card.message_id)
    assert "Outcome: Won" in (edited.plain_text or "")
    assert "✅ Won" in [b["text"] for b in edited.buttons]
    async with world.store.reading() as s:
        call = await s.get(Call, call_id)
        assert call is not None and call.outcome == "won"
        after = await world.crm.cards.build(s, ada)
    assert after is not None
    assert after.open_deals == []  # the deal the win opened is closed as Won
    assert after.recent_interactions[0].summary == "Call outcome: Won"


async def test_interested_qualifies_the_open_deal_and_callback_makes_a_task(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    ada, _ = await _answered_call(world, bob.id)
    async with world.store.session() as s:
        await world.crm.deals.open(s, ada, "Engines")
    card = await world.bot_api.next_message(2002)
    await world.press(2002, card, "👍 Interested")
    await world.bot_api.next_call("editMessageText")
    edited = world.bot_api.message(2002, card.message_id)
    assert "Engines — Qualified" in (edited.plain_text or "")
    await world.press(2002, edited, "🔁 Callback")
    await world.bot_api.next_call("editMessageText")
    again = world.bot_api.message(2002, card.message_id)
    assert "Call back — due" in (again.plain_text or "")


async def test_a_reply_to_the_card_is_a_note_on_the_client_and_the_call(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    ada, call_id = await _answered_call(world, bob.id)
    card = await world.bot_api.next_message(2002)
    ack = await world.say(2002, "Wants a quote for <3> engines & a manual", reply_to=card)
    assert "Note saved on Ada Lovelace" in (ack.plain_text or "")
    async with world.store.reading() as s:
        call = await s.get(Call, call_id)
        assert call is not None and call.notes == "Wants a quote for <3> engines & a manual"
        after = await world.crm.cards.build(s, ada)
    assert after is not None
    note = after.recent_interactions[0]
    assert (note.kind, note.agent.name if note.agent else None) == ("note", "Bob")
    assert after.recent_interactions[0].summary == "Wants a quote for <3> engines & a manual"


async def test_a_reply_to_something_else_says_what_to_do(world: BotWorld) -> None:
    await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    help_message = await world.say(2002, "/help")
    answer = await world.say(2002, "a note?", reply_to=help_message)
    assert "Reply to a client card" in (answer.plain_text or "")


async def test_a_long_history_is_cut_to_fit_telegram(world: BotWorld) -> None:
    bob = await world.bound_agent("Bob", "+14155550002", chat_id=2002)
    now = world.clock.now()
    async with world.store.session() as s:
        ada = (
            await world.crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada " + "x" * 500)
        ).client_id
        for i in range(30):
            await timeline.record(
                s, ada, "note", ("very long note " * 40) + str(i), at=now - timedelta(minutes=i)
            )
        for i in range(40):
            await world.crm.deals.open(s, ada, f"Deal {i} " + "y" * 200)
        await outbox.enqueue(
            s,
            notices.CHANNEL,
            "card",
            {"agent_id": bob.id, "client_id": ada},
            queue=f"agent:{bob.id}",
            clock=world.clock,
        )
    card = await world.bot_api.next_message(2002)
    assert len(card.plain_text or "") <= 4096
    assert "Ada xxx" in (card.plain_text or "")
