"""Notes agents write about a client (and the call they were on)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm import timeline
from crm.calls import add_call_note
from crm.clock import Clock
from crm.errors import InvalidInput

MAX_NOTE = 4000


async def add_note(
    s: AsyncSession,
    client_id: int,
    text: str,
    *,
    agent_id: int | None,
    clock: Clock,
    call_id: int | None = None,
) -> int:
    """A note on the client's timeline; on the call too when it is about one."""
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
