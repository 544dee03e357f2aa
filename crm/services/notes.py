"""Notes agents write about a client (and the call they were on)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput
from crm.domain.models import Agent
from crm.services import timeline
from crm.services.calls import CallLog

MAX_NOTE = 4000


class Notes:
    """Agents' notes, checked and put on the timeline (and on the call they are about)."""

    def __init__(self, call_log: CallLog, clock: Clock) -> None:
        self.call_log = call_log
        self.clock = clock

    async def add(
        self,
        s: AsyncSession,
        client_id: int,
        text: str,
        *,
        agent_id: int | None,
        call_id: int | None = None,
        by: Agent | None = None,
    ) -> int:
        """A note on the client's timeline; on the call too when it is about one. `by`: the agent
        writing it, who must be allowed to work on that call (`CallLog.ensure_may_work_on`)."""
        if by is not None and call_id is not None:
            await self.call_log.ensure_may_work_on(s, await self.call_log.get(s, call_id), by)
        body = text.strip()
        if not body:
            raise InvalidInput({"text": "a note needs some text"})
        if len(body) > MAX_NOTE:
            raise InvalidInput({"text": f"longer than {MAX_NOTE} characters"})
        if call_id is not None:
            await self.call_log.add_note(s, call_id, body)
        return await timeline.record(
            s, client_id, "note", body, at=self.clock.now(), agent_id=agent_id, call_id=call_id
        )
