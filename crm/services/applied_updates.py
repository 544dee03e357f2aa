"""Updates from a messaging channel taken in once: a channel that delivers an update again (a
webhook retried after a time-out, a poller that died before confirming its offset, a replay by
someone who saw the request) changes nothing the second time.

The mark is committed before the update is handled, so two deliveries racing each other apply it
once; it is released when handling fails, so the channel's next delivery can try again. A process
killed while handling leaves the mark: that update is not applied (at most once, never twice).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.models import AppliedUpdate
from crm.storage.rows import rows_changed

KEEP = timedelta(days=7)  # well past the day a messenger keeps an unconfirmed update


class AppliedUpdates:
    """The marks of updates taken in, per channel, stamped with the shared clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def first_time(self, s: AsyncSession, channel: str, update_id: int) -> bool:
        """Mark the update taken; False when it was taken before."""
        try:
            async with s.begin_nested():
                await s.execute(
                    insert(AppliedUpdate).values(
                        channel=channel, update_id=update_id, applied_at=self.clock.now()
                    )
                )
        except IntegrityError:
            return False
        return True

    async def release(self, s: AsyncSession, channel: str, update_id: int) -> None:
        """Handling failed: the update may be applied when it comes again."""
        await s.execute(
            delete(AppliedUpdate).where(
                AppliedUpdate.channel == channel, AppliedUpdate.update_id == update_id
            )
        )

    async def forget_old(self, s: AsyncSession) -> int:
        """Drop marks no channel will deliver again."""
        old = AppliedUpdate.applied_at < self.clock.now() - KEEP
        return rows_changed(await s.execute(delete(AppliedUpdate).where(old)))
