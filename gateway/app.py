"""The gateway assembled in one place: `create_app(settings)` wires routes, middlewares and
everything with a lifetime (`cleanup_ctx`), so start-up and shutdown read top to bottom here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web

from bots.context import ClickToCall
from bots.telegram import TelegramBot
from crm.domain.clock import Clock
from crm.service import Crm
from crm.services.telephony import Telephony
from crm.storage.store import Store
from gateway import cors, health, leads, middlewares, routing_rules, telegram_webhook
from gateway.api import auth, clients, openapi, records
from gateway.http import MAX_BODY
from gateway.keys import (
    CRM,
    LEAD_LIMIT,
    MAIL,
    METRICS,
    REMINDERS,
    SETTINGS,
    STORE,
    SWEEPER,
    TELEGRAM,
    TELEPHONY,
    TWILIO,
)
from gateway.metrics import Metrics
from gateway.ratelimit import SlidingWindow
from gateway.settings import Settings
from gateway.workers import CallSweeper, Reminders, WalCheckpoints
from mail.sender import MailSender, SmtpServer
from telephony.twilio import webhooks as twilio_webhooks
from telephony.twilio.dialer import TwilioDialer
from telephony.twilio.parse import PROVIDER
from telephony.twilio.rest import TwilioRest

log = logging.getLogger("gateway")


def create_app(settings: Settings, *, clock: Clock | None = None, upgrade: bool = False) -> web.Application:
    """The whole gateway for `settings`. Nothing connects until the app starts; a routing file
    that does not parse raises `SettingsError` here, one naming an unknown agent at start-up."""
    app = web.Application(
        client_max_size=MAX_BODY,
        middlewares=[middlewares.metrics, cors.middleware, middlewares.errors],
    )
    app[SETTINGS] = settings
    app[CRM] = Crm(
        region=settings.default_region,
        clock=clock,
        routing=routing_rules.load(settings),
        lead_mail_to=settings.leads_notify_email if settings.smtp_host else None,
    )
    app[METRICS] = Metrics()
    app[cors.CORS] = cors.Cors(settings.allowed_origins)
    app[LEAD_LIMIT] = SlidingWindow(settings.rate_limit)
    app.cleanup_ctx.append(_store(settings, upgrade=upgrade))
    app.cleanup_ctx.append(_workers)
    app.cleanup_ctx.append(_twilio)
    app.cleanup_ctx.append(_telegram)
    app.cleanup_ctx.append(_mail)
    app.add_routes(health.routes)
    app.add_routes(leads.routes)
    app.add_routes(telegram_webhook.routes)
    app.add_routes(twilio_webhooks.routes)
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
        try:
            if upgrade:
                await store.upgrade()
            await routing_rules.verify(store, app[CRM].routing.rules)
        except BaseException:
            await store.close()
            raise
        app[STORE] = store
        app[TELEPHONY] = telephony = Telephony(store, app[CRM].first_rings, app[CRM].calls)
        app[METRICS].watch_group_commits([telephony.group_commit, store.shared_writes])
        yield
        await telephony.close()
        await store.close()

    return ctx


async def _workers(app: web.Application) -> AsyncIterator[None]:
    """Background work: task reminders, the sweep of silent calls, SQLite's checkpoints."""
    reminders = Reminders(app[STORE], app[CRM])
    sweeper = CallSweeper(app[STORE], app[CRM], timeout_s=app[SETTINGS].missed_call_timeout)
    app[REMINDERS], app[SWEEPER] = reminders, sweeper
    checkpoints = WalCheckpoints(app[STORE], app[CRM])
    reminders.start()
    sweeper.start()
    if app[STORE].is_sqlite:
        checkpoints.start()
    yield
    await checkpoints.stop()
    await sweeper.stop()
    await reminders.stop()


async def _twilio(app: web.Application) -> AsyncIterator[None]:
    """Twilio's REST API (recordings, and click-to-call when a caller ID is set)."""
    settings = app[SETTINGS]
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        yield
        return
    rest = TwilioRest(settings.twilio_account_sid, settings.twilio_auth_token, settings.twilio_api_url)
    app[TWILIO] = rest
    dialer = None
    if settings.twilio_caller_id:
        dialer = TwilioDialer(
            rest,
            app[CRM].calls,
            app[STORE],
            app[CRM].clock,
            public_url=settings.public_url,
            caller_id=settings.twilio_caller_id,
        )
        app[STORE].on_outbox_commit(dialer.channel, dialer.wake)
        dialer.start()
    yield
    if dialer is not None:
        await dialer.stop()
    await rest.close()


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
        fetch_media=_recording_fetcher(app),
        click_to_call=_click_to_call(settings),
        paid_broadcast=settings.telegram_paid_broadcast,
    )
    app[TELEGRAM] = bot
    await bot.start()
    yield
    await bot.stop()


async def _mail(app: web.Application) -> AsyncIterator[None]:
    """The mail sender (lead mail), when an SMTP server is set."""
    settings = app[SETTINGS]
    if not settings.smtp_host:
        yield
        return
    server = SmtpServer(
        host=settings.smtp_host,
        port=settings.smtp_port,
        user=settings.smtp_user,
        password=settings.smtp_password,
        starttls=settings.smtp_starttls,
    )
    sender = MailSender(server, app[STORE], app[CRM], sender=settings.mail_from)
    app[MAIL] = sender
    app[STORE].on_outbox_commit(sender.channel, sender.wake)
    sender.start()
    yield
    await sender.stop()


def _recording_fetcher(app: web.Application) -> Callable[[str], Awaitable[tuple[str, bytes]]] | None:
    rest = app.get(TWILIO)
    if rest is None:
        return None

    async def fetch(url: str) -> tuple[str, bytes]:
        recording = await rest.fetch_recording(url)
        return recording.filename, recording.data

    return fetch


def _click_to_call(settings: Settings) -> ClickToCall | None:
    if settings.twilio_caller_id and settings.twilio_account_sid and settings.twilio_auth_token:
        return ClickToCall(provider=PROVIDER, caller_id=settings.twilio_caller_id)
    return None
