"""Calls: the call log and its queries. (The state machine that moves a call lives here too.)"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import InvalidInput, NotFound
from crm.models import Call
from crm.paging import Page, paginate

STATUSES = ("ringing", "in_progress", "completed", "missed", "busy", "failed")
DIRECTIONS = ("inbound", "outbound")
OUTCOMES = ("interested", "callback", "not_interested", "won", "wrong_number")


async def get_call(s: AsyncSession, call_id: int) -> Call:
    call = await s.get(Call, call_id)
    if call is None:
        raise NotFound(f"no call with id {call_id}")
    return call


async def list_calls(
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
