"""The call log: its queries, and what agents record about a call after it (its outcome, notes).
The state machine that moves a call is `crm.services.call_flow`."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import Forbidden, InvalidInput
from crm.domain.models import Agent, Call, Task
from crm.domain.paging import Page, paginate
from crm.services import timeline
from crm.services.deals import Deals
from crm.storage.rows import require

STATUSES = ("ringing", "in_progress", "completed", "missed", "busy", "failed")
OUTCOMES = ("interested", "callback", "not_interested", "won", "wrong_number")


OUTCOME_LABELS = {
    "interested": "Interested",
    "callback": "Callback",
    "not_interested": "Not interested",
    "won": "Won",
    "wrong_number": "Wrong number",
}
CALLBACK_AFTER = timedelta(days=1)


class CallLog:
    """Calls as records; every method works inside the caller's unit of work (session)."""

    def __init__(self, deals: Deals, clock: Clock) -> None:
        self.deals = deals
        self.clock = clock

    async def get(self, s: AsyncSession, call_id: int) -> Call:
        return await require(s, Call, call_id, "call")

    async def search(
        self,
        s: AsyncSession,
        *,
        client_id: int | None = None,
        status: str | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Call]:
        """The call log, oldest first, filtered by client, status and start time."""
        stmt = select(Call)
        if client_id is not None:
            stmt = stmt.where(Call.client_id == client_id)
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput({"status": f"must be one of {', '.join(STATUSES)}"})
            stmt = stmt.where(Call.status == status)
        if since is not None:
            stmt = stmt.where(Call.started_at >= since)
        return await paginate(s, stmt, Call.id, limit=limit, cursor=cursor)

    async def ensure_may_work_on(self, s: AsyncSession, call: Call, agent: Agent) -> None:
        """Only the agent who answered a call, or an admin, may set its outcome or add notes to it (a
        button's data can be forged, so the chat it came from proves nothing). A call nobody answered
        is worked by whoever follows it up: the agent of its callback task."""
        if agent.role == "admin" or call.agent_id == agent.id:
            return
        if call.agent_id is None:
            follower = await s.execute(select(Task.agent_id).where(Task.call_id == call.id))
            if follower.scalar_one_or_none() == agent.id:
                return
        who = await s.get(Agent, call.agent_id) if call.agent_id is not None else None
        taker = f"{who.name}, who answered it," if who is not None else "the agent following it up"
        raise Forbidden(f"this call is not yours: only {taker} or an admin can change it")

    async def set_outcome(self, s: AsyncSession, call_id: int, outcome: str, *, agent: Agent) -> Call:
        """Record what came of a call, on the call and the client's timeline, and move the deal on:
        `won` wins the client's open deal, `not_interested` loses it, `interested` qualifies it
        (opening one if there is none), `callback` makes a task to call again tomorrow."""
        if outcome not in OUTCOMES:
            raise InvalidInput({"outcome": f"must be one of {', '.join(OUTCOMES)}"})
        call = await self.get(s, call_id)
        await self.ensure_may_work_on(s, call, agent)
        agent_id = agent.id
        if call.outcome == outcome:
            return call
        call.outcome = outcome
        now = self.clock.now()
        if call.client_id is None:
            return call
        await timeline.record(
            s,
            call.client_id,
            "note",
            f"Call outcome: {OUTCOME_LABELS[outcome]}",
            at=now,
            agent_id=agent_id,
            call_id=call.id,
            data={"outcome": outcome},
        )
        deal = await self.deals.latest_open(s, call.client_id)
        if outcome in ("won", "interested"):
            deal_id = (
                deal.id
                if deal is not None
                else await self.deals.open(s, call.client_id, f"Call #{call.id}", owner_id=agent_id)
            )
            if outcome == "won":
                await self.deals.move(s, deal_id, "Won")
            else:
                await self.deals.advance_to(s, deal_id, "Qualified")
        elif outcome == "not_interested" and deal is not None:
            await self.deals.move(s, deal.id, "Lost")
        elif outcome == "callback":
            existing = await s.execute(select(Task.id).where(Task.call_id == call.id))
            if existing.scalar_one_or_none() is None:
                s.add(
                    Task(
                        client_id=call.client_id,
                        agent_id=agent_id,
                        title="Call back",
                        due_at=now + CALLBACK_AFTER,
                        call_id=call.id,
                        created_at=now,
                    )
                )
        await s.flush()
        return call

    async def add_note(self, s: AsyncSession, call_id: int, text: str) -> None:
        """Append an agent's note to the call itself (the timeline gets its own entry)."""
        call = await self.get(s, call_id)
        call.notes = f"{call.notes}\n{text}" if call.notes else text
