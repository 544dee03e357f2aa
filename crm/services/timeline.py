"""A client's timeline: every call, message, lead, note and e-mail, newest last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, insert, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import CLIENTS, INTERACTIONS, UtcDateTime, expire_client

KINDS = ("call", "message", "lead", "note", "email")
SUMMARY_LIMIT = 500


# Built once (every call, message and lead is recorded): Core statements, `client` the client's id.
_RECORD = (
    insert(INTERACTIONS)
    .values(
        client_id=bindparam("client"),
        kind=bindparam("kind"),
        at=bindparam("at"),
        summary=bindparam("summary"),
        agent_id=bindparam("agent"),
        call_id=bindparam("call"),
        lead_id=bindparam("lead"),
        direction=bindparam("direction"),
        data=bindparam("data"),
    )
    .returning(INTERACTIONS.c.id)
)
_AT = bindparam("at", type_=UtcDateTime())
_MOVE_LAST_INTERACTION = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client"))
    .values(
        last_interaction_at=case(
            (CLIENTS.c.last_interaction_at.is_(None), _AT),
            (CLIENTS.c.last_interaction_at < _AT, _AT),
            else_=CLIENTS.c.last_interaction_at,
        )
    )
)


async def record(
    s: AsyncSession,
    client_id: int,
    kind: str,
    summary: str,
    *,
    at: datetime,
    agent_id: int | None = None,
    call_id: int | None = None,
    lead_id: int | None = None,
    direction: str | None = None,
    data: dict[str, Any] | None = None,
) -> int:
    """Add one entry and move the client's `last_interaction_at` forward (never back)."""
    if kind not in KINDS:
        raise ValueError(f"unknown interaction kind {kind!r}")
    conn = await s.connection()
    result = await conn.execute(
        _RECORD,
        {
            "client": client_id,
            "kind": kind,
            "at": at,
            "summary": summary[:SUMMARY_LIMIT],
            "agent": agent_id,
            "call": call_id,
            "lead": lead_id,
            "direction": direction,
            "data": data or {},
        },
    )
    await conn.execute(_MOVE_LAST_INTERACTION, {"client": client_id, "at": at})
    expire_client(s, client_id, "last_interaction_at")
    return int(result.scalar_one())
