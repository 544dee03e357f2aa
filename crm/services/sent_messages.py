"""Messages we sent on a channel, remembered with what they were about, so that a reply to one
(an agent's note under a client card, say) lands on the right client and call."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.models import ChannelMessage


class SentMessages:
    """What each message we sent was about, looked up when someone replies to it."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def remember(
        self,
        s: AsyncSession,
        channel: str,
        address: str,
        external_id: str,
        kind: str,
        *,
        agent_id: int | None = None,
        client_id: int | None = None,
        call_id: int | None = None,
        task_id: int | None = None,
    ) -> None:
        s.add(
            ChannelMessage(
                channel=channel,
                address=address,
                external_id=external_id,
                kind=kind,
                agent_id=agent_id,
                client_id=client_id,
                call_id=call_id,
                task_id=task_id,
                created_at=self.clock.now(),
            )
        )
        await s.flush()

    async def about(
        self, s: AsyncSession, channel: str, address: str, external_id: str
    ) -> ChannelMessage | None:
        row = await s.execute(
            select(ChannelMessage).where(
                ChannelMessage.channel == channel,
                ChannelMessage.address == address,
                ChannelMessage.external_id == external_id,
            )
        )
        return row.scalar_one_or_none()
