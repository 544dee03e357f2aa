"""The world the fuzz tests attack: the whole gateway (REST API, web-form leads, Twilio, Telegram
webhook) on loopback, with a few real records for ids to hit, and the one rule every answer obeys.

The rule (CONTRACT.md, HTTP and "Trust"): nothing a caller sends produces a 5xx, and every 4xx is
JSON of the shape `{"error": str, "detail": str}` or `{"error": "invalid", "fields": {...}}` (422),
except where the contract answers a browser with an HTML page.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, settings
from yarl import URL

from tests.fakes.twilio import TwilioSimulator
from tests.gateway.raw_http import raw_request

# A gate must fail the same way on every run and every machine, so by default the examples are
# derived from each test's name (`derandomize`) and nothing is remembered between runs: a red CI
# run is reproduced by running the same test. `CRM_FUZZ=explore` hunts for new failures instead:
# random examples, ten times as many (then keep what it finds as an attack test, as in
# tests/gateway/test_hostile_input.py).
_EXPLORE = os.environ.get("CRM_FUZZ", "gate") == "explore"
settings.register_profile(
    "gateway-gate",
    deadline=None,  # real HTTP and a real database: timings vary, and are not what we test
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # one gateway per test function, on purpose
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
settings.register_profile("gateway-explore", parent=settings.get_profile("gateway-gate"), derandomize=False)
_PROFILE = settings.get_profile("gateway-explore" if _EXPLORE else "gateway-gate")


def fuzz(examples: int) -> settings:
    """The fuzz tests' settings with `examples` examples (ten times as many when exploring)."""
    return settings(_PROFILE, max_examples=examples * (10 if _EXPLORE else 1))


@dataclass(frozen=True)
class Answer:
    """What the gateway answered one request, and the request, for the failure message."""

    request: str
    status: int
    content_type: str
    body: bytes

    def __str__(self) -> str:
        return f"{self.request} → {self.status} {self.content_type}: {self.body[:300]!r}"

    def obeys_the_contract(self, *, html_ok: bool = False) -> None:
        """No 5xx; a 4xx in the JSON error shape (or an HTML page where `html_ok`)."""
        assert self.status < 500, str(self)
        if not 400 <= self.status < 500:
            return
        if html_ok and self.content_type == "text/html":
            return
        assert self.content_type == "application/json", str(self)
        body = json.loads(self.body)
        assert isinstance(body, dict) and isinstance(body.get("error"), str), str(self)
        if body["error"] == "invalid" and "fields" in body:
            assert self.status == 422, str(self)
            fields = body["fields"]
            assert isinstance(fields, dict) and fields, str(self)
            assert all(isinstance(k, str) and isinstance(v, str) for k, v in fields.items()), str(self)
        else:
            assert isinstance(body.get("detail"), str) and body["detail"], str(self)


@dataclass
class World:
    """The gateway, a client session to reach it, Twilio towards it, a token, and real records."""

    server: TestServer
    http: aiohttp.ClientSession
    twilio: TwilioSimulator
    public_url: str
    token: str
    known_ids: tuple[int, ...]  # ids of a client, an agent, a call and a task that exist

    @property
    def base(self) -> str:
        return str(self.server.make_url("")).rstrip("/")

    async def send(
        self, method: str, target: str, *, headers: dict[str, str] | None = None, body: Any = None
    ) -> Answer:
        """One request to `target` (a path with its query string, already percent-encoded)."""
        async with self.http.request(
            method,
            URL(self.base + target, encoded=True),
            headers=headers,
            data=body,
            allow_redirects=False,
        ) as response:
            raw = await response.read()
        return Answer(f"{method} {target[:200]}", response.status, response.content_type, raw)

    async def send_raw(self, request_line: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> Answer:
        """One request written byte for byte on a socket (`METHOD /path`)."""
        raw = await raw_request(self.server.host, self.server.port, request_line, headers, body)
        what = f"{request_line!r} with {headers!r}"
        return Answer(what, raw.status, raw.content_type, raw.body)
