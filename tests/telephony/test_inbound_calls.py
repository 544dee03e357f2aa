"""A call comes in: the caller is found (or made), the right agents ring, the one who answers
gets the card, the others are told, and the call log says what happened."""

from __future__ import annotations

from sqlalchemy import func, select

from crm.domain.models import Call, Client, Task
from tests.telephony.conftest import Phones


async def test_a_known_caller_rings_their_owner_who_gets_the_card(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.agent("Bob", "+14155550002", chat_id=1002)
    ada = await phones.client("Ada Lovelace", "(415) 555-0100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    assert [t.value for t in call.dial_targets()] == ["+14155550001"]
    await call.answer(by="+14155550001", talk_seconds=95)
    card = await phones.card(1001)
    assert "Ada Lovelace" in (card.plain_text or "")
    assert "Call from +1 415-555-0100" in (card.plain_text or "")
    assert "🏆 Won" in [b["text"] for b in card.buttons]
    row = await phones.call_row(call.sid)
    assert (row.status, row.agent_id, row.client_id, row.duration_s) == ("completed", alice.id, ada, 95)
    assert row.recording_url is not None and row.answered_at is not None and row.ended_at is not None
    await phones.bot_api.no_message(1002, within=0.3)


async def test_two_agents_ring_and_the_one_who_answers_takes_it(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002, sip_uri="sip:bob@pbx.example.com")
    call = await phones.twilio.inbound(from_="+14155550177")
    assert {(t.kind, t.value) for t in call.dial_targets()} == {
        ("number", "+14155550001"),
        ("sip", "sip:bob@pbx.example.com"),
    }
    await call.answer(by="sip:bob@pbx.example.com")
    card = await phones.card(1002)
    assert "Call from +1 415-555-0177" in (card.plain_text or "")
    notice = await phones.card(1001)
    assert notice.text == "Bob took the call from +1 415-555-0177."
    row = await phones.call_row(call.sid)
    assert (row.status, row.agent_id) == ("completed", bob.id)
    async with phones.store.reading() as s:
        client = await s.get(Client, row.client_id)
    assert client is not None and client.owner_id == bob.id  # a new caller sticks to whoever answered
    assert alice.id != client.owner_id


async def test_a_new_caller_becomes_a_client_once(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    first = await phones.twilio.inbound(from_="+14155550123")
    await first.answer(by="+14155550001")
    second = await phones.twilio.inbound(from_="+1 (415) 555-0123")
    await second.answer(by="+14155550001")
    async with phones.store.reading() as s:
        assert (await s.execute(select(func.count()).select_from(Client))).scalar_one() == 1
    rows = [await phones.call_row(first.sid), await phones.call_row(second.sid)]
    assert rows[0].client_id == rows[1].client_id


async def test_no_answer_offers_voicemail_and_the_owner_gets_a_task_and_the_audio(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.no_answer()
    assert any("leave a message" in said for said in call.heard)
    await call.leave_voicemail(seconds=14)
    notice = await phones.card(1001)
    assert "Missed call from Ada Lovelace" in (notice.plain_text or "")
    audio = await phones.card(1001)
    assert audio.method == "sendAudio"
    assert audio.file is not None and audio.file.size > 0
    assert "Voicemail from Ada Lovelace" in (audio.caption or "")
    assert phones.rest.recording_fetches  # fetched from Twilio with the account's credentials
    row = await phones.call_row(call.sid)
    assert (row.status, row.agent_id, row.has_voicemail) == ("missed", None, True)
    async with phones.store.reading() as s:
        tasks = (await s.execute(select(Task).where(Task.call_id == row.id))).scalars().all()
    assert [(t.client_id, t.agent_id, t.done) for t in tasks] == [(ada, alice.id, False)]


async def test_nobody_on_duty_goes_straight_to_voicemail_and_an_admin_follows_up(phones: Phones) -> None:
    admin = await phones.agent("Boss", "+14155550009", chat_id=1009, role="admin")
    async with phones.store.session() as s:
        await phones.crm.agents.set_duty(s, admin.id, False)
    await phones.agent("Off", "+14155550008", chat_id=1008)
    async with phones.store.session() as s:
        await phones.crm.agents.set_duty(s, (await phones.crm.agents.active(s))[1].id, False)
    call = await phones.twilio.inbound(from_="+14155550142")
    # no one on duty: the admin is rung
    assert [t.value for t in call.dial_targets()] == ["+14155550009"]
    await call.no_answer()
    await call.leave_voicemail()
    assert "Missed call" in ((await phones.card(1009)).plain_text or "")
    assert (await phones.card(1009)).method == "sendAudio"


async def test_busy_and_failed_calls_are_logged_as_such(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    busy = await phones.twilio.inbound(from_="+14155550101")
    await busy.busy()
    failed = await phones.twilio.inbound(from_="+14155550102")
    await failed.fail()
    assert (await phones.call_row(busy.sid)).status == "busy"
    assert (await phones.call_row(failed.sid)).status == "failed"


async def test_a_withheld_number_still_rings_and_is_logged_without_a_client(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    call = await phones.twilio.inbound(from_="+266696687")
    await call.answer(by="+14155550001")
    row = await phones.call_row(call.sid)
    assert (row.status, row.client_id) == ("completed", None)
    async with phones.store.reading() as s:
        assert (await s.execute(select(func.count()).select_from(Client))).scalar_one() == 0


async def test_a_malformed_or_empty_caller_number_is_handled(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    for weird in ["12", "", "not-a-number"]:
        call = await phones.twilio.inbound(from_=weird)
        assert call.dial_targets()
        row = await phones.call_row(call.sid)
        assert row.client_id is None and row.status == "ringing"


async def test_the_caller_hanging_up_while_ringing_is_a_missed_call(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.client("Ada", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.caller_hangs_up()
    row = await phones.call_row(call.sid)
    assert (row.status, row.agent_id) == ("missed", None)
    assert "Missed call from Ada" in ((await phones.card(1001)).plain_text or "")


async def test_a_call_whose_callbacks_never_come_is_swept_to_missed(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.client("Ada", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    assert await phones.sweep() == []
    phones.clock.advance(seconds=121)
    row = await phones.call_row(call.sid)
    assert await phones.sweep() == [row.id]
    assert (await phones.call_row(call.sid)).status == "missed"
    assert "Missed call from Ada" in ((await phones.card(1001)).plain_text or "")
    assert await phones.sweep() == []


async def test_the_call_log_shows_in_the_api_and_on_the_card(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.answer(by="+14155550001", talk_seconds=130)
    async with phones.store.reading() as s:
        card = await phones.crm.cards.build(s, ada)
    assert card is not None
    assert card.recent_interactions[0].summary == "Inbound call with Alice, 2m 10s"
    async with phones.store.reading() as s:
        row = (await s.execute(select(Call))).scalar_one()
    assert row.provider == "twilio" and row.provider_call_id == call.sid


async def test_the_agent_picks_an_outcome_and_replies_a_note_on_the_calls_card(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.answer(by="+14155550001")
    card = await phones.card(1001)
    press = phones.bot_api.callback(
        chat_id=1001, message=card, data=card.button_data("👍 Interested"), user_id=1001
    )
    from tests.bots.conftest import SECRET

    assert await phones.bot_api.post_to_webhook(press, secret=SECRET) == 200
    note = phones.bot_api.user_message(
        chat_id=1001, text="Wants a demo on Friday", user_id=1001, reply_to=card
    )
    assert await phones.bot_api.post_to_webhook(note, secret=SECRET) == 200
    await phones.bot_api.next_message(1001)  # "Note saved"
    row = await phones.call_row(call.sid)
    assert (row.outcome, row.notes) == ("interested", "Wants a demo on Friday")


async def test_with_no_agents_at_all_the_caller_goes_straight_to_voicemail(phones: Phones) -> None:
    call = await phones.twilio.inbound(from_="+14155550100")
    assert call.state == "record"
    assert any("leave a message" in said for said in call.heard)
    await call.leave_voicemail()
    row = await phones.call_row(call.sid)
    assert (row.status, row.has_voicemail, row.agent_id) == ("missed", True, None)
