"""A client's timeline: every call, message, lead, note and e-mail, newest last."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import case, insert, literal, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.models import Client, Interaction, UtcDateTime

KINDS = ("call", "message", "lead", "note", "email")
SUMMARY_LIMIT = 500


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
    result = await s.execute(
        insert(Interaction)
        .values(
            client_id=client_id,
            kind=kind,
            at=at,
            summary=summary[:SUMMARY_LIMIT],
            agent_id=agent_id,
            call_id=call_id,
            lead_id=lead_id,
            direction=direction,
            data=data or {},
        )
        .returning(Interaction.id)
    )
    when = literal(at, UtcDateTime())
    latest = case(
        (Client.last_interaction_at.is_(None), when),
        (Client.last_interaction_at < when, when),
        else_=Client.last_interaction_at,
    )
    await s.execute(update(Client).where(Client.id == client_id).values(last_interaction_at=latest))
    return int(result.scalar_one())
