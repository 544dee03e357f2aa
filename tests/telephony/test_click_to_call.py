"""Click-to-call: Twilio rings the agent first, then connects the client; logged as an outbound
call with the same card and callbacks as an inbound one."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

from aiohttp.test_utils import TestClient
from yarl import URL

from crm.delivery import outbox
from crm.delivery.outbox import Delivery
from crm.delivery.outbox_worker import Retry, Sent
from crm.domain.models import Call, OutboxMessage
from gateway.keys import SETTINGS
from telephony.twilio.dialer import TwilioDialer
from telephony.twilio.parse import PROVIDER
from telephony.twilio.rest import TwilioRest
from tests.bots.conftest import SECRET
from tests.fakes.twilio import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from tests.telephony.conftest import COMPANY, Phones

LEASE = timedelta(seconds=1)


async def _api(phones: Phones, aiohttp_client: Any) -> tuple[TestClient[Any, Any], dict[str, str]]:
    client = await aiohttp_client(phones.server)
    async with phones.store.session() as s:
        token = await phones.crm.tokens.create(s, "tests")
    return client, {"Authorization": f"Bearer {token}"}


async def test_the_api_rings_the_agent_then_the_client(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100")
    http, auth = await _api(phones, aiohttp_client)
    r = await http.post("/api/v1/calls", json={"client_id": ada, "agent_id": alice.id}, headers=auth)
    assert r.status == 202
    body = await r.json()
    assert (body["direction"], body["status"], body["to"], body["from"], body["agent_id"]) == (
        "outbound",
        "ringing",
        "+14155550100",
        COMPANY,
        None,
    )
    placed = await phones.rest.next_call()
    assert (placed["To"], placed["From"]) == ("+14155550001", COMPANY)
    call = await phones.twilio.outbound_from_rest(placed)
    card = await phones.card(1001)
    assert "Call to +1 415-555-0100" in (card.plain_text or "")
    assert "Ada Lovelace" in (card.plain_text or "")
    assert [t.value for t in call.dial_targets()] == ["+14155550100"]
    await call.answer_client(talk_seconds=42)
    r = await http.get(f"/api/v1/calls/{body['id']}", headers=auth)
    logged = await r.json()
    assert (logged["status"], logged["agent_id"], logged["duration_s"], logged["provider_call_id"]) == (
        "completed",
        alice.id,
        42,
        placed["sid"],
    )
    async with phones.store.reading() as s:
        from crm.domain.models import Client

        client = await s.get(Client, ada)
    assert client is not None and client.owner_id == alice.id


async def test_the_call_back_button_on_a_card_places_the_call(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.client("Ada Lovelace", "+14155550100")
    update = phones.bot_api.user_message(chat_id=1001, text="/find Ada", user_id=1001)
    assert await phones.bot_api.post_to_webhook(update, secret=SECRET) == 200
    card = await phones.card(1001)
    press = phones.bot_api.callback(
        chat_id=1001, message=card, data=card.button_data("📞 Call back"), user_id=1001
    )
    assert await phones.bot_api.post_to_webhook(press, secret=SECRET) == 200
    placed = await phones.rest.next_call()
    assert (placed["To"], placed["From"]) == ("+14155550001", COMPANY)


async def test_a_client_who_does_not_pick_up_is_a_missed_outbound_call(
    phones: Phones, aiohttp_client: Any
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100")
    http, auth = await _api(phones, aiohttp_client)
    body = await (
        await http.post("/api/v1/calls", json={"client_id": ada, "agent_id": alice.id}, headers=auth)
    ).json()
    call = await phones.twilio.outbound_from_rest(await phones.rest.next_call())
    await phones.card(1001)
    await call.client_no_answer()
    logged = await (await http.get(f"/api/v1/calls/{body['id']}", headers=auth)).json()
    assert logged["status"] == "missed"


async def test_twilio_refusing_the_call_fails_it_and_tells_the_agent(
    phones: Phones, aiohttp_client: Any
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100")
    phones.rest.fail_next(
        1,
        400,
        {"code": 21210, "message": "The source phone number provided is not yet verified", "status": 400},
    )
    http, auth = await _api(phones, aiohttp_client)
    body = await (
        await http.post("/api/v1/calls", json={"client_id": ada, "agent_id": alice.id}, headers=auth)
    ).json()
    notice = await phones.card(1001)
    assert "Could not place your call to Ada" in (notice.text or "")
    assert "not yet verified" in (notice.text or "")
    logged = await (await http.get(f"/api/v1/calls/{body['id']}", headers=auth)).json()
    assert logged["status"] == "failed"


async def test_twilio_briefly_unavailable_is_retried(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100")
    from gateway.keys import STORE  # noqa: F401

    phones.rest.fail_next(2, 503)
    http, auth = await _api(phones, aiohttp_client)
    await http.post("/api/v1/calls", json={"client_id": ada, "agent_id": alice.id}, headers=auth)
    placed = await phones.rest.next_call(timeout=15)
    assert placed["To"] == "+14155550001"


async def test_bad_click_to_call_requests_get_field_errors(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    http, auth = await _api(phones, aiohttp_client)
    async with phones.store.session() as s:
        from crm.services.clients import ClientDraft

        no_phone = await phones.crm.clients.create(s, ClientDraft(name="No Phone", emails=["np@example.com"]))
    r = await http.post("/api/v1/calls", json={"client_id": no_phone, "agent_id": alice.id}, headers=auth)
    assert r.status == 422 and "client_id" in (await r.json())["fields"]
    r = await http.post("/api/v1/calls", json={"client_id": 999, "agent_id": alice.id}, headers=auth)
    assert r.status == 404
    r = await http.post("/api/v1/calls", json={"client_id": no_phone}, headers=auth)
    assert r.status == 422 and "agent_id" in (await r.json())["fields"]


# -- a dialer that dies mid-way: another process on the same database, killed before it records


async def _clicked_and_claimed_by_another_process(phones: Phones, client_id: int, agent_id: int) -> Delivery:
    """Click-to-call, its message claimed (for `LEASE`) by another gateway's dialer before ours looks."""
    async with phones.store.session() as s:
        await phones.crm.calls.place_outbound(
            s, client_id=client_id, agent_id=agent_id, provider=PROVIDER, caller_id=COMPANY
        )
        (claimed,) = await outbox.claim(s, "telephony", now=phones.clock.now(), lease=LEASE)
    return claimed


