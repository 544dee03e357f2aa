"""An agent leaves: everything they own moves to a colleague in one transaction, history stays.

What moves: the clients they own, their open deals and their open tasks. What stays: who took
past calls, who wrote notes and interactions, who did the done tasks and closed deals. The agent
is retired, not deleted: no longer rung, routed, reminded or bound to a chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.models import Agent, Client, Deal, Task
from crm.services import notices
from crm.services.agents import cut_off_chat
from crm.storage.rows import rows_changed


@dataclass(frozen=True, slots=True)
class HandedOver:
    """What moved."""

    agent_id: int
    to_agent_id: int
    clients: int
    deals: int
    tasks: int


@dataclass(frozen=True, slots=True)
class Holdings:
    """What an agent owns now (for a confirmation before the hand-over)."""

    clients: int
    deals: int
    tasks: int


class Handover:
    """Agents leaving; every method works inside the caller's unit of work (session)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def holdings(self, s: AsyncSession, agent_id: int) -> Holdings:
        clients = await s.execute(select(func.count()).select_from(Client).where(Client.owner_id == agent_id))
        deals = await s.execute(
            select(func.count()).select_from(Deal).where(Deal.owner_id == agent_id, Deal.closed_at.is_(None))
        )
        tasks = await s.execute(
            select(func.count()).select_from(Task).where(Task.agent_id == agent_id, Task.done.is_(False))
        )
        return Holdings(int(clients.scalar_one()), int(deals.scalar_one()), int(tasks.scalar_one()))

    async def check(self, s: AsyncSession, agent_id: int, to_agent_id: int) -> tuple[Agent, Agent]:
        """Both agents, or the error that makes this hand-over impossible."""
        if agent_id == to_agent_id:
            raise InvalidInput({"reassign_to": "an agent cannot hand over to themselves"})
        leaving = await s.get(Agent, agent_id, with_for_update=True)
        if leaving is None:
            raise NotFound(f"no agent with id {agent_id}")
        if leaving.removed_at is not None:
            raise Conflict(f"agent {agent_id} ({leaving.name}) has left already")
        taking = await s.get(Agent, to_agent_id, with_for_update=True)
        if taking is None:
            raise InvalidInput({"reassign_to": f"no agent with id {to_agent_id}"})
        if taking.removed_at is not None:
            raise InvalidInput({"reassign_to": f"agent {to_agent_id} ({taking.name}) has left"})
        if leaving.role == "admin":
            others = await s.execute(
                select(func.count())
                .select_from(Agent)
                .where(Agent.role == "admin", Agent.removed_at.is_(None), Agent.id != agent_id)
            )
            if int(others.scalar_one()) == 0:
                raise Conflict(f"{leaving.name} is the last admin: make another agent admin first")
        return leaving, taking

    async def perform(self, s: AsyncSession, agent_id: int, to_agent_id: int) -> HandedOver:
        """Retire `agent_id`, moving their clients, open deals and open tasks to `to_agent_id`."""
        leaving, taking = await self.check(s, agent_id, to_agent_id)
        now = self.clock.now()
        clients = await s.execute(
            update(Client).where(Client.owner_id == agent_id).values(owner_id=to_agent_id)
        )
        deals = await s.execute(
            update(Deal)
            .where(Deal.owner_id == agent_id, Deal.closed_at.is_(None))
            .values(owner_id=to_agent_id, updated_at=now)
        )
        tasks = await s.execute(
            update(Task).where(Task.agent_id == agent_id, Task.done.is_(False)).values(agent_id=to_agent_id)
        )
        moved = HandedOver(
            agent_id,
            to_agent_id,
            clients=rows_changed(clients),
            deals=rows_changed(deals),
            tasks=rows_changed(tasks),
        )
        await cut_off_chat(
            s,
            leaving,
            f"You have been removed from the team's bot. Your clients and open work went to {taking.name}. "
            "Thank you!",
            clock=self.clock,
        )
        leaving.removed_at = now
        leaving.on_duty = False
        leaving.invite_code = None
        leaving.invite_created_at = None
        await notices.tell(
            s,
            to_agent_id,
            f"{leaving.name} has left; you now have their {_plural(moved.clients, 'client')}, "
            f"{_plural(moved.deals, 'open deal')} and {_plural(moved.tasks, 'open task')}. "
            "Send /clients and /tasks to see them.",
            clock=self.clock,
        )
        await s.flush()
        return moved


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
