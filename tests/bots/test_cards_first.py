"""Cards first: a call's card reaches the agent at once, whatever else is on its way to them (a
voicemail whose recording Twilio has not made available yet, a client who writes a lot); what
must stay in order still does."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from bots.limits import SendLimits
from crm.domain.models import OutboxMessage
from gateway.keys import TELEGRAM
from tests.bots.conftest import SECRET
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, SimulatedCall, new_sid, silent_mp3
from tests.telephony import conftest as telephony
from tests.telephony.conftest import Phones

# The gateway with Twilio and Telegram, as the telephony tests have it.
call_settings, phones, twilio_rest = telephony.call_settings, telephony.phones, telephony.twilio_rest

ALICE_CHAT = 1001


async def recording_ready(phones: Phones, call: SimulatedCall, url: str) -> None:
    """Twilio calls the recordingStatusCallback the voicemail TwiML asked for: the caller's
    message is at `url`."""
    verb = call.current_verb()
    assert verb is not None and verb.tag == "Record", "the caller is not at the voicemail prompt"
    params = {
        "AccountSid": DEFAULT_ACCOUNT_SID,
        "CallSid": call.sid,
        "RecordingSid": url.rsplit("/", 1)[-1],
        "RecordingUrl": url,
        "RecordingStatus": "completed",
        "RecordingDuration": "9",
        "RecordingChannels": "1",
        "RecordingSource": "RecordVerb",
    }
    status, _ = await phones.twilio.post_signed(verb.get("recordingStatusCallback") or "", params)
    assert status == 200


async def voicemail_notice(phones: Phones) -> OutboxMessage:
    async with phones.store.reading() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.kind == "voicemail"))).scalar_one()


async def fetch_failed(phones: Phones, because: str) -> OutboxMessage:
    """The voicemail notice once a fetch of its recording has failed `because`."""
    for _ in range(200):
        notice = await voicemail_notice(phones)
        if because in (notice.last_error or ""):
            return notice
        await asyncio.sleep(0.02)
    raise AssertionError(f"the recording's fetch never failed with {because!r}")


async def test_a_card_arrives_while_a_voicemail_waits_for_its_recording(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=ALICE_CHAT)
    await phones.client("Ada Lovelace", "+14155550100", owner=alice)
    await phones.client("Grace Hopper", "+14155550111", owner=alice)
    missed = await phones.twilio.inbound(from_="+14155550100")
    await missed.no_answer()
    assert "Missed call from Ada Lovelace" in ((await phones.card(ALICE_CHAT)).plain_text or "")
    recording = new_sid("RE")
    await recording_ready(phones, missed, phones.rest.recording_url(recording))  # 404 for a while
    assert (await fetch_failed(phones, because="not available yet (404)")).status == "pending"

    call = await phones.twilio.inbound(from_="+14155550111")
    await call.answer(by="+14155550001")
    card = await phones.bot_api.next_message(ALICE_CHAT, timeout=3)
    assert "Grace Hopper" in (card.plain_text or "") and "Call from" in (card.plain_text or "")
    assert (await voicemail_notice(phones)).status == "pending"

    phones.rest.add_recording(recording, silent_mp3())  # Twilio has processed it now
    audio = await phones.bot_api.next_message(ALICE_CHAT, timeout=15)
    assert audio.method == "sendAudio" and "Voicemail from Ada Lovelace" in (audio.caption or "")


async def test_a_card_arrives_before_the_messages_a_client_wrote_just_before(phones: Phones) -> None:
    """At Telegram's own pace (one message a second to a chat), what a client wrote would hold a
    card up for as long as it takes to pass on."""
    phones.server.app[TELEGRAM].sender.limits.chat_interval = 1.0
    alice = await phones.agent("Alice", "+14155550001", chat_id=ALICE_CHAT)
    for n in range(200):
        update = phones.bot_api.user_message(chat_id=3003, user_id=3003, first_name="Ada", text=f"hello {n}")
        assert await phones.bot_api.post_to_webhook(update, secret=SECRET) == 200
    await phones.client("Grace Hopper", "+14155550111", owner=alice)
    for _ in phones.bot_api.messages(ALICE_CHAT):  # what has reached Alice so far
        await phones.bot_api.next_message(ALICE_CHAT)
    call = await phones.twilio.inbound(from_="+14155550111")
    await call.answer(by="+14155550001")
    arrived = [await phones.bot_api.next_message(ALICE_CHAT, timeout=3)]
    if "Grace Hopper" not in (arrived[0].plain_text or ""):  # the one under way when the card came
        arrived.append(await phones.bot_api.next_message(ALICE_CHAT, timeout=3))
    assert "Grace Hopper" in (arrived[-1].plain_text or "") and "Call from" in (arrived[-1].plain_text or "")
    async with phones.store.reading() as s:
        still_to_come = (
            await s.execute(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.kind == "client_message", OutboxMessage.status == "pending")
            )
        ).scalar_one()
    assert still_to_come > 0


async def test_a_voicemail_still_follows_its_missed_calls_card(phones: Phones) -> None:
    """The card of the missed call is slow to go out (Telegram errors); the recording is ready at
    once, yet arrives after it."""
    alice = await phones.agent("Alice", "+14155550001", chat_id=ALICE_CHAT)
    await phones.client("Ada Lovelace", "+14155550100", owner=alice)
    phones.bot_api.fail_next(
        "sendMessage", 2, status=500, description="Internal Server Error", chat_id=ALICE_CHAT
    )
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.no_answer()
    await call.leave_voicemail(seconds=14)
    first = await phones.card(ALICE_CHAT)
    second = await phones.card(ALICE_CHAT)
    assert first.method == "sendMessage" and "Missed call from Ada Lovelace" in (first.plain_text or "")
    assert second.method == "sendAudio" and "Voicemail from Ada Lovelace" in (second.caption or "")


async def test_a_card_takes_its_chats_next_turn_before_messages_that_waited_longer() -> None:
    limits = SendLimits(chat_interval=0.2)
    order: list[str] = []

    async def send(what: str, *, first: bool) -> None:
        async with limits.turn(ALICE_CHAT, first=first):
            order.append(what)

    async with limits.turn(ALICE_CHAT):  # a client's message is being sent
        messages = [asyncio.create_task(send(f"message {n}", first=False)) for n in range(3)]
        await asyncio.sleep(0.05)
        card = asyncio.create_task(send("card", first=True))
        await asyncio.sleep(0.05)
    await asyncio.gather(*messages, card)
    assert order[0] == "card" and sorted(order[1:]) == ["message 0", "message 1", "message 2"]
