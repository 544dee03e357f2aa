"""`POST /webhooks/telegram`: updates pushed by Telegram in webhook mode.

Telegram sends the secret we gave `setWebhook` in `X-Telegram-Bot-Api-Secret-Token`; an update
without it is refused (401) and has no effect.
"""

from __future__ import annotations

import hmac
import logging

from aiogram.types import Update
from aiohttp import web
from pydantic import ValidationError

from crm.domain.errors import InvalidInput
from gateway.http import BadRequest, error_response, json_object
from gateway.keys import SETTINGS, TELEGRAM

log = logging.getLogger("gateway.telegram")
routes = web.RouteTableDef()


@routes.post("/webhooks/telegram")
async def telegram_update(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    bot = request.app.get(TELEGRAM)
    if bot is None:
        return error_response(503, "telegram_off", "the Telegram bot is off: set CRM_TELEGRAM_BOT_TOKEN")
    if bot.mode != "webhook":
        return error_response(
            409, "telegram_polling", "the gateway polls Telegram; set CRM_TELEGRAM_MODE=webhook"
        )
    # The header's bytes as sent: bytes that are not UTF-8 are kept by aiohttp as surrogate escapes.
    given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "").encode("utf-8", "surrogateescape")
    if not hmac.compare_digest(given, (settings.telegram_webhook_secret or "").encode()):
        return error_response(401, "unauthorized", "wrong or missing X-Telegram-Bot-Api-Secret-Token")
    try:
        update = Update.model_validate(json_object(await request.read()), context={"bot": bot.bot})
    except (BadRequest, InvalidInput, ValidationError):
        return error_response(400, "bad_update", "the body is not a Telegram Update")
    await bot.dispatcher.feed_update(bot.bot, update)
    return web.json_response({"ok": True})
