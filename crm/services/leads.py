"""Leads: what web forms send us, each tied to the client it was matched to."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import Lead
from crm.domain.paging import Page, paginate


async def list_leads(
    s: AsyncSession,
    *,
    client_id: int | None = None,
    since: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[Lead]:
    stmt = select(Lead)
    if client_id is not None:
        stmt = stmt.where(Lead.client_id == client_id)
    if since is not None:
        stmt = stmt.where(Lead.created_at >= since)
    return await paginate(s, stmt, Lead.id, limit=limit, cursor=cursor)
