"""A web page, a browser or a script posts a lead: every encoding works, bad fields are named,
bots get a convincing nothing, and browsers are sent on to the page the site asked for."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from crm.services import notices
from tests.leads.conftest import SITE, Site


async def test_a_script_posts_json_and_learns_the_lead_client_and_agent(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", chat_id=1001)
    body = await site.lead(
        name="Ada Lovelace",
        phone="(415) 555-0100",
        email="Ada@Example.com",
        message="A demo, please",
        source="landing",
        utm_source="google",
        utm_campaign="spring",
        plan="gold",
        seats=12,
    )
    assert set(body) == {"lead_id", "client_id", "client_created", "assigned_agent_id"}
    assert body["client_created"] is True and body["assigned_agent_id"] == alice.id
    [lead] = await site.leads()
    assert (lead.id, lead.client_id, lead.assigned_agent_id) == (
        body["lead_id"],
        body["client_id"],
        alice.id,
    )
    assert (lead.name, lead.phone, lead.email, lead.message, lead.source) == (
        "Ada Lovelace",
        "(415) 555-0100",
        "Ada@Example.com",
        "A demo, please",
        "landing",
    )
    assert lead.utm == {"utm_source": "google", "utm_campaign": "spring"}
    assert lead.extra == {"plan": "gold", "seats": 12}


async def test_a_browser_posts_a_plain_form_and_gets_a_thank_you_page(site: Site) -> None:
    response = await site.post(
        data={"name": "Ada", "email": "ada@example.com", "utm_medium": "cpc", "newsletter": "yes"}
    )
    assert response.status == 201
    assert response.content_type == "text/html"
    assert "Thank you" in await response.text()
    [lead] = await site.leads()
    assert (lead.email, lead.utm, lead.extra) == (
        "ada@example.com",
        {"utm_medium": "cpc"},
        {"newsletter": "yes"},
    )


async def test_a_multipart_form_works_too_and_repeated_fields_become_lists(site: Site) -> None:
    form = aiohttp.FormData()
    for name, value in [
        ("name", "Ada"),
        ("phone", "+44 20 7946 0958"),
        ("interest", "calls"),
        ("interest", "leads"),
    ]:
        form.add_field(name, value)
    response = await site.post(data=form, headers={"Accept": "application/json"})
    assert response.status == 201
    assert (await response.json())["client_created"] is True
    [lead] = await site.leads()
    assert (lead.phone, lead.extra) == ("+44 20 7946 0958", {"interest": ["calls", "leads"]})


async def test_a_fetch_that_asks_for_json_gets_json_from_a_form_post(site: Site) -> None:
    response = await site.post(data={"email": "ada@example.com"}, headers={"Accept": "application/json"})
    assert response.status == 201
    assert set(await response.json()) == {"lead_id", "client_id", "client_created", "assigned_agent_id"}


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"name": "Ada"}, {"phone", "email"}),
        ({"phone": "", "email": " "}, {"phone", "email"}),
        ({"phone": "12"}, {"phone"}),
        ({"phone": "+1 415 555 0100", "email": "not-an-address"}, {"email"}),
        ({"email": "ada@example.com", "name": "x" * 301}, {"name"}),
        ({"email": "ada@example.com", "message": "x" * 5001}, {"message"}),
        ({"email": "ada@example.com", "source": "s" * 201}, {"source"}),
        ({"email": "ada@example.com", "comment": "x" * 1001}, {"comment"}),
        ({"email": "ada@example.com", **{f"f{i}": "x" for i in range(51)}}, {"extra"}),
        ({"email": "ada@example.com", "name": {"first": "Ada"}}, {"name"}),
        ({"phone": "12", "email": "nope", "name": "x" * 400}, {"phone", "email", "name"}),
    ],
)
async def test_bad_fields_are_named_and_nothing_is_stored(
    site: Site, fields: dict[str, object], errors: set[str]
) -> None:
    body = await site.lead(expect=422, **fields)
    assert body["error"] == "invalid"
    assert set(body["fields"]) == errors
    assert all(isinstance(text, str) and text for text in body["fields"].values())
    assert await site.leads() == []
    assert await site.clients() == []


async def test_the_phone_error_says_what_is_wrong(site: Site) -> None:
    body = await site.lead(expect=422, phone="12")
    assert body == {"error": "invalid", "fields": {"phone": "12: too short for US"}}


async def test_limits_are_inclusive(site: Site) -> None:
    extra: dict[str, Any] = {f"f{i}": "x" for i in range(49)}
    await site.lead(
        email="ada@example.com",
        name="n" * 300,
        message="m" * 5000,
        comment="c" * 1000,
        **extra,
    )
    [lead] = await site.leads()
    assert len(lead.name or "") == 300 and len(lead.message or "") == 5000 and len(lead.extra) == 50


async def test_a_script_in_a_name_is_stored_as_text(site: Site) -> None:
    name = "<script>alert('x')</script> & Co"
    body = await site.lead(name=name, email="x@example.com", message="<b>hi</b>\nsecond line")
    [client] = await site.clients()
    [lead] = await site.leads()
    assert client.id == body["client_id"] and client.name == name
    assert (lead.name, lead.message) == (name, "<b>hi</b>\nsecond line")


async def test_text_a_database_cannot_hold_is_cleaned_not_a_500(site: Site) -> None:
    raw = json.dumps({"name": "Ada\u0000 \ud800Lovelace", "email": "ada@example.com", "note": "a\u0000b"})
    response = await site.post(data=raw, headers={"Content-Type": "application/json"})
    assert response.status == 201, await response.text()
    [lead] = await site.leads()
    assert lead.name == "Ada ?Lovelace" and lead.extra == {"note": "ab"}


async def test_a_phone_sent_as_a_json_number_is_read(site: Site) -> None:
    await site.lead(phone=4155550100)
    [lead] = await site.leads()
    assert lead.phone == "4155550100"


async def test_the_honeypot_answers_like_success_and_stores_nothing(site: Site) -> None:
    body = await site.lead(email="bot@example.com", _gotcha="http://spam.example")
    assert set(body) == {"lead_id", "client_id", "client_created", "assigned_agent_id"}
    assert isinstance(body["lead_id"], int) and isinstance(body["client_id"], int)
    page = await site.post(data={"email": "bot@example.com", "_gotcha": "x"})
    assert page.status == 201 and "Thank you" in await page.text()
    redirect = await site.post(data={"email": "bot", "_gotcha": "x", "_next": f"{SITE}/thanks"})
    assert (redirect.status, redirect.headers["Location"]) == (303, f"{SITE}/thanks")
    assert await site.leads() == [] and await site.clients() == []
    assert await site.outbox(notices.CHANNEL) == [] and await site.outbox("mail") == []


async def test_an_empty_honeypot_is_a_real_lead(site: Site) -> None:
    await site.lead(email="ada@example.com", _gotcha="")
    assert len(await site.leads()) == 1


async def test_next_sends_the_browser_on_with_303(site: Site) -> None:
    response = await site.post(data={"email": "ada@example.com", "_next": f"{SITE}/thanks?x=1"})
    assert response.status == 303
    assert response.headers["Location"] == f"{SITE}/thanks?x=1"
    [lead] = await site.leads()
    assert "_next" not in lead.extra


async def test_next_may_be_the_gateways_own_host(site: Site) -> None:
    own = f"{site.settings.public_url}/forms/lead"
    response = await site.post(data={"email": "ada@example.com", "_next": own})
    assert (response.status, response.headers["Location"]) == (303, own)


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/phish",
        "javascript:alert(1)",
        "//evil.example/x",
        "/relative",
        "ftp://www.example.com/",
    ],
)
async def test_next_is_refused_outside_the_allowed_origins(site: Site, target: str) -> None:
    response = await site.post(data={"email": "ada@example.com", "_next": target})
    assert response.status == 422
    body = await response.json()
    assert body["error"] == "invalid" and set(body["fields"]) == {"_next"}
    assert await site.leads() == []


async def test_wrong_content_types_are_415(site: Site) -> None:
    for content_type in ("text/plain", "application/xml", "application/octet-stream"):
        response = await site.post(data=b"email=ada@example.com", headers={"Content-Type": content_type})
        assert response.status == 415
        assert (await response.json())["error"] == "unsupported_media_type"


async def test_broken_json_is_a_400(site: Site) -> None:
    for raw in (b"{nope", b"[1, 2]"):
        response = await site.post(data=raw, headers={"Content-Type": "application/json"})
        assert (response.status, (await response.json())["error"]) == (400, "bad_json")


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b'{"email": "a@example.com", "x": NaN}', "application/json", "bad_json"),
        (b'{"email": "a@example.com", "seats": 1e400}', "application/json", "bad_json"),
        (b"email=a%40example.com", "multipart/form-data", "bad_form"),
        (b"--xx\r\ngarbage\r\n--xx--\r\n", "multipart/form-data; boundary=xx", "bad_form"),
        (b"email=a%40example.com", "application/x-www-form-urlencoded; charset=klingon", "bad_form"),
    ],
)
async def test_bodies_that_cannot_be_read_are_a_400_not_a_500(
    site: Site, body: bytes, content_type: str, code: str
) -> None:
    response = await site.post(data=body, headers={"Content-Type": content_type})
    assert (response.status, (await response.json())["error"]) == (400, code)
    assert await site.leads() == []


async def test_files_are_refused(site: Site) -> None:
    form = aiohttp.FormData()
    form.add_field("email", "ada@example.com")
    form.add_field("cv", b"%PDF-1.4", filename="cv.pdf", content_type="application/pdf")
    response = await site.post(data=form)
    assert response.status == 422
    assert set((await response.json())["fields"]) == {"cv"}


async def test_bodies_over_a_mebibyte_are_413(site: Site) -> None:
    big = {"email": "ada@example.com", "message": "x" * (1024 * 1024)}
    response = await site.post(json=big)
    assert (response.status, (await response.json())["error"]) == (413, "too_large")

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the server reads until too much
        yield b"email=ada%40example.com&message="
        for _ in range(20):
            yield b"x" * 65536

    response = await site.post(data=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status == 413
    assert await site.leads() == []


async def test_the_form_works_without_javascript_and_carries_source_and_next(site: Site) -> None:
    response = await site.http.get("/forms/lead", params={"source": 'landing"><b>', "_next": f"{SITE}/ok"})
    assert response.status == 200 and response.content_type == "text/html"
    page = await response.text()
    assert f'action="{site.settings.public_url}/leads"' in page and 'method="post"' in page
    assert 'name="source" value="landing&quot;&gt;&lt;b&gt;"' in page
    assert f'name="_next" value="{SITE}/ok"' in page
    assert 'type="email"' in page and 'type="tel"' in page and "<label>" in page
    assert 'name="_gotcha"' in page and 'aria-hidden="true"' in page and 'tabindex="-1"' in page
    assert "<script" not in page
    bare = await (await site.http.get("/forms/lead")).text()
    assert 'name="source"' not in bare and 'name="_next"' not in bare


async def test_the_form_refuses_a_foreign_next(site: Site) -> None:
    response = await site.http.get("/forms/lead", params={"_next": "https://evil.example/"})
    assert response.status == 422


async def test_posting_the_form_as_a_browser_would(site: Site) -> None:
    response = await site.post(
        data={
            "source": "landing",
            "_next": f"{SITE}/thanks",
            "name": "Ada",
            "phone": "",
            "email": "ada@example.com",
            "message": "Hi",
            "_gotcha": "",
        },
        headers={"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
    )
    assert response.status == 303
    [lead] = await site.leads()
    assert (lead.source, lead.phone, lead.extra) == ("landing", None, {})


async def test_a_lead_nested_100000_deep_is_refused_not_a_500(site: Site) -> None:
    deep = b'{"email": "ada@example.com", "answers": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await site.post(data=deep, headers={"Content-Type": "application/json"})
    assert (response.status, await response.json()) == (
        400,
        {"error": "bad_json", "detail": "the body nests arrays and objects more than 32 deep"},
    )
    assert await site.leads() == []


async def test_a_phone_spelled_with_more_than_64_characters_is_refused_as_everywhere(site: Site) -> None:
    body = await site.lead(expect=422, email="ada@example.com", phone="+1 415 555 0100" + "-" * 60)
    assert body == {"error": "invalid", "fields": {"phone": "longer than 64 characters"}}
    assert await site.leads() == []
