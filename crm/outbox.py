"""The outbox: what must reach the outside is written here in the cause's own transaction.

`crm` never talks to Telegram, mail servers or telephony providers. It enqueues a message for a
channel; the adapter that owns the channel delivers it, with retries, from this table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.models import OutboxMessage

CHANNELS = ("telegram", "mail", "telephony")


async def enqueue(
    s: AsyncSession,
    channel: str,
    kind: str,
    payload: dict[str, Any],
    *,
    queue: str,
    clock: Clock,
) -> int:
    """Add a message for `channel`. Messages of one `queue` (say, one chat) keep their order."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    now = clock.now()
    result = await s.execute(
        insert(OutboxMessage)
        .values(
            channel=channel,
            queue=queue,
            kind=kind,
            payload=payload,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        .returning(OutboxMessage.id)
    )
    return int(result.scalar_one())
