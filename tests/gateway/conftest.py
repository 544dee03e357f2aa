"""The gateway served on loopback (real HTTP, aiohttp's test server) over the test's database."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from crm.domain.clock import FrozenClock
from gateway.app import create_app
from gateway.keys import CRM, STORE
from gateway.settings import Settings

AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, default_region="US", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def gateway(
    aiohttp_client: AiohttpClient, settings: Settings, clock: FrozenClock
) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(settings, clock=clock))


@pytest.fixture
async def token(gateway: TestClient[Any, Any]) -> str:
    async with gateway.app[STORE].session() as s:
        return await gateway.app[CRM].tokens.create(s, "tests")


@pytest.fixture
async def api(gateway: TestClient[Any, Any], token: str) -> Api:
    return Api(gateway, token)


class Api:
    """The REST API as a script would use it: bearer token, JSON in and out."""

    def __init__(self, client: TestClient[Any, Any], token: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, expect: int, **kwargs: Any) -> Any:
        response = await self.client.request(method, "/api/v1" + path, headers=self.headers, **kwargs)
        body = await response.json()
        assert response.status == expect, (response.status, body)
        return body

    async def get(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return await self.call("GET", path, expect, **kwargs)

    async def post(self, path: str, json: Any, expect: int = 201) -> Any:
        return await self.call("POST", path, expect, json=json)

    async def patch(self, path: str, json: Any, expect: int = 200) -> Any:
        return await self.call("PATCH", path, expect, json=json)
