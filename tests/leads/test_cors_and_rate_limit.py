"""Pages of the allowed sites may post leads with `fetch` (CORS); nobody may post too many."""

from __future__ import annotations

from tests.leads.conftest import SITE, OpenSite, Site

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


async def test_a_preflight_from_an_allowed_origin_is_answered(site: Site) -> None:
    response = await site.http.options("/leads", headers={"Origin": SITE, **PREFLIGHT})
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "content-type" in response.headers["Access-Control-Allow-Headers"].lower()
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert "Origin" in response.headers["Vary"]


async def test_a_preflight_from_another_origin_is_refused(site: Site) -> None:
    response = await site.http.options("/leads", headers={"Origin": "https://evil.example", **PREFLIGHT})
    assert response.status == 403
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "CRM_FORM_ALLOWED_ORIGINS" in (await response.json())["detail"]


async def test_answers_to_an_allowed_origin_carry_cors_headers_errors_included(site: Site) -> None:
    ok = await site.post(json={"email": "ada@example.com"}, headers={"Origin": SITE})
    assert ok.status == 201
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in ok.headers["Vary"]
    bad = await site.post(json={"email": "nope"}, headers={"Origin": SITE})
    assert bad.status == 422 and bad.headers["Access-Control-Allow-Origin"] == SITE


async def test_answers_to_other_origins_carry_none_but_the_lead_is_taken(site: Site) -> None:
    response = await site.post(json={"email": "ada@example.com"}, headers={"Origin": "https://other.example"})
    assert response.status == 201
    assert "Access-Control-Allow-Origin" not in response.headers
    assert len(await site.leads()) == 1  # CORS guards scripts' reading, not posting


async def test_a_star_allows_every_origin(open_site: OpenSite) -> None:
    site = await open_site(form_allowed_origins="*")
    preflight = await site.http.options("/leads", headers={"Origin": "https://any.example", **PREFLIGHT})
    assert (preflight.status, preflight.headers["Access-Control-Allow-Origin"]) == (204, "*")
    response = await site.post(json={"email": "ada@example.com"}, headers={"Origin": "https://any.example"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_with_no_origins_configured_no_page_may_read_the_answer(open_site: OpenSite) -> None:
    site = await open_site(form_allowed_origins="")
    preflight = await site.http.options("/leads", headers={"Origin": SITE, **PREFLIGHT})
    assert preflight.status == 403
    response = await site.post(json={"email": "ada@example.com"}, headers={"Origin": SITE})
    assert response.status == 201 and "Access-Control-Allow-Origin" not in response.headers


async def test_past_the_rate_limit_the_answer_is_429_with_retry_after(open_site: OpenSite) -> None:
    site = await open_site(leads_rate_limit="3/minute")
    for i in range(3):
        await site.lead(email=f"lead{i}@example.com")
    response = await site.post(json={"email": "one-more@example.com"}, headers={"Origin": SITE})
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert (await response.json())["error"] == "too_many_requests"
    assert response.headers["Access-Control-Allow-Origin"] == SITE  # a page can say "try later"
    assert len(await site.leads()) == 3
    # The form and the preflight are not leads: they are never limited.
    assert (await site.http.get("/forms/lead")).status == 200
    assert (await site.http.options("/leads", headers={"Origin": SITE, **PREFLIGHT})).status == 204
