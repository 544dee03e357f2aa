"""Click-to-call through Twilio: drains the `telephony` channel of the outbox.

A `place_call` asks Twilio's REST API to ring the agent; when they pick up, Twilio fetches our
`/webhooks/twilio/outbound` TwiML, which dials the client. Twilio unreachable or busy: retried a
few times within a minute or so, then the call is logged as failed and the agent told, because a
call placed ten minutes after the click is worse than none. Twilio refusing (a bad number, an
unverified caller ID): failed at once, with Twilio's reason.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from crm.call_flow import CallFlow
from crm.clock import Clock
from crm.outbox import Delivery
from crm.outbox_worker import AfterCommit, Failed, OutboxWorker, Outcome, Sent, Skipped
from crm.store import Store
from telephony.twilio import twiml
from telephony.twilio.parse import PROVIDER
from telephony.twilio.rest import TwilioRejected, TwilioRest, TwilioUnavailable

MAX_ATTEMPTS = 5


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
        to = {"sip": leg.address, "client": f"client:{leg.address}"}.get(leg.kind, leg.address)
        try:
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

        async def placed(s: AsyncSession) -> None:
            await self.flow.outbound_placed(s, call_id, sid)

        return Sent(placed)

    def _failed(self, call_id: int, reason: str) -> AfterCommit:
        async def record(s: AsyncSession) -> None:
            await self.flow.outbound_failed(s, call_id, reason)

        return record
