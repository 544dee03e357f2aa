"""A lead's unapplied details: the phone or e-mail a web form gave that the matched client does not
have. A form is a public door, so only an agent may add such a detail to the client, having read
the lead; here is that decision, and who may take it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import Conflict, Forbidden, NotFound
from crm.domain.models import Agent, Client, Lead
from crm.domain.phones import parse_phone
from crm.services import timeline
from crm.services.clients import Clients
from crm.storage.rows import require

Detail = Literal["phone", "email"]
DETAILS: tuple[Detail, ...] = ("phone", "email")
LABELS = {"phone": "phone", "email": "e-mail"}


@dataclass(frozen=True, slots=True)
class Applied:
    lead_id: int
    client_id: int
    client_name: str
    detail: Detail
    value: str


class LeadDetails:
    """An agent's decision to add a lead's detail to its client."""

    def __init__(self, clients: Clients, clock: Clock) -> None:
        self.clients = clients
        self.clock = clock

    async def apply(self, s: AsyncSession, lead_id: int, detail: Detail, *, agent: Agent) -> Applied:
        """Add the lead's unapplied `detail` to its client. Allowed to the agent the lead went to, the
        client's owner and admins. A detail that is another client's is refused: merging two clients
        is a decision of its own (`POST /api/v1/clients/{id}/merge`)."""
        lead = await require(s, Lead, lead_id, "lead")
        client = await s.get(Client, lead.client_id) if lead.client_id is not None else None
        if client is None:
            raise NotFound(f"the client of lead {lead_id} no longer exists")
        if agent.role != "admin" and agent.id not in (lead.assigned_agent_id, client.owner_id):
            raise Forbidden(
                "only the agent this lead went to, the client's owner or an admin can change the client"
            )
        pending = dict(lead.unapplied or {})
        value = pending.pop(detail, None)
        if value is None:
            raise Conflict(f"this lead has no {LABELS[detail]} left to add")
        try:
            async with s.begin_nested():
                if detail == "phone":
                    await _add_phone(s, self.clients, client, value)
                else:
                    await _add_email(s, self.clients, client, value)
        except IntegrityError:  # another writer gave it to someone meanwhile
            raise Conflict(f"{value} was just given to another client") from None
        lead.unapplied = pending or None
        await timeline.record(
            s,
            client.id,
            "note",
            f"Added the {LABELS[detail]} {value} from web-form lead {lead.id}",
            at=self.clock.now(),
            agent_id=agent.id,
            lead_id=lead.id,
        )
        await s.flush()
        return Applied(lead.id, client.id, client.name, detail, value)


async def _add_phone(s: AsyncSession, clients: Clients, client: Client, value: str) -> None:
    phone = parse_phone(value, clients.region)
    await _refuse_if_others(s, client, await clients.id_by_phone(s, phone.e164), phone.display)
    await clients.add_phone(s, client.id, phone)


async def _add_email(s: AsyncSession, clients: Clients, client: Client, value: str) -> None:
    await _refuse_if_others(s, client, await clients.id_by_email(s, value), value)
    await clients.add_email(s, client.id, value)


async def _refuse_if_others(s: AsyncSession, client: Client, owner_id: int | None, shown: str) -> None:
    if owner_id is None or owner_id == client.id:
        return
    other = await s.get(Client, owner_id)
    who = f"{other.name} (client {owner_id})" if other is not None else f"client {owner_id}"
    raise Conflict(f"{shown} is {who}'s; merge the two clients if they are one person")
