"""Operators' endpoints: health for load balancers, metrics for Prometheus, the OpenAPI document."""

from __future__ import annotations

import asyncio
import socket
from ipaddress import ip_address
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, make_mocked_request

from crm.domain.clock import FrozenClock
from gateway.api.auth import from_this_machine
from gateway.app import create_app
from gateway.keys import CRM, STORE
from gateway.settings import Settings
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


async def test_metrics_answer_a_scraper_on_this_machine(gateway: TestClient[Any, Any]) -> None:
    r = await gateway.get("/metrics")  # the test client is a loopback peer
    assert r.status == 200
    assert "crm_http_requests_total" in await r.text()


async def test_metrics_forwarded_by_a_proxy_on_this_machine_need_a_token(
    gateway: TestClient[Any, Any], token: str
) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.7"}
    anonymous = await gateway.get("/metrics", headers=forwarded)
    assert anonymous.status == 401
    assert (await anonymous.json())["error"] == "unauthorized"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    forged = await gateway.get("/metrics", headers={**forwarded, "Authorization": "Bearer crm_forged"})
    assert forged.status == 403
    good = await gateway.get("/metrics", headers={**forwarded, "Authorization": f"Bearer {token}"})
    assert good.status == 200 and "crm_http_requests_total" in await good.text()


def this_machines_address() -> str | None:
    """An address of this machine that is not loopback (the one its default route leaves from),
    or None. (A UDP socket's connect sends nothing; it only picks the route.)"""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("198.51.100.1", 9))  # TEST-NET-2: any routed address will do
            address = str(probe.getsockname()[0])
    except OSError:
        return None
    return None if ip_address(address).is_loopback else address


async def test_metrics_from_another_machine_need_a_valid_token(
    aiohttp_server: Any, settings: Settings, clock: FrozenClock
) -> None:
    address = this_machines_address()
    if address is None:
        pytest.skip("this machine has no address but loopback to be reached from")
    server = await aiohttp_server(create_app(settings, clock=clock), host=address)
    async with server.app[STORE].session() as s:
        token = await server.app[CRM].tokens.create(s, "prometheus")
    url = f"http://{address}:{server.port}/metrics"  # so the gateway's peer is `address`, not loopback
    async with aiohttp.ClientSession() as http:
        async with http.get(url) as anonymous:
            assert anonymous.status == 401
        async with http.get(url, headers={"Authorization": "Bearer crm_forged"}) as forged:
            assert forged.status == 403
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as good:
            assert good.status == 200
        async with server.app[STORE].session() as s:
            await server.app[CRM].tokens.revoke(s, "prometheus")
        async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as revoked:
            assert revoked.status == 401


class Peer(asyncio.Transport):
    """A connection from `host`, as aiohttp's request reads its peer (`get_extra_info`)."""

    def __init__(self, host: str) -> None:
        super().__init__()
        self.host = host

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return (self.host, 40123) if name == "peername" else default


@pytest.mark.parametrize(
    ("peer", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("::ffff:127.0.0.1", {}, True),
        ("203.0.113.5", {}, False),
        ("10.0.0.8", {}, False),  # a private network is not this machine
        ("127.0.0.1", {"Forwarded": "for=203.0.113.5"}, False),
        ("127.0.0.1", {"X-Real-IP": "203.0.113.5"}, False),
    ],
)
def test_only_a_loopback_peer_forwarding_nobody_is_this_machine(
    peer: str, headers: dict[str, str], allowed: bool
) -> None:
    request = make_mocked_request("GET", "/metrics", headers=headers, transport=Peer(peer))
    assert request.remote == peer
    assert from_this_machine(request) is allowed


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
