"""Who should take a call, a lead or a message: the client's owner while on duty, otherwise
the agents on duty, otherwise an admin. (Rules by source and country extend this.)"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Agent, Client


def reachable_by_phone_system(agent: Agent) -> bool:
    return bool(agent.sip_uri or agent.client_identity or agent.phone)


async def agents_for_call(s: AsyncSession, client_id: int | None) -> list[Agent]:
    """The agents to ring at once for a call from this client (possibly none)."""
    owner = await _owner(s, client_id)
    if owner is not None and owner.on_duty and reachable_by_phone_system(owner):
        return [owner]
    active = list(
        (await s.execute(select(Agent).where(Agent.removed_at.is_(None)).order_by(Agent.id))).scalars()
    )
    on_duty = [a for a in active if a.on_duty and reachable_by_phone_system(a)]
    if on_duty:
        return on_duty
    return [a for a in active if a.role == "admin" and reachable_by_phone_system(a)]


async def follow_up_agent(s: AsyncSession, client_id: int | None) -> Agent | None:
    """Who follows up a call nobody took: the client's owner, otherwise the first admin."""
    owner = await _owner(s, client_id)
    if owner is not None:
        return owner
    row = await s.execute(
        select(Agent).where(Agent.removed_at.is_(None), Agent.role == "admin").order_by(Agent.id).limit(1)
    )
    return row.scalar_one_or_none()


async def _owner(s: AsyncSession, client_id: int | None) -> Agent | None:
    if client_id is None:
        return None
    row = await s.execute(
        select(Agent)
        .join(Client, Client.owner_id == Agent.id)
        .where(Client.id == client_id, Agent.removed_at.is_(None))
    )
    return row.scalar_one_or_none()
