"""The gateway assembled in one place: `create_app(settings)` wires routes, middlewares and
everything with a lifetime (`cleanup_ctx`), so start-up and shutdown read top to bottom here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from bots.telegram import TelegramBot
from crm.clock import Clock
from crm.service import Crm
from crm.store import Store
from gateway import health, middlewares, telegram_webhook
from gateway.api import auth, clients, openapi, records
from gateway.http import MAX_BODY
from gateway.keys import CRM, METRICS, REMINDERS, SETTINGS, STORE, TELEGRAM
from gateway.metrics import Metrics
from gateway.settings import Settings
from gateway.workers import Reminders

log = logging.getLogger("gateway")


def create_app(settings: Settings, *, clock: Clock | None = None, upgrade: bool = False) -> web.Application:
    """The whole gateway for `settings`. Nothing connects until the app starts."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[middlewares.metrics, middlewares.errors],
    )
    app[SETTINGS] = settings
    app[CRM] = Crm(region=settings.default_region, clock=clock)
    app[METRICS] = Metrics()
    app.cleanup_ctx.append(_store(settings, upgrade=upgrade))
    app.cleanup_ctx.append(_reminders)
    app.cleanup_ctx.append(_telegram)
    app.add_routes(health.routes)
    app.add_routes(telegram_webhook.routes)
    app.add_subapp("/api/v1", _api())
    return app


def _api() -> web.Application:
    api = web.Application(client_max_size=MAX_BODY, middlewares=[auth.bearer])
    api.add_routes(openapi.routes)
    api.add_routes(clients.routes)
    api.add_routes(records.routes)
    return api


def _store(settings: Settings, *, upgrade: bool) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        store = Store(settings.database_url)
        if upgrade:
            await store.upgrade()
        app[STORE] = store
        yield
        await store.close()

    return ctx


async def _reminders(app: web.Application) -> AsyncIterator[None]:
    reminders = Reminders(app[STORE], app[CRM])
    app[REMINDERS] = reminders
    reminders.start()
    yield
    await reminders.stop()


async def _telegram(app: web.Application) -> AsyncIterator[None]:
    """The agents' bot, when a token is set; its outbox sender runs with it."""
    settings = app[SETTINGS]
    if not settings.telegram_bot_token:
        yield
        return
    bot = TelegramBot(
        token=settings.telegram_bot_token,
        api_url=settings.telegram_api_url,
        store=app[STORE],
        crm=app[CRM],
        mode=settings.telegram_mode,
        webhook_url=f"{settings.public_url}/webhooks/telegram",
        webhook_secret=settings.telegram_webhook_secret,
    )
    app[TELEGRAM] = bot
    await bot.start()
    yield
    await bot.stop()
