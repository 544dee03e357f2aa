"""Attacks on the REST API that each gave a 500 with a traceback: now each gets a 4xx that says
what was wrong, in the JSON error shape, on SQLite and on PostgreSQL (where 64-bit overflow, NUL
characters and long phone spellings first showed)."""

from __future__ import annotations

import base64
from typing import Any

from aiohttp.test_utils import TestClient

from crm.domain.clock import FrozenClock
from crm.service import Crm
from crm.storage.store import Store
from tests.gateway.conftest import Api
from tests.gateway.raw_http import raw_request

DEEP = b"[" * 100_000 + b"]" * 100_000
HUGE = 10**25  # 26 digits
LONG_PHONE = "+1 415 555 0100" + "-" * 60  # a valid number spelled with 75 characters


async def _people(store: Store, crm: Crm, clock: FrozenClock) -> dict[str, int]:
    async with store.session() as s:
        alice = await crm.agents.add(s, "Alice", phone="+14155550001")
        ada = (await crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada")).client_id
        await crm.clients.set_owner_if_none(s, ada, alice.id)
    return {"alice": alice.id, "ada": ada}


async def test_json_nested_100000_deep_is_refused(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _people(store, crm, clock)
    json_body = {**api.headers, "Content-Type": "application/json"}
    for method, path in [
        ("POST", "/clients"),
        ("PATCH", f"/clients/{w['ada']}"),
        ("POST", "/tasks"),
        ("POST", "/calls"),
        ("POST", f"/clients/{w['ada']}/merge"),
    ]:
        response = await api.client.request(method, "/api/v1" + path, data=DEEP, headers=json_body)
        assert response.status == 400, (path, await response.text())
        assert await response.json() == {
            "error": "bad_json",
            "detail": "the body nests arrays and objects more than 32 deep",
        }
    # 32 levels are kept (the body, `custom`, and 30 lists), 33 are not.
    card = await api.post("/clients", {"name": "Ada", "custom": {"a": _nested(30)}})
    assert card["custom"]["a"] == _nested(30)
    assert (await api.post("/clients", {"name": "Ada", "custom": {"a": _nested(31)}}, expect=400))[
        "error"
    ] == ("bad_json")


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


async def test_ids_past_64_bits_are_not_found_or_invalid(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _people(store, crm, clock)
    call = await api.post("/calls", {"client_id": HUGE, "agent_id": w["alice"]}, expect=422)
    assert set(call["fields"]) == {"client_id"}
    call = await api.post("/calls", {"client_id": w["ada"], "agent_id": -HUGE}, expect=422)
    assert set(call["fields"]) == {"agent_id"}
    task = {"client_id": w["ada"], "title": "Call", "due_at": "2026-03-03T10:00:00+00:00", "agent_id": HUGE}
    assert set((await api.post("/tasks", task, expect=422))["fields"]) == {"agent_id"}
    merge = await api.post(f"/clients/{w['ada']}/merge", {"other_id": 2**63}, expect=422)
    assert set(merge["fields"]) == {"other_id"}
    patch = await api.patch(f"/clients/{w['ada']}", {"owner_id": 2**64}, expect=422)
    assert set(patch["fields"]) == {"owner_id"}
    deep_in_custom = await api.post("/clients", {"name": "Ada", "custom": {"n": [1, HUGE]}}, expect=422)
    assert deep_in_custom["fields"] == {
        "custom.n.1": "a whole number beyond 64 bits (at most 9223372036854775807)"
    }
    for path in [f"/clients/{HUGE}", f"/calls/{HUGE}", f"/clients/{'9' * 5000}"]:
        assert (await api.get(path, expect=404))["error"] == "not_found"
    await api.patch(f"/tasks/{HUGE}", {"done": True}, expect=404)
    await api.post(f"/clients/{HUGE}/merge", {"other_id": w["ada"]}, expect=404)
    for query in ["client_id", "agent_id", "limit"]:
        path = "/tasks" if query == "agent_id" else "/calls"
        assert query in (await api.get(path, expect=422, params={query: str(HUGE)}))["fields"]
    past_the_last_id = base64.urlsafe_b64encode(f"c{HUGE}".encode()).decode()
    for path in ["/calls", "/clients", "/tasks", "/leads"]:
        body = await api.get(path, expect=422, params={"cursor": past_the_last_id})
        assert body == {"error": "invalid", "fields": {"cursor": "not a cursor this API gave out"}}


async def test_times_at_year_1_or_9999_are_refused(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _people(store, crm, clock)
    edges = ["0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]
    task = await api.post(
        "/tasks", {"client_id": w["ada"], "title": "Call", "due_at": "2026-03-03T10:00:00+01:00"}
    )
    for edge in edges:
        new = {"client_id": w["ada"], "title": "Call", "due_at": edge}
        assert (await api.post("/tasks", new, expect=422))["fields"] == {
            "due_at": "must lie between the years 1900 and 2999"
        }
        assert "due_at" in (await api.patch(f"/tasks/{task['id']}", {"due_at": edge}, expect=422))["fields"]
        for path in ["/calls", "/leads"]:
            body = await api.get(path, expect=422, params={"since": edge})
            assert body == {
                "error": "invalid",
                "fields": {"since": "must lie between the years 1900 and 2999"},
            }
    late = await api.post(
        "/tasks", {"client_id": w["ada"], "title": "Call", "due_at": "2999-12-31T23:59:59Z"}
    )
    assert late["due_at"].startswith("2999-12-31T23:59:59")


async def test_a_phone_spelled_with_more_than_64_characters_is_refused(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    """The rule of every door (API, web form, Twilio): a spelling is kept as written, so one
    longer than 64 characters is refused; runs of spaces count as one."""
    w = await _people(store, crm, clock)
    refused = {"error": "invalid", "fields": {"phones[0]": "longer than 64 characters"}}
    assert await api.post("/clients", {"name": "Bo", "phones": [LONG_PHONE]}, expect=422) == refused
    assert await api.patch(f"/clients/{w['ada']}", {"phones": [LONG_PHONE]}, expect=422) == refused
    lookup = await api.get("/lookup", expect=422, params={"phone": LONG_PHONE})
    assert lookup == {"error": "invalid", "fields": {"phone": "longer than 64 characters"}}
    spaced = "+1" + " " * 70 + "415 555 0102"
    card = await api.post("/clients", {"name": "Bo", "phones": [spaced]})
    assert card["phones"] == ["+14155550102"]
    assert (await api.get("/lookup", params={"phone": spaced}))["client"]["id"] == card["id"]


async def test_text_no_database_can_hold_is_cleaned(api: Api) -> None:
    """JSON may carry NUL characters (PostgreSQL stores none) and unpaired surrogates (no driver
    encodes them): the client is kept with them dropped or made `?`, as a lead's text always was."""
    raw = '{"name": "Ada\\u0000 Lovelace", "notes": "a\\ud800b", "custom": {"k\\u0000": "v\\udc00"}}'
    response = await api.client.post(
        "/api/v1/clients", data=raw, headers={**api.headers, "Content-Type": "application/json"}
    )
    assert response.status == 201, await response.text()
    card = await response.json()
    assert (card["name"], card["notes"], card["custom"]) == ("Ada Lovelace", "a?b", {"k": "v?"})


async def test_a_nul_in_the_query_string_is_refused(api: Api) -> None:
    for path in ["/clients?q=%00", "/lookup?phone=%2B1415%00", "/calls?status=%00", "/clients?cursor=a%00"]:
        body = await api.get(path, expect=400)
        assert body == {"error": "bad_request", "detail": "the query string holds a NUL character (%00)"}


async def test_header_bytes_that_are_not_utf8_are_refused(gateway: TestClient[Any, Any], token: str) -> None:
    """`Authorization: Bearer \\xff\\xfe`: the bytes are not text, and no token is made of them."""
    server = gateway.server
    for value in [b"Bearer \xff\xfe", b"Bearer " + token.encode() + b"\xff", b"\xc3("]:
        answer = await raw_request(
            server.host, server.port, b"GET /api/v1/agents", [(b"Authorization", value)]
        )
        assert (answer.status, answer.content_type) == (400, "application/json")
        assert answer.json() == {
            "error": "bad_request",
            "detail": "the Authorization header is not UTF-8 text",
        }
    utf8 = await raw_request(
        server.host, server.port, b"GET /api/v1/agents", [(b"Authorization", "Bearer é".encode())]
    )
    assert (utf8.status, utf8.json()["error"]) == (403, "forbidden")