@asynccontextmanager
async def _other_dialer(phones: Phones) -> AsyncIterator[TwilioDialer]:
    rest = TwilioRest(DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, phones.rest.url)
    try:
        public_url = phones.server.app[SETTINGS].public_url
        yield TwilioDialer(
            rest, phones.crm.calls, phones.store, phones.clock, public_url=public_url, caller_id=COMPANY
        )
    finally:
        await rest.close()


async def _settled(phones: Phones, claimed: Delivery, timeout: float = 6.0) -> OutboxMessage:
    """The message once a dialer recorded its outcome (ours takes it over when the lease runs out)."""
    for _ in range(int(timeout / 0.05)):
        async with phones.store.reading() as s:
            row = await s.get(OutboxMessage, claimed.id)
        if row is not None and row.status != "pending":
            return row
        await asyncio.sleep(0.05)
    raise AssertionError(f"outbox message {claimed.id} still pending after {timeout}s")


async def _call(phones: Phones, claimed: Delivery) -> Call:
    async with phones.store.reading() as s:
        call = await s.get(Call, int(claimed.payload["call_id"]))
    assert call is not None
    return call


async def test_a_dialer_killed_after_twilio_placed_the_call_does_not_ring_the_agent_twice(
    phones: Phones,
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100")
    claimed = await _clicked_and_claimed_by_another_process(phones, ada, alice.id)
    async with _other_dialer(phones) as dying:
        assert isinstance(await dying.deliver(claimed), Sent)  # Twilio placed it; then the kill
    placed = await phones.rest.next_call()

    message = await _settled(phones, claimed)  # our dialer, once the lease ran out
    assert (message.status, message.attempts) == ("sent", 2)
    assert len(phones.rest.calls) == 1  # one POST to Calls.json: the agent's phone rang once
    assert phones.rest.listings[-1]["To"] == "+14155550001"  # it looked at Twilio's calls instead
    assert (await _call(phones, claimed)).provider_call_id == placed["sid"]

    call = await phones.twilio.outbound_from_rest(placed)
    assert "Ada Lovelace" in ((await phones.card(1001)).plain_text or "")
    await call.answer_client(talk_seconds=42)
    logged = await _call(phones, claimed)
    assert (logged.status, logged.duration_s, logged.agent_id) == ("completed", 42, alice.id)


async def test_a_dialer_killed_before_twilio_got_the_request_has_the_call_placed_once(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100")
    claimed = await _clicked_and_claimed_by_another_process(phones, ada, alice.id)
    await phones.rest.stop()
    async with _other_dialer(phones) as dying:
        assert isinstance(await dying.deliver(claimed), Retry)  # Twilio unreachable; then the kill
    await phones.rest.start()

    placed = await phones.rest.next_call(timeout=6)
    message = await _settled(phones, claimed)
    assert (message.status, len(phones.rest.calls)) == ("sent", 1)
    assert (await _call(phones, claimed)).provider_call_id == placed["sid"]


async def test_a_dialer_that_froze_past_its_lease_leaves_the_call_to_the_one_that_took_over(
    phones: Phones,
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100")
    phones.rest.answer_delay = 1.0  # Twilio takes a second to answer: our dialer is mid-request
    claimed = await _clicked_and_claimed_by_another_process(phones, ada, alice.id)
    placed = await phones.rest.next_call(timeout=6)  # ours took the message over and asked Twilio
    async with _other_dialer(phones) as frozen:
        assert isinstance(await frozen.deliver(claimed), Retry)  # it wakes up: no longer its to place
    assert (await _settled(phones, claimed)).status == "sent"
    assert len(phones.rest.calls) == 1
    assert (await _call(phones, claimed)).provider_call_id == placed["sid"]


async def test_two_clicks_to_one_agent_killed_mid_way_still_make_two_calls_each_named_by_twilio(
    phones: Phones,
) -> None:
    """Two calls to Alice at Twilio, neither recorded: which is whose cannot be told from the
    list, so none is placed again, and Twilio's callbacks (which carry our call id) name them."""
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100")
    bob = await phones.client("Bob Babbage", "+14155550101")
    to_ada = await _clicked_and_claimed_by_another_process(phones, ada, alice.id)
    to_bob = await _clicked_and_claimed_by_another_process(phones, bob, alice.id)
    async with _other_dialer(phones) as dying:
        for claimed in (to_ada, to_bob):
            assert isinstance(await dying.deliver(claimed), Sent)
    placed = [await phones.rest.next_call() for _ in range(2)]

    assert [(await _settled(phones, claimed)).status for claimed in (to_ada, to_bob)] == ["sent", "sent"]
    assert len(phones.rest.calls) == 2
    unnamed = [(await _call(phones, claimed)).provider_call_id[:8] for claimed in (to_ada, to_bob)]
    assert unnamed == ["pending-", "pending-"]  # not told apart by the takeover: Twilio will name them
    for rest_call in placed:
        call = await phones.twilio.outbound_from_rest(rest_call)
        await phones.card(1001)
        await call.answer_client(talk_seconds=10)
    for claimed, rest_call in zip((to_ada, to_bob), placed, strict=True):
        assert URL(rest_call["Url"]).query["call"] == str(claimed.payload["call_id"])
        assert (await _call(phones, claimed)).provider_call_id == rest_call["sid"]
