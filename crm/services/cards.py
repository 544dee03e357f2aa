"""The client card: everything an agent needs at a glance, built for many clients in a few queries.

One builder serves the API (`CARD` of CONTRACT.md), call pops, `/find` and lead notices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Select, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.models import Agent, Client, ClientEmail, ClientPhone, Deal, Interaction, Stage, Task
from crm.domain.phones import format_international, local_time, region_of

RECENT = 5


@dataclass(frozen=True, slots=True)
class AgentRef:
    id: int
    name: str


@dataclass(frozen=True, slots=True)
class PhoneView:
    e164: str | None  # None: stored as written, could not be read as a number
    raw: str

    @property
    def display(self) -> str:
        return format_international(self.e164) if self.e164 else self.raw


@dataclass(frozen=True, slots=True)
class DealView:
    id: int
    title: str
    stage: str
    amount: int | None
    owner_id: int | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TaskView:
    id: int
    title: str
    due_at: datetime
    agent_id: int | None
    call_id: int | None


@dataclass(frozen=True, slots=True)
class InteractionView:
    kind: str
    at: datetime
    summary: str
    agent: AgentRef | None


@dataclass(slots=True)
class Card:
    id: int
    kind: str
    name: str
    company: AgentRef | None  # a company's id and name (same shape as a reference)
    phones: list[PhoneView]
    emails: list[str]
    tags: list[str]
    owner: AgentRef | None
    custom: dict[str, Any]
    notes: str | None
    created_at: datetime
    updated_at: datetime
    last_interaction_at: datetime | None
    local_time: datetime | None = None
    region: str | None = None
    open_deals: list[DealView] = field(default_factory=list)
    open_tasks: list[TaskView] = field(default_factory=list)
    recent_interactions: list[InteractionView] = field(default_factory=list)


# Built once (a card goes out for every answered call): building a statement costs about what
# running it does. `ids` are the clients' ids.
_IDS: BindParameter[list[int]] = bindparam("ids", expanding=True)
_CLIENTS = select(Client).where(Client.id.in_(_IDS))
_PHONES = (
    select(ClientPhone.client_id, ClientPhone.e164, ClientPhone.raw)
    .where(ClientPhone.client_id.in_(_IDS))
    .order_by(ClientPhone.client_id, ClientPhone.position, ClientPhone.id)
)
_EMAILS = (
    select(ClientEmail.client_id, ClientEmail.raw)
    .where(ClientEmail.client_id.in_(_IDS))
    .order_by(ClientEmail.client_id, ClientEmail.position, ClientEmail.id)
)
_OPEN_DEALS = (
    select(Deal.id, Deal.client_id, Deal.title, Stage.name, Deal.amount, Deal.owner_id, Deal.created_at)
    .join(Stage, Stage.id == Deal.stage_id)
    .where(Deal.client_id.in_(_IDS), Deal.closed_at.is_(None))
    .order_by(Deal.id)
)
_OPEN_TASKS = (
    select(Task.id, Task.client_id, Task.title, Task.due_at, Task.agent_id, Task.call_id)
    .where(Task.client_id.in_(_IDS), Task.done.is_(False))
    .order_by(Task.due_at, Task.id)
)
_RANKED = (
    select(
        Interaction.client_id,
        Interaction.kind,
        Interaction.at,
        Interaction.summary,
        Interaction.agent_id,
        func.row_number()
        .over(partition_by=Interaction.client_id, order_by=(Interaction.at.desc(), Interaction.id.desc()))
        .label("n"),
    )
    .where(Interaction.client_id.in_(_IDS))
    .subquery()
)
_RECENT = select(_RANKED).where(_RANKED.c.n <= bindparam("recent")).order_by(_RANKED.c.client_id, _RANKED.c.n)
_AGENT_NAMES = select(Agent.id, Agent.name).where(Agent.id.in_(_IDS))
_CLIENT_NAMES = select(Client.id, Client.name).where(Client.id.in_(_IDS))


class Cards:
    """Builds cards at the clock's present time (a card shows the client's local time)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def build(self, s: AsyncSession, client_id: int, *, recent: int = RECENT) -> Card | None:
        cards = await self.build_many(s, [client_id], recent=recent)
        return cards[0] if cards else None

    async def build_many(self, s: AsyncSession, ids: Sequence[int], *, recent: int = RECENT) -> list[Card]:
        """Cards for `ids`, in that order; ids that do not exist are left out."""
        if not ids:
            return []
        wanted = list(dict.fromkeys(ids))
        clients = {c.id: c for c in (await s.execute(_CLIENTS, {"ids": wanted})).scalars()}
        if not clients:
            return []
        present = {"ids": list(clients)}

        phones: dict[int, list[PhoneView]] = defaultdict(list)
        for row in await s.execute(_PHONES, present):
            phones[row.client_id].append(PhoneView(row.e164, row.raw))

        emails: dict[int, list[str]] = defaultdict(list)
        for erow in await s.execute(_EMAILS, present):
            emails[erow.client_id].append(erow.raw)

        deals: dict[int, list[DealView]] = defaultdict(list)
        for drow in await s.execute(_OPEN_DEALS, present):
            deals[drow.client_id].append(
                DealView(drow.id, drow.title, drow.name, drow.amount, drow.owner_id, drow.created_at)
            )

        tasks: dict[int, list[TaskView]] = defaultdict(list)
        for trow in await s.execute(_OPEN_TASKS, present):
            tasks[trow.client_id].append(
                TaskView(trow.id, trow.title, trow.due_at, trow.agent_id, trow.call_id)
            )

        history: dict[int, list[tuple[str, datetime, str, int | None]]] = defaultdict(list)
        for row in await s.execute(_RECENT, {**present, "recent": recent}):
            history[row.client_id].append((row.kind, row.at, row.summary, row.agent_id))

        agent_ids = {c.owner_id for c in clients.values() if c.owner_id is not None}
        agent_ids |= {a for items in history.values() for (_, _, _, a) in items if a is not None}
        agents = await _names(s, _AGENT_NAMES, agent_ids)
        companies = await _names(
            s, _CLIENT_NAMES, {c.company_id for c in clients.values() if c.company_id is not None}
        )

        now = self.clock.now()
        cards = []
        for client_id in wanted:
            client = clients.get(client_id)
            if client is None:
                continue
            numbers = phones.get(client_id, [])
            first = next((p.e164 for p in numbers if p.e164), None)
            cards.append(
                Card(
                    id=client.id,
                    kind=client.kind,
                    name=client.name,
                    company=_ref(companies, client.company_id),
                    phones=numbers,
                    emails=emails.get(client_id, []),
                    tags=list(client.tags or []),
                    owner=_ref(agents, client.owner_id),
                    custom=dict(client.custom or {}),
                    notes=client.notes,
                    created_at=client.created_at,
                    updated_at=client.updated_at,
                    last_interaction_at=client.last_interaction_at,
                    local_time=local_time(first, now) if first else None,
                    region=region_of(first) if first else None,
                    open_deals=deals.get(client_id, []),
                    open_tasks=tasks.get(client_id, []),
                    recent_interactions=[
                        InteractionView(kind, at, summary, _ref(agents, agent_id))
                        for kind, at, summary, agent_id in history.get(client_id, [])
                    ],
                )
            )
        return cards


async def _names(s: AsyncSession, names: Select[int, str], ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return {row.id: row.name for row in await s.execute(names, {"ids": list(ids)})}


def _ref(names: dict[int, str], key: int | None) -> AgentRef | None:
    return AgentRef(key, names[key]) if key is not None and key in names else None
