"""Scripts and PBXs use the REST API: auth, validation, look-up, search, paging, merge."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.gateway.conftest import Api


async def test_no_token_is_401_and_a_wrong_one_403(gateway: TestClient[Any, Any], token: str) -> None:
    anonymous = await gateway.get("/api/v1/clients")
    assert anonymous.status == 401
    assert (await anonymous.json())["error"] == "unauthorized"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    forged = await gateway.get("/api/v1/clients", headers={"Authorization": "Bearer crm_forged"})
    assert forged.status == 403
    assert (await forged.json())["error"] == "forbidden"
    good = await gateway.get("/api/v1/clients", headers={"Authorization": f"Bearer {token}"})
    assert good.status == 200


async def test_a_created_client_is_found_by_any_spelling_of_its_number(api: Api) -> None:
    made = await api.post(
        "/clients",
        {
            "name": "Ada Lovelace",
            "phones": ["(415) 555-0100", "+44 7700 900123"],
            "emails": ["Ada@Example.com"],
            "tags": ["vip", "vip", "math"],
            "company": "Analytical Engines",
            "custom": {"plan": "gold"},
        },
    )
    assert made["phones"] == ["+14155550100", "+447700900123"]
    assert made["emails"] == ["Ada@Example.com"]
    assert made["tags"] == ["vip", "math"]
    assert made["company"] == "Analytical Engines"
    assert made["custom"] == {"plan": "gold"}
    assert made["time_zone"] == "America/Los_Angeles"
    assert made["local_time"].endswith("-08:00")
    for spelling in ["415.555.0100", "+1 415 555 0100", "+44 (0)7700 900123"]:
        found = await api.get("/lookup", params={"phone": spelling})
        assert found["client"]["id"] == made["id"]
    assert (await api.get(f"/clients/{made['id']}"))["name"] == "Ada Lovelace"


async def test_lookup_of_an_unknown_number_is_404_and_creates_nothing(api: Api) -> None:
    missing = await api.get("/lookup", expect=404, params={"phone": "+14155550199"})
    assert missing["error"] == "not_found"
    bad = await api.get("/lookup", expect=422, params={"phone": "12"})
    assert "phone" in bad["fields"]
    assert (await api.get("/clients"))["clients"] == []


async def test_invalid_fields_get_a_field_error_each(api: Api) -> None:
    body = await api.post("/clients", {"name": "", "phones": ["12"], "emails": ["nope"]}, expect=422)
    assert body["error"] == "invalid"
    assert "name" in body["fields"]
    body = await api.post("/clients", {"name": "Ada", "phones": ["12"], "emails": ["nope"]}, expect=422)
    assert set(body["fields"]) == {"phones[0]", "emails[0]"}
    body = await api.post("/clients", {"name": "Ada", "colour": "red"}, expect=422)
    assert "colour" in body["fields"]
    assert (await api.get("/clients"))["clients"] == []


async def test_a_duplicate_number_is_a_conflict(api: Api) -> None:
    first = await api.post("/clients", {"name": "Ada", "phones": ["+14155550100"]})
    body = await api.post("/clients", {"name": "Ada again", "phones": ["415-555-0100"]}, expect=409)
    assert str(first["id"]) in body["detail"]


async def test_bodies_that_are_not_json_are_refused_clearly(api: Api) -> None:
    r = await api.client.post("/api/v1/clients", data="name=Ada", headers=api.headers)
    assert r.status == 415
    r = await api.client.post(
        "/api/v1/clients", data=b"{not json", headers={**api.headers, "Content-Type": "application/json"}
    )
    assert (r.status, (await r.json())["error"]) == (400, "bad_json")
    r = await api.client.post("/api/v1/clients", json=["a list"], headers=api.headers)
    assert r.status == 400


async def test_a_body_over_one_mebibyte_is_413(api: Api) -> None:
    big = {"name": "Ada", "notes": "x" * (1024 * 1024 + 10)}
    r = await api.client.post("/api/v1/clients", json=big, headers=api.headers)
    assert r.status == 413
    assert (await r.json())["error"] == "too_large"


async def test_patch_changes_only_what_is_given(api: Api) -> None:
    made = await api.post(
        "/clients",
        {"name": "Ada", "phones": ["+14155550100"], "tags": ["a"], "custom": {"plan": "gold", "size": 3}},
    )
    patched = await api.patch(
        f"/clients/{made['id']}", {"name": "Ada King", "custom": {"size": None, "x": 1}}
    )
    assert patched["name"] == "Ada King"
    assert patched["phones"] == ["+14155550100"]
    assert patched["tags"] == ["a"]
    assert patched["custom"] == {"plan": "gold", "x": 1}
    patched = await api.patch(f"/clients/{made['id']}", {"phones": ["+14155550101", "+14155550100"]})
    assert patched["phones"] == ["+14155550101", "+14155550100"]


async def test_patch_of_a_missing_client_is_404(api: Api) -> None:
    body = await api.patch("/clients/999", {"name": "Nobody"}, expect=404)
    assert body["error"] == "not_found"


async def test_merge_moves_numbers_and_history_to_the_survivor(api: Api) -> None:
    ada = await api.post("/clients", {"name": "Ada", "phones": ["+14155550100"], "tags": ["vip"]})
    dup = await api.post(
        "/clients",
        {"name": "A. Lovelace", "phones": ["+447700900123"], "emails": ["ada@example.com"], "tags": ["math"]},
    )
    merged = await api.post(f"/clients/{ada['id']}/merge", {"other_id": dup["id"]}, expect=200)
    assert merged["phones"] == ["+14155550100", "+447700900123"]
    assert merged["emails"] == ["ada@example.com"]
    assert merged["tags"] == ["vip", "math"]
    assert merged["recent_interactions"][0]["kind"] == "note"
    assert "Merged" in merged["recent_interactions"][0]["summary"]
    await api.get(f"/clients/{dup['id']}", expect=404)
    assert (await api.get("/lookup", params={"phone": "+44 7700-900123"}))["client"]["id"] == ada["id"]


async def test_a_client_cannot_be_merged_into_itself(api: Api) -> None:
    ada = await api.post("/clients", {"name": "Ada"})
    body = await api.post(f"/clients/{ada['id']}/merge", {"other_id": ada["id"]}, expect=422)
    assert "other_id" in body["fields"]
    body = await api.post(f"/clients/{ada['id']}/merge", {"other_id": 999}, expect=422)
    assert "other_id" in body["fields"]


async def test_search_pages_through_every_client_once(api: Api) -> None:
    ids = [(await api.post("/clients", {"name": f"Client {i:02}"}))["id"] for i in range(12)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        page = await api.get("/clients", params=params)
        seen += [c["id"] for c in page["clients"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids
    assert [c["name"] for c in (await api.get("/clients", params={"q": "client 1"}))["clients"]] == [
        f"Client {i}" for i in range(10, 12)
    ]
    assert "limit" in (await api.get("/clients", expect=422, params={"limit": "0"}))["fields"]
    assert "limit" in (await api.get("/clients", expect=422, params={"limit": "many"}))["fields"]
    assert "cursor" in (await api.get("/clients", expect=422, params={"cursor": "zzz"}))["fields"]
