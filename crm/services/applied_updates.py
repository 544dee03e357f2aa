"""Updates from a messaging channel taken in once: a channel that delivers an update again (a
webhook retried after a time-out, a poller that died before confirming its offset, a replay by
someone who saw the request) changes nothing the second time.

The mark is committed before the update is handled, so two deliveries racing each other apply it
once; it is released when handling fails, so the channel's next delivery can try again. A process
killed while handling leaves the mark: that update is not applied (at most once, never twice).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import AppliedUpdate

KEEP = timedelta(days=7)  # well past the day a messenger keeps an unconfirmed update


async def first_time(s: AsyncSession, channel: str, update_id: int, *, now: datetime) -> bool:
    """Mark the update taken; False when it was taken before."""
    try:
        async with s.begin_nested():
            await s.execute(
                insert(AppliedUpdate).values(channel=channel, update_id=update_id, applied_at=now)
            )
    except IntegrityError:
        return False
    return True


async def release(s: AsyncSession, channel: str, update_id: int) -> None:
    """Handling failed: the update may be applied when it comes again."""
    await s.execute(
        delete(AppliedUpdate).where(AppliedUpdate.channel == channel, AppliedUpdate.update_id == update_id)
    )


async def forget_old(s: AsyncSession, *, now: datetime) -> int:
    """Drop marks no channel will deliver again."""
    result = await s.execute(delete(AppliedUpdate).where(AppliedUpdate.applied_at < now - KEEP))
    return int(getattr(result, "rowcount", 0) or 0)
