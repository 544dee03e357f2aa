"""Click-to-call: Twilio rings the agent first, then connects the client; logged as an outbound
call with the same card and callbacks as an inbound one."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from crm.tokens import create_token
from tests.bots.conftest import SECRET
from tests.telephony.conftest import COMPANY, Phones


async def _api(phones: Phones, aiohttp_client: Any) -> tuple[TestClient[Any, Any], dict[str, str]]:
    client = await aiohttp_client(phones.server)
    async with phones.store.session() as s:
        token = await create_token(s, "tests", phones.clock)
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
        from crm.models import Client

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
        from crm.clients import ClientDraft

        no_phone = await phones.crm.clients.create(s, ClientDraft(name="No Phone", emails=["np@example.com"]))
    r = await http.post("/api/v1/calls", json={"client_id": no_phone, "agent_id": alice.id}, headers=auth)
    assert r.status == 422 and "client_id" in (await r.json())["fields"]
    r = await http.post("/api/v1/calls", json={"client_id": 999, "agent_id": alice.id}, headers=auth)
    assert r.status == 404
    r = await http.post("/api/v1/calls", json={"client_id": no_phone}, headers=auth)
    assert r.status == 422 and "agent_id" in (await r.json())["fields"]
