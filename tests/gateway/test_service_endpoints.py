"""Operators' endpoints: health for load balancers, metrics for Prometheus, the OpenAPI document."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient

from tests.gateway.conftest import Api


async def test_healthz_says_ok_while_the_database_answers(gateway: TestClient[Any, Any]) -> None:
    r = await gateway.get("/healthz")
    assert (r.status, await r.json()) == (200, {"status": "ok"})


async def test_healthz_is_503_when_the_database_is_gone(
    aiohttp_client: Any, settings: Any, clock: Any
) -> None:
    from gateway.app import create_app

    broken = settings.model_copy(update={"database_url": "postgresql+asyncpg://nobody@127.0.0.1:1/none"})
    client = await aiohttp_client(create_app(broken, clock=clock))
    r = await client.get("/healthz")
    assert r.status == 503
    assert (await r.json())["error"] == "unavailable"


async def test_metrics_count_requests_by_route(api: Api) -> None:
    await api.get("/clients/12345", expect=404)
    await api.get("/clients/67890", expect=404)
    text = await (await api.client.get("/metrics")).text()
    assert 'crm_http_requests_total{method="GET",route="/api/v1/clients/{id}",status="404"} 2.0' in text
    assert "crm_http_request_duration_seconds_bucket" in text


async def test_unknown_urls_and_methods_answer_json(gateway: TestClient[Any, Any]) -> None:
    r = await gateway.get("/nope")
    assert (r.status, (await r.json())["error"]) == (404, "not_found")
    r = await gateway.delete("/healthz")
    assert (r.status, (await r.json())["error"]) == (405, "method_not_allowed")


async def test_openapi_describes_every_route(gateway: TestClient[Any, Any]) -> None:
    r = await gateway.get("/api/v1/openapi.json")
    doc = await r.json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) >= {
        "/lookup",
        "/clients",
        "/clients/{id}",
        "/clients/{id}/merge",
        "/calls",
        "/calls/{id}",
        "/leads",
        "/tasks",
        "/agents",
    }
    card = doc["components"]["schemas"]["Card"]["properties"]
    assert {
        "id",
        "name",
        "phones",
        "emails",
        "company",
        "tags",
        "owner",
        "local_time",
        "created_at",
        "last_interaction_at",
        "open_deals",
        "open_tasks",
        "recent_interactions",
        "custom",
    } <= set(card)
    api_app = next(iter(gateway.app._subapps))
    served = {
        route.resource.canonical.removeprefix("/api/v1").replace(r"{id:\d+}", "{id}")
        for route in api_app.router.routes()
        if route.resource is not None
    }
    assert "/clients/{id}/merge" in served
    assert served - {"/openapi.json"} == set(doc["paths"])
