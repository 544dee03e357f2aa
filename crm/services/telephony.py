"""The domain's door for telephony providers: each neutral event (`crm.domain.call_events`) in,
applied in a unit of work of its own, and what the provider should do next out.

An adapter (`telephony/<provider>/`) parses, calls one method here, and renders the answer in its
own call-control language; the rules live in `crm.services.ring_plans` (the first ring) and
`crm.services.call_flow.CallFlow` (the rest). The first ring of
an inbound call is the hot path (the caller hears nothing until it is answered, and the provider
gives up after 15 s): concurrent first rings share one transaction (`crm.storage.group_commit`)
of plain statements (`Store.write_sync`). The small writes of the other callbacks share the
store's group commit (`Store.write_together`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.call_events import (
    AgentAnswered,
    CallEnded,
    CallStarted,
    DialEnded,
    LegProgress,
    OutboundAnswered,
    RecordingReady,
)
from crm.domain.clock import Clock
from crm.services.call_flow import CallFlow
from crm.services.ring_plans import FirstRings, RingPlan
from crm.storage.group_commit import GroupCommit
from crm.storage.store import Store


class Telephony:
    def __init__(self, store: Store, rings: FirstRings, flow: CallFlow, *, max_batch: int = 256) -> None:
        self.store = store
        self.rings = rings
        self.flow = flow
        self.group_commit: GroupCommit[CallStarted, RingPlan] = GroupCommit(
            self._write, name="inbound calls", max_batch=max_batch
        )

    @property
    def clock(self) -> Clock:
        """The domain's clock, for adapters that stamp the events they make."""
        return self.flow.clock

    async def started(self, event: CallStarted) -> RingPlan:
        """Log an inbound call (once, however often the provider asks) and say whom it rings;
        returns after the call is committed."""
        return await self.group_commit.submit(event)

    async def agent_answered(self, event: AgentAnswered) -> None:
        """An agent picked up: the call is theirs, and their card pops."""
        await self.store.write_together(lambda s: self.flow.answered(s, event))

    async def leg_progress(self, event: LegProgress) -> None:
        await self.store.write_together(lambda s: self.flow.leg_progress(s, event))

    async def dial_ended(self, event: DialEnded) -> int | None:
        """The ringing ended. Returns the id of the call whose caller should be offered voicemail
        (nobody took an inbound call), or None: hang up."""

        async def apply(s: AsyncSession) -> int | None:
            call = await self.flow.dial_ended(s, event)
            if call is None or event.outcome == "answered" or call.direction == "outbound":
                return None
            return call.id

        return await self.store.write_together(apply)

    async def recording_ready(self, event: RecordingReady) -> None:
        await self.store.write_together(lambda s: self.flow.recording(s, event))

    async def ended(self, event: CallEnded) -> None:
        await self.store.write_together(lambda s: self.flow.ended(s, event))

    async def outbound_answered(self, event: OutboundAnswered) -> str | None:
        """The agent picked up our outbound call: the client's number to dial next, or None when
        the call is no longer there to connect."""
        async with self.store.session() as s:
            return await self.flow.outbound_answered(s, event)

    async def close(self) -> None:
        await self.group_commit.close()

    async def _write(self, events: Sequence[CallStarted]) -> list[RingPlan]:
        plans = await self.store.write_sync(lambda s: self.rings.log(s, events))
        unreachable = [plan.call_id for plan in plans if not plan.targets]
        if unreachable:
            async with self.store.session() as s:
                for call_id in unreachable:
                    await self.flow.nobody_to_ring(s, call_id)
        return plans
