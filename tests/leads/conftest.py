"""A gateway with the agents' Telegram (a local Bot API server) and mail (a local SMTP server);
tests post leads as web pages, browsers and scripts do, and look at what agents and the sales
mailbox get."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from sqlalchemy import select

from crm.domain.clock import ShiftedClock
from crm.domain.models import Agent, Client, Lead, OutboxMessage
from crm.service import Crm
from crm.storage.store import Store
from gateway.app import create_app
from gateway.keys import CRM, MAIL, STORE, TELEGRAM
from gateway.settings import Settings
from tests.bots.conftest import bot_api, bot_settings, clock, free_port  # noqa: F401  # fixtures
from tests.fakes.bot_api import BotApiServer
from tests.leads.mailbox import Mailbox

SALES = "sales@example.com"
SITE = "https://www.example.com"
AiohttpClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def mailbox() -> AsyncIterator[Mailbox]:
    box = Mailbox(free_port())
    await box.start()
    yield box
    await box.stop()


@pytest.fixture
def lead_settings(bot_settings: Settings, mailbox: Mailbox) -> Settings:  # noqa: F811
    return bot_settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mailbox.port,
            "smtp_starttls": False,
            "mail_from": "crm@example.com",
            "leads_notify_email": SALES,
            "form_allowed_origins": SITE,
            "leads_rate_limit": "1000/minute",
        }
    )


@dataclass
class Site:
    """The gateway as a web page, a browser and a script see it, plus the agents' and the sales
    team's inboxes."""

    http: TestClient[Any, Any]
    bot_api: BotApiServer
    mailbox: Mailbox
    clock: ShiftedClock
    settings: Settings

    @property
    def app(self) -> web.Application:
        app: web.Application | None = self.http.app
        assert app is not None
        return app

    @property
    def store(self) -> Store:
        return self.app[STORE]

    @property
    def crm(self) -> Crm:
        return self.app[CRM]

    async def post(self, path: str = "/leads", **kwargs: Any) -> ClientResponse:
        return await self.http.post(path, allow_redirects=False, **kwargs)

    async def lead(self, expect: int = 201, **fields: Any) -> Any:
        """A script posts a lead as JSON; returns the answer's JSON."""
        response = await self.post(json=fields)
        body = await response.json()
        assert response.status == expect, (response.status, body)
        return body

    async def agent(
        self, name: str, phone: str, chat_id: int | None = None, *, on_duty: bool = True, role: str = "agent"
    ) -> Agent:
        """An agent, with their Telegram chat bound when `chat_id` is given."""
        async with self.store.session() as s:
            agent = await self.crm.agents.add(s, name, phone=phone, role=role)
            if chat_id is not None:
                await self.crm.agents.bind_chat(s, agent.invite_code or "", chat_id=chat_id, user_id=chat_id)
            if not on_duty:
                await self.crm.agents.set_duty(s, agent.id, False)
            return agent

    async def duty(self, agent: Agent, on: bool) -> None:
        async with self.store.session() as s:
            await self.crm.agents.set_duty(s, agent.id, on)

    async def client(
        self, name: str, *, phone: str | None = None, email: str | None = None, owner: Agent | None = None
    ) -> int:
        async with self.store.session() as s:
            if phone is not None:
                match = await self.crm.clients.find_or_create_by_phone(s, phone, name=name)
            else:
                assert email is not None
                match = await self.crm.clients.find_or_create_by_email(s, email, name=name)
            if phone is not None and email is not None:
                from crm.services.clients import ClientDraft

                await self.crm.clients.update(s, match.client_id, ClientDraft(emails=[email]))
            if owner is not None:
                await self.crm.clients.set_owner_if_none(s, match.client_id, owner.id)
            return int(match.client_id)

    async def leads(self) -> list[Lead]:
        async with self.store.reading() as s:
            return list((await s.execute(select(Lead).order_by(Lead.id))).scalars())

    async def clients(self) -> list[Client]:
        async with self.store.reading() as s:
            return list((await s.execute(select(Client).order_by(Client.id))).scalars())

    async def owner_of(self, client_id: int) -> int | None:
        async with self.store.reading() as s:
            client = await s.get(Client, client_id)
            assert client is not None
            return int(client.owner_id) if client.owner_id is not None else None

    async def outbox(self, channel: str) -> list[OutboxMessage]:
        async with self.store.reading() as s:
            rows = await s.execute(
                select(OutboxMessage).where(OutboxMessage.channel == channel).order_by(OutboxMessage.id)
            )
            return list(rows.scalars())


OpenSite = Callable[..., Awaitable[Site]]


@pytest.fixture
async def open_site(
    lead_settings: Settings,
    bot_api: BotApiServer,  # noqa: F811
    mailbox: Mailbox,
    clock: ShiftedClock,  # noqa: F811
    aiohttp_client: AiohttpClient,
) -> OpenSite:
    """Start the gateway with settings changed by `overrides` (a new app on the test's database
    each time: a second call after `site.http.close()` is a restart).

    `aiohttp_client` comes last so that the gateway stops before its database is dropped and
    its SMTP and Bot API servers go away (fixtures are torn down in reverse order)."""

    async def start(**overrides: Any) -> Site:
        settings = lead_settings.model_copy(update=overrides)
        http = await aiohttp_client(create_app(settings, clock=clock), server_kwargs={"port": settings.port})
        await bot_api.next_call("setWebhook")
        app = http.app
        assert app is not None
        app[TELEGRAM].sender.first_retry = 0.05
        app[TELEGRAM].sender.limits.chat_interval = 0.05
        if MAIL in app:
            app[MAIL].first_retry = 0.05
        return Site(http, bot_api, mailbox, clock, settings)

    return start


@pytest.fixture
async def site(open_site: OpenSite) -> Site:
    return await open_site()


def routing_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routing.toml"
    path.write_text(text, encoding="utf-8")
    return path
