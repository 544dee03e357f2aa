"""Notes agents write about a client (and the call they were on)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput
from crm.domain.models import Agent
from crm.services import timeline
from crm.services.calls import add_call_note, ensure_may_work_on, get_call

MAX_NOTE = 4000


async def add_note(
    s: AsyncSession,
    client_id: int,
    text: str,
    *,
    agent_id: int | None,
    clock: Clock,
    call_id: int | None = None,
    by: Agent | None = None,
) -> int:
    """A note on the client's timeline; on the call too when it is about one. `by`: the agent
    writing it, who must be allowed to work on that call (`calls.ensure_may_work_on`)."""
    if by is not None and call_id is not None:
        await ensure_may_work_on(s, await get_call(s, call_id), by)
    body = text.strip()
    if not body:
        raise InvalidInput({"text": "a note needs some text"})
    if len(body) > MAX_NOTE:
        raise InvalidInput({"text": f"longer than {MAX_NOTE} characters"})
    if call_id is not None:
        await add_call_note(s, call_id, body)
    return await timeline.record(
        s, client_id, "note", body, at=clock.now(), agent_id=agent_id, call_id=call_id
    )
