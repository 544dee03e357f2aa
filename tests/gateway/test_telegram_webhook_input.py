"""Attacks on the Telegram webhook that each gave a 500 with a traceback: now a 4xx in the JSON
error shape, and the bot does nothing."""

from __future__ import annotations

import json

import aiohttp
from sqlalchemy import func, select

from crm.domain.models import Client
from tests.bots.conftest import SECRET, BotWorld, bot_api, bot_settings, clock, world  # noqa: F401  # fixtures
from tests.gateway.raw_http import raw_request

BAD_UPDATE = {"error": "bad_update", "detail": "the body is not a Telegram Update"}


async def _post(world: BotWorld, body: bytes, secret: str = SECRET) -> tuple[int, object]:  # noqa: F811
    headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": secret}
    async with (
        aiohttp.ClientSession() as http,
        http.post(world.server.make_url("/webhooks/telegram"), data=body, headers=headers) as response,
    ):
        return response.status, await response.json()


async def test_an_update_nested_100000_deep_is_refused(world: BotWorld) -> None:  # noqa: F811
    assert await _post(world, b"[" * 100_000 + b"]" * 100_000) == (400, BAD_UPDATE)
    assert await _post(world, b'{"update_id": 1, "message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}") == (
        400,
        BAD_UPDATE,
    )


async def test_an_update_with_ids_past_64_bits_is_refused(world: BotWorld) -> None:  # noqa: F811
    update = world.bot_api.user_message(chat_id=2002, text="hello", user_id=2002)
    update["message"]["chat"]["id"] = update["message"]["from"]["id"] = 2**64
    assert await _post(world, json.dumps(update).encode()) == (400, BAD_UPDATE)
    async with world.store.reading() as s:
        assert (await s.execute(select(func.count()).select_from(Client))).scalar_one() == 0


async def test_a_secret_header_that_is_not_utf8_is_refused(world: BotWorld) -> None:  # noqa: F811
    update = json.dumps(world.bot_api.user_message(chat_id=2002, text="hello", user_id=2002)).encode()
    server = world.server
    for secret in [b"\xff\xfe", SECRET.encode() + b"\xff"]:
        answer = await raw_request(
            server.host,
            server.port,
            b"POST /webhooks/telegram",
            [(b"X-Telegram-Bot-Api-Secret-Token", secret), (b"Content-Type", b"application/json")],
            update,
        )
        assert (answer.status, answer.json()) == (
            400,
            {
                "error": "bad_request",
                "detail": "the X-Telegram-Bot-Api-Secret-Token header is not UTF-8 text",
            },
        )
    assert await _post(world, update, secret="é") == (
        401,
        {"error": "unauthorized", "detail": "wrong or missing X-Telegram-Bot-Api-Secret-Token"},
    )
