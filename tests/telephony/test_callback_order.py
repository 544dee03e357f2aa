"""Twilio may repeat, reorder or delay the callbacks our TwiML asks for: the outcome is the same,
with no second card, task or notice, and no status moving back."""

from __future__ import annotations

from sqlalchemy import func, select

from crm.domain.models import Interaction, OutboxMessage, Task
from tests.telephony.conftest import Phones


async def _outbox_kinds(phones: Phones) -> list[str]:
    async with phones.store.reading() as s:
        return list((await s.execute(select(OutboxMessage.kind).order_by(OutboxMessage.id))).scalars())


async def test_every_callback_twice_in_reverse_order_makes_one_answered_call(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    call = await phones.twilio.inbound(from_="+14155550100")
    phones.twilio.hold_callbacks()
    await call.answer(by="+14155550002", talk_seconds=61)
    statuses = await phones.twilio.release("reversed", twice=True)
    assert set(statuses) == {200}
    row = await phones.call_row(call.sid)
    assert (row.status, row.agent_id, row.duration_s) == ("completed", bob.id, 61)
    assert row.recording_url is not None
    card = await phones.card(1002)
    assert "Call from" in (card.plain_text or "")
    assert (await phones.card(1001)).text == "Bob took the call from +1 415-555-0100."
    await phones.bot_api.no_message(1002, within=0.4)
    await phones.bot_api.no_message(1001, within=0.1)
    assert await _outbox_kinds(phones) == ["card", "text"]
    async with phones.store.reading() as s:
        calls_on_timeline = (
            await s.execute(select(func.count()).select_from(Interaction).where(Interaction.kind == "call"))
        ).scalar_one()
    assert calls_on_timeline == 1
    assert alice.id != row.agent_id


async def test_shuffled_callbacks_of_a_missed_call_make_one_task_and_one_voicemail(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.client("Ada", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    phones.twilio.hold_callbacks()
    await call.no_answer()
    await phones.twilio.release("shuffled", twice=True, seed=3)
    await call.leave_voicemail()
    await phones.twilio.replay_last()
    row = await phones.call_row(call.sid)
    assert (row.status, row.has_voicemail) == ("missed", True)
    async with phones.store.reading() as s:
        tasks = (await s.execute(select(func.count()).select_from(Task))).scalar_one()
    assert tasks == 1
    assert sorted(await _outbox_kinds(phones)) == ["card", "voicemail"]


async def test_a_late_status_never_moves_a_finished_call_back(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.answer(by="+14155550001")
    done = await phones.call_row(call.sid)
    assert done.status == "completed"
    # A stale "ringing" leg callback and a replayed voice request arrive after the end.
    status, _ = await phones.twilio.post_signed(
        f"/webhooks/twilio/leg?call={done.id}&agent={done.agent_id}",
        {
            "CallSid": "CA" + "f" * 32,
            "ParentCallSid": call.sid,
            "CallStatus": "ringing",
            "AccountSid": phones.twilio.account_sid,
        },
    )
    assert status == 200
    again, twiml = await phones.twilio.post_signed(
        "/webhooks/twilio/voice", phones.twilio.inbound_params(from_="+14155550100", call_sid=call.sid)
    )
    assert again == 200 and "<Dial" in twiml
    after = await phones.call_row(call.sid)
    assert (after.status, after.agent_id, after.duration_s) == ("completed", done.agent_id, done.duration_s)


async def test_the_end_of_the_call_before_its_dial_result_still_ends_missed(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.client("Ada", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    phones.twilio.hold_callbacks()
    await call.caller_hangs_up()
    held = phones.twilio.held
    ends = [r for r in held if r.purpose == "status"]
    others = [r for r in held if r.purpose != "status"]
    phones.twilio.held = ends + others  # the call's end arrives first
    await phones.twilio.release("in_order")
    row = await phones.call_row(call.sid)
    assert row.status == "missed"
    assert "Missed call" in ((await phones.card(1001)).plain_text or "")
