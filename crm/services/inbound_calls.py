"""The first ring of every inbound call, written in group commits: the hot path of the gateway
(the caller hears nothing until it is answered, and Twilio gives up after 15 s)."""

from __future__ import annotations

from collections.abc import Sequence

from crm.domain.call_events import CallStarted
from crm.services.call_flow import CallFlow, RingPlan
from crm.storage.group_commit import GroupCommit
from crm.storage.store import Store


class InboundCalls:
    def __init__(self, store: Store, flow: CallFlow, *, max_batch: int = 256) -> None:
        self.store = store
        self.flow = flow
        self.group_commit: GroupCommit[CallStarted, RingPlan] = GroupCommit(
            self._write, name="inbound calls", max_batch=max_batch
        )

    async def start(self, event: CallStarted) -> RingPlan:
        """Log the call (once, however often the provider asks) and say whom it rings; returns
        after the call is committed."""
        return await self.group_commit.submit(event)

    async def close(self) -> None:
        await self.group_commit.close()

    async def _write(self, events: Sequence[CallStarted]) -> list[RingPlan]:
        plans = await self.store.write_sync(lambda s: self.flow.log_inbound(s, events))
        unreachable = [plan.call_id for plan in plans if not plan.targets]
        if unreachable:
            async with self.store.session() as s:
                for call_id in unreachable:
                    await self.flow.nobody_to_ring(s, call_id)
        return plans
