"""A voicemail whose recording cannot be fetched in time still reaches the agent: as text, saying
why and where to listen, whatever the reason's text holds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bots.sender import MEDIA_PATIENCE
from tests.bots.test_cards_first import ALICE_CHAT, fetch_failed, recording_ready, voicemail_notice
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, new_sid
from tests.telephony import conftest as telephony
from tests.telephony.conftest import Phones

# The gateway with Twilio and Telegram, as the telephony tests have it.
call_settings, phones, twilio_rest = telephony.call_settings, telephony.phones, telephony.twilio_rest


@pytest.fixture
async def broken_media() -> AsyncIterator[str]:
    """A media server on loopback whose downloads break off after a few bytes; its base URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: audio/mpeg\r\nContent-Length: 48000\r\n\r\nID3\x04")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()
    await server.wait_closed()


async def test_a_recording_whose_download_breaks_off_reaches_the_agent_as_text(
    phones: Phones, broken_media: str
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=ALICE_CHAT)
    await phones.client("Ada Lovelace", "+14155550100", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.no_answer()
    assert "Missed call from Ada Lovelace" in ((await phones.card(ALICE_CHAT)).plain_text or "")
    url = f"{broken_media}/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Recordings/{new_sid('RE')}"
    await recording_ready(phones, call, url)
    await fetch_failed(phones, because="<ContentLengthError")  # the reason reads as an HTML tag

    phones.clock.advance(seconds=MEDIA_PATIENCE.total_seconds())  # no recording in all that time
    notice = await phones.bot_api.next_message(ALICE_CHAT, timeout=5)
    assert notice.method == "sendMessage"
    shown = notice.plain_text or ""
    assert "Voicemail from Ada Lovelace" in shown
    assert "could not be attached" in shown and "<ContentLengthError" in shown
    assert f"listen at {url}" in shown
    for _ in range(100):  # recorded as sent once Telegram has answered
        if (await voicemail_notice(phones)).status != "pending":
            break
        await asyncio.sleep(0.02)
    assert (await voicemail_notice(phones)).status == "sent"
