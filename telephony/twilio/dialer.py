"""Click-to-call through Twilio: drains the `telephony` channel of the outbox.

A `place_call` asks Twilio's REST API to ring the agent; when they pick up, Twilio fetches our
`/webhooks/twilio/outbound` TwiML, which dials the client. Twilio unreachable or busy: retried a
few times within a minute or so, then the call is logged as failed and the agent told, because a
call placed ten minutes after the click is worse than none. Twilio refusing (a bad number, an
unverified caller ID): failed at once, with Twilio's reason.

One click, one call, even across a crash. Twilio's Calls API takes no idempotency key, and a
process can die after Twilio created the call but before the outbox recorded it; the message is
then claimed again once its lease runs out. So before each request the dialer notes in the
message, while its claim still holds it, when it first asked Twilio (a dialer that lost its
lease stops there: whoever holds the message now places the call). A message carrying that note
may have a call at Twilio already: the next claim first reads Twilio's Calls list (from our
caller ID to the agent, created since the note, give or take `CLOCK_SKEW`) and takes the CallSid
of a call no other call of ours has claimed, instead of placing another. Twilio's list shows no
`Url` or `StatusCallback`, so our call id cannot be matched there: time, `To` and `From` are.

What stays possible:
- Twilio created the call but its list does not show it yet when the next claim reads it, at
  least a lease (a minute) after the crash, or Twilio's clock and ours disagree by more than
  `CLOCK_SKEW`: a second call.
- Another click-to-call to the same agent, placed or about to be and not yet named by Twilio
  (see `_placed_before`): we cannot tell whose call is whose, so none is placed and the name is
  left to Twilio's callbacks, which carry our call id. If ours had not been placed in fact, the
  agent's phone does not ring for it and the call ends `missed` (the sweeper).
- Twilio's list unreadable: treated like Twilio unreachable (retried, then failed).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.delivery.outbox import Delivery
from crm.delivery.outbox_worker import AfterCommit, Failed, OutboxWorker, Outcome, Retry, Sent, Skipped
from crm.domain.clock import Clock
from crm.domain.models import Call, CallLeg
from crm.services.call_flow import UNNAMED, CallFlow
from crm.storage.store import Store
from telephony.twilio import twiml
from telephony.twilio.parse import PROVIDER
from telephony.twilio.rest import TwilioRejected, TwilioRest, TwilioUnavailable

MAX_ATTEMPTS = 5
# Twilio's clock against ours (and its whole-second `date_created`), when matching its calls.
CLOCK_SKEW = timedelta(seconds=60)
# In the outbox message: when this dialer first asked Twilio to place the call (ISO 8601).
PLACING = "placing_since"


class TwilioDialer(OutboxWorker):
    channel = "telephony"

    def __init__(
        self, rest: TwilioRest, flow: CallFlow, store: Store, clock: Clock, *, public_url: str, caller_id: str
    ) -> None:
        super().__init__(store, clock, concurrency=10)
        self.rest = rest
        self.flow = flow
        self.public_url = public_url
        self.caller_id = caller_id

    async def deliver(self, delivery: Delivery) -> Outcome:
        call_id = int(delivery.payload["call_id"])
        async with self.store.looking_up() as s:
            call = await self.flow.by_id(s, call_id)
            leg = await self.flow.agent_leg(s, call_id)
        if call is None or leg is None:
            return Skipped(f"call {call_id} is gone")
        if call.provider != PROVIDER:
            return Skipped(f"call {call_id} is not a Twilio call")
        if not call.provider_call_id.startswith(UNNAMED):
            return Sent()  # a Twilio callback carrying our call id named it: it was placed
        to = {"sip": leg.address, "client": f"client:{leg.address}"}.get(leg.kind, leg.address)
        since = delivery.payload.get(PLACING)
        try:
            if since is not None:
                placed, sid = await self._placed_before(call_id, leg, to, datetime.fromisoformat(since))
                if placed:
                    return Sent(self._named(call_id, sid) if sid else None)
            noted = {**delivery.payload, PLACING: since or self.clock.now().isoformat()}
            async with self.store.session() as s:
                if not await outbox.note(s, delivery, noted):
                    return Retry(0.0, "the lease was lost before the call was placed")  # dropped
            sid = await self.rest.place_call(
                to=to,
                from_=self.caller_id,
                url=twiml.url(self.public_url, "outbound", call=call_id),
                status_callback=twiml.url(self.public_url, "status", call=call_id),
            )
        except TwilioRejected as exc:
            return Failed(str(exc), self._failed(call_id, str(exc)))
        except TwilioUnavailable as exc:
            if delivery.attempts >= MAX_ATTEMPTS:
                reason = f"Twilio could not be reached ({exc})"
                return Failed(reason, self._failed(call_id, reason))
            return self.retry(delivery, str(exc))
        return Sent(self._named(call_id, sid))

    async def _placed_before(
        self, call_id: int, leg: CallLeg, to: str, since: datetime
    ) -> tuple[bool, str | None]:
        """Whether an earlier attempt of this message may have placed the call, and its CallSid
        when we can tell which call it is.

        Candidates: Twilio's calls from our caller ID to `to` created since `since` (give or take
        `CLOCK_SKEW`) whose CallSid no call of ours holds. None: it was never placed. Some, while
        no other outbound call to the same agent is still unnamed: the earliest is ours. Some,
        while another is unnamed: any of them may be ours or the other's, so placed, unknown."""
        now = self.clock.now()
        recent = [
            c
            for c in await self.rest.recent_calls(to=to, from_=self.caller_id)
            if since - CLOCK_SKEW <= c.created_at <= now + CLOCK_SKEW
        ]
        if not recent:
            return False, None
        async with self.store.looking_up() as s:
            named = set(
                (
                    await s.execute(
                        select(Call.provider_call_id).where(
                            Call.provider == PROVIDER, Call.provider_call_id.in_([c.sid for c in recent])
                        )
                    )
                ).scalars()
            )
            other_unnamed = (
                await s.execute(
                    select(Call.id)
                    .join(CallLeg, CallLeg.call_id == Call.id)
                    .where(
                        Call.provider == PROVIDER,
                        Call.direction == "outbound",
                        Call.status == "ringing",
                        Call.provider_call_id.startswith(UNNAMED),
                        Call.id != call_id,
                        CallLeg.kind == leg.kind,
                        CallLeg.address == leg.address,
                    )
                    .limit(1)
                )
            ).first()
        candidates = sorted((c for c in recent if c.sid not in named), key=lambda c: c.created_at)
        if not candidates:
            return False, None
        if other_unnamed is not None:
            return True, None
        return True, candidates[0].sid

    def _named(self, call_id: int, sid: str) -> AfterCommit:
        """Record Twilio's name for the call, unless another call of ours already has it."""

        async def record(s: AsyncSession) -> None:
            taken = await s.execute(
                select(Call.id).where(Call.provider == PROVIDER, Call.provider_call_id == sid)
            )
            if taken.first() is None:
                await self.flow.outbound_placed(s, call_id, sid)

        return record

    def _failed(self, call_id: int, reason: str) -> AfterCommit:
        async def record(s: AsyncSession) -> None:
            await self.flow.outbound_failed(s, call_id, reason)

        return record
