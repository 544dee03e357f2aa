"""A call after its first ring (`crm.services.ring_plans` logs it) to the last callback: provider
events in, state and follow-ups out; and click-to-call.

Every method applies one event idempotently. The call row is locked for the transaction, a
status only moves forward (`crm.domain.call_states`), a repeated event changes nothing, and a late one
fills in what is missing. Follow-ups (the card for the agent who answered, "taken by" notices, the
callback task and notice of a missed call, the voicemail) hang on a transition, so they happen
once however often the provider repeats itself. Longer than our modules usually are, on purpose:
the transitions and the follow-ups that hang on them read best side by side.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.domain.call_events import (
    AgentAnswered,
    CallEnded,
    DialEnded,
    LegProgress,
    OutboundAnswered,
    RecordingReady,
)
from crm.domain.call_states import UNANSWERED, UNANSWERED_STATUS, CallStatus, can_move
from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput
from crm.domain.models import INTERACTIONS, Agent, Call, CallLeg, Client, ClientPhone, Task
from crm.domain.phones import format_international, is_anonymous
from crm.services import notices, routing, timeline
from crm.services.clients import Clients
from crm.services.ring_plans import endpoint

log = logging.getLogger("crm.calls")

# `place_outbound` names a call so until the provider names it (`outbound_placed`).
UNNAMED = "pending-"

# A call whose caller has hung up, but whose ringing result never came, is missed after this.
ENDED_GRACE = timedelta(seconds=15)

# The callbacks' statements, built once: building a statement costs about what running it does.
_BY_PROVIDER_ID = select(Call).where(
    Call.provider == bindparam("provider"), Call.provider_call_id == bindparam("provider_call_id")
)
_BY_PROVIDER_ID_LOCKED = _BY_PROVIDER_ID.with_for_update()
_LEGS = select(CallLeg).where(CallLeg.call_id == bindparam("call_id")).order_by(CallLeg.id)
_LEG = select(CallLeg).where(
    CallLeg.call_id == bindparam("call_id"), CallLeg.agent_id == bindparam("agent_id")
)
_AGENT_OF_LEG = select(CallLeg.agent_id).where(
    CallLeg.call_id == bindparam("call_id"), CallLeg.leg_id == bindparam("leg_id")
)
_AGENT_NAME = select(Agent.name).where(Agent.id == bindparam("agent"))
_REWRITE_CALL_ENTRY = (
    update(INTERACTIONS)
    .where(INTERACTIONS.c.call_id == bindparam("call"), INTERACTIONS.c.kind == "call")
    .values(summary=bindparam("new_summary"), agent_id=bindparam("new_agent"))
)


class CallFlow:
    def __init__(self, clients: Clients, clock: Clock) -> None:
        self.clients = clients
        self.clock = clock

    # -- inbound (the first ring: `crm.services.ring_plans`) -----------------------------------

    async def nobody_to_ring(self, s: AsyncSession, call_id: int) -> None:
        """Nobody can take this call: the caller goes straight to voicemail, and it is followed
        up as missed (once, however often this is asked)."""
        call = await s.get(Call, call_id, with_for_update=True)
        if call is not None:
            await self._unanswered(s, call, "missed")

    # -- outbound (click-to-call) ------------------------------------------------------------

    async def place_outbound(
        self, s: AsyncSession, *, client_id: int, agent_id: int, provider: str, caller_id: str
    ) -> Call:
        """Log an outbound call and ask the provider (through the outbox) to ring the agent
        first, then the client. The card pops when the agent picks up, as for inbound calls."""
        client = await self.clients.require(s, client_id)
        phone = (
            await s.execute(
                select(ClientPhone.e164)
                .where(ClientPhone.client_id == client.id, ClientPhone.e164.is_not(None))
                .order_by(ClientPhone.position, ClientPhone.id)
                .limit(1)
            )
        ).scalar_one_or_none()
        if phone is None:
            raise InvalidInput({"client_id": f"client {client_id} has no phone number to call"})
        agent = await s.get(Agent, agent_id)
        if agent is None or agent.removed_at is not None:
            raise InvalidInput({"agent_id": f"no active agent with id {agent_id}"})
        target = endpoint(agent)
        if target is None:
            raise InvalidInput(
                {"agent_id": f"agent {agent_id} has no phone, SIP URI or app identity to ring"}
            )
        call = Call(
            provider=provider,
            provider_call_id=f"{UNNAMED}{uuid.uuid4().hex}",
            direction="outbound",
            from_number=caller_id,
            to_number=phone,
            client_id=client.id,
            status="ringing",
            started_at=self.clock.now(),
        )
        s.add(call)
        await s.flush()
        s.add(CallLeg(call_id=call.id, agent_id=agent.id, kind=target.kind, address=target.address))
        await outbox.enqueue(
            s, "telephony", "place_call", {"call_id": call.id}, queue=f"call:{call.id}", clock=self.clock
        )
        await s.flush()
        return call

    async def outbound_placed(self, s: AsyncSession, call_id: int, provider_call_id: str) -> None:
        """The provider accepted the call and named it: later events use that name."""
        call = await s.get(Call, call_id, with_for_update=True)
        if call is not None:
            _name(call, provider_call_id)

    async def outbound_failed(self, s: AsyncSession, call_id: int, reason: str) -> None:
        """The provider refused to place the call: it failed, and the agent is told why."""
        call = await s.get(Call, call_id, with_for_update=True)
        if call is None or not can_move(call.status, "failed"):
            return
        call.status = "failed"
        call.ended_at = self.clock.now()
        await self._sync_timeline(s, call)
        callee = await self._caller_name(s, call)
        for leg in await self._legs(s, call.id):
            await notices.tell(
                s, leg.agent_id, f"Could not place your call to {callee}: {reason}", clock=self.clock
            )

    async def by_id(self, s: AsyncSession, call_id: int) -> Call | None:
        return await s.get(Call, call_id)

    async def agent_leg(self, s: AsyncSession, call_id: int) -> CallLeg | None:
        """The agent an outbound call rings first."""
        legs = await self._legs(s, call_id)
        return legs[0] if legs else None

    # -- events ----------------------------------------------------------------------------

    async def answered(self, s: AsyncSession, ev: AgentAnswered) -> Call | None:
        call = await self._known(s, ev, "answer")
        if call is None:
            return None
        leg = await self._leg(s, call.id, ev.agent_id)
        if leg is None and await s.get(Agent, ev.agent_id) is None:
            log.warning("call %s: an answer names agent %s, who does not exist", call.id, ev.agent_id)
            return call
        if leg is not None:
            leg.answered = True
            leg.leg_id = leg.leg_id or ev.leg_id
        if call.agent_id is None:
            await self._taken_by(s, call, ev.agent_id)
        if call.direction == "inbound":
            self._answered_status(call)
        await self._sync_timeline(s, call)
        return call

    async def dial_ended(self, s: AsyncSession, ev: DialEnded) -> Call | None:
        call = await self._known(s, ev, "dial result")
        if call is None:
            return None
        call.dial_outcome = call.dial_outcome or ev.outcome
        if ev.recording_url and not call.recording_url:
            call.recording_url = ev.recording_url
        if ev.outcome == "answered":
            call.answered_at = call.answered_at or ev.at
            if call.duration_s is None and ev.talk_seconds is not None:
                call.duration_s = ev.talk_seconds
            self._answered_status(call)
            if call.direction == "inbound" and call.agent_id is None and ev.leg_id:
                agent_id = await self._agent_of_leg(s, call.id, ev.leg_id)
                if agent_id is not None:
                    await self._taken_by(s, call, agent_id)
        elif call.agent_id is None or call.direction == "outbound":
            status = UNANSWERED_STATUS.get(ev.outcome, "missed")
            if can_move(call.status, status):
                await self._unanswered(s, call, status)
        await self._sync_timeline(s, call)
        return call

    async def ended(self, s: AsyncSession, ev: CallEnded) -> Call | None:
        """The caller's call is over; an event naming our outbound call also names it for the
        provider (as `outbound_placed`)."""
        call = await self._known(s, ev, "end")
        if call is None:
            return None
        if ev.call_id is not None:
            _name(call, ev.provider_call_id)
        call.ended_at = call.ended_at or ev.at
        if call.status == "in_progress":
            call.status = "completed"
            if call.duration_s is None and ev.duration_s is not None:
                call.duration_s = ev.duration_s
        elif call.status == "ringing" and ev.outcome != "answered":
            await self._unanswered(s, call, UNANSWERED_STATUS[ev.outcome])
        # An answered line while still ringing tells nothing of the agents (voicemail answers it
        # too): the dial result decides, or the sweep after ENDED_GRACE.
        await self._sync_timeline(s, call)
        return call

    async def leg_progress(self, s: AsyncSession, ev: LegProgress) -> None:
        """An agent's leg reports its id, and an answer is an answer."""
        await self.leg_seen(s, ev.provider, ev.provider_call_id, ev.agent_id, ev.leg_id, call_id=ev.call_id)
        if ev.answered:
            answer = AgentAnswered(
                ev.provider, ev.provider_call_id, ev.agent_id, ev.leg_id, ev.at, ev.call_id
            )
            await self.answered(s, answer)

    async def outbound_answered(self, s: AsyncSession, ev: OutboundAnswered) -> str | None:
        """The agent picked up our outbound call: name it, pop their card, and return the
        client's number to dial next (None when the call is no longer there to connect)."""
        await self.outbound_placed(s, ev.call_id, ev.provider_call_id)
        call = await self.by_id(s, ev.call_id)
        leg = await self.agent_leg(s, ev.call_id)
        if call is None or leg is None or call.to_number is None:
            return None
        await self.answered(
            s, AgentAnswered(ev.provider, call.provider_call_id, leg.agent_id, ev.provider_call_id, ev.at)
        )
        return call.to_number

    async def recording(self, s: AsyncSession, ev: RecordingReady) -> Call | None:
        call = await self._known(s, ev, "recording")
        if call is None:
            return None
        if ev.voicemail:
            if not call.has_voicemail:
                call.has_voicemail = True
                call.recording_url = ev.url
                await self._voicemail_notice(s, call, ev)
        elif not call.recording_url:
            call.recording_url = ev.url
        await self._sync_timeline(s, call)
        return call

    async def sweep(self, s: AsyncSession, *, ringing_timeout: timedelta) -> list[int]:
        """Calls still `ringing` whose callbacks never came: missed after the timeout (or soon
        after the caller hung up, when that much is known)."""
        now = self.clock.now()
        rows = await s.execute(
            select(Call)
            .where(
                Call.status == "ringing",
                or_(Call.started_at < now - ringing_timeout, Call.ended_at < now - ENDED_GRACE),
            )
            .limit(200)
            .with_for_update(skip_locked=True)
        )
        swept = []
        for call in rows.scalars():
            await self._unanswered(s, call, "missed")
            call.ended_at = call.ended_at or now
            await self._sync_timeline(s, call)
            swept.append(call.id)
        return swept

    @staticmethod
    def _answered_status(call: Call) -> None:
        """Someone answered: the call is in progress, or completed if its end was heard already."""
        target: CallStatus = "completed" if call.ended_at is not None else "in_progress"
        if can_move(call.status, target):
            call.status = target

    # -- follow-ups ------------------------------------------------------------------------

    async def _taken_by(self, s: AsyncSession, call: Call, agent_id: int) -> None:
        """The call is the agent's: sticky owner, the card for them, "taken" for the others."""
        call.agent_id = agent_id
        call.answered_at = call.answered_at or self.clock.now()
        if call.client_id is not None:
            await self.clients.set_owner_if_none(s, call.client_id, agent_id)
            await notices.show_card(s, agent_id, call.client_id, call_id=call.id, clock=self.clock)
        agent = await s.get(Agent, agent_id)
        who = agent.name if agent else "Someone"
        caller = await self._caller_name(s, call)
        for leg in await self._legs(s, call.id):
            if leg.agent_id != agent_id:
                text = f"{who} took the call from {caller}."
                await notices.tell(s, leg.agent_id, text, client_id=call.client_id, clock=self.clock)

    async def _unanswered(self, s: AsyncSession, call: Call, status: CallStatus) -> None:
        """Nobody took an inbound call: a callback task for the follow-up agent, and a notice."""
        if not can_move(call.status, status):
            return
        call.status = status
        if call.direction != "inbound":
            return
        agent = await routing.follow_up_agent(s, call.client_id)
        if agent is None:
            log.warning("missed call %s: no owner and no admin to follow it up", call.id)
            return
        caller = await self._caller_name(s, call)
        what = _UNANSWERED_WORDS[status][0]
        if call.client_id is None:
            text = f"{what} from {caller}: the number was withheld, no callback possible."
            await notices.tell(s, agent.id, text, clock=self.clock)
            return
        existing = await s.execute(select(Task.id).where(Task.call_id == call.id))
        if existing.scalar_one_or_none() is None:
            now = self.clock.now()
            s.add(
                Task(
                    client_id=call.client_id,
                    agent_id=agent.id,
                    title=f"Call back ({what.lower()})",
                    due_at=now,
                    reminded_for=now,
                    call_id=call.id,
                    created_at=now,
                )
            )
            await s.flush()
        headline = f"📵 {what} from {caller} — a callback task is on your list"
        await notices.show_card(s, agent.id, call.client_id, headline=headline, clock=self.clock)

    async def _voicemail_notice(self, s: AsyncSession, call: Call, ev: RecordingReady) -> None:
        agent = await routing.follow_up_agent(s, call.client_id)
        if agent is None:
            return
        await notices.voicemail(
            s,
            agent.id,
            call_id=call.id,
            client_id=call.client_id,
            url=ev.url,
            duration_s=ev.duration_s,
            caller=await self._caller_name(s, call),
            clock=self.clock,
        )

    async def _sync_timeline(self, s: AsyncSession, call: Call) -> None:
        """One timeline entry per call, rewritten as the call's story fills in."""
        if call.client_id is None:
            return
        conn = await s.connection()
        # The name alone, by Core: an ORM load would first flush the call's changes.
        agent_name = None
        if call.agent_id is not None:
            agent_name = (await conn.execute(_AGENT_NAME, {"agent": call.agent_id})).scalar_one_or_none()
        summary = _summary(call, agent_name)
        params = {
            "call": call.id,
            "new_summary": summary[: timeline.SUMMARY_LIMIT],
            "new_agent": call.agent_id,
        }
        rewritten = await conn.execute(_REWRITE_CALL_ENTRY, params)
        if rewritten.rowcount == 0:
            await timeline.record(
                s,
                call.client_id,
                "call",
                summary,
                at=call.started_at,
                agent_id=call.agent_id,
                call_id=call.id,
                direction=call.direction,
            )
        await s.flush()

    # -- look-ups --------------------------------------------------------------------------

    async def _known(
        self, s: AsyncSession, ev: AgentAnswered | DialEnded | CallEnded | RecordingReady, what: str
    ) -> Call | None:
        """The call an event is about, locked; None (and a log line) when we do not know it."""
        call = await s.get(Call, ev.call_id, with_for_update=True) if ev.call_id is not None else None
        if call is None:
            call = await self._find(s, ev.provider, ev.provider_call_id, lock=True)
        if call is None:
            log.info("%s for unknown call %s/%s ignored", what, ev.provider, ev.provider_call_id)
        return call

    async def _find(
        self, s: AsyncSession, provider: str, provider_call_id: str, *, lock: bool
    ) -> Call | None:
        stmt = _BY_PROVIDER_ID_LOCKED if lock else _BY_PROVIDER_ID
        params = {"provider": provider, "provider_call_id": provider_call_id}
        return (await s.execute(stmt, params)).scalar_one_or_none()

    async def _legs(self, s: AsyncSession, call_id: int) -> list[CallLeg]:
        return list((await s.execute(_LEGS, {"call_id": call_id})).scalars())

    async def _leg(self, s: AsyncSession, call_id: int, agent_id: int) -> CallLeg | None:
        return (await s.execute(_LEG, {"call_id": call_id, "agent_id": agent_id})).scalar_one_or_none()

    async def _agent_of_leg(self, s: AsyncSession, call_id: int, leg_id: str) -> int | None:
        rows = await s.execute(_AGENT_OF_LEG, {"call_id": call_id, "leg_id": leg_id})
        return rows.scalar_one_or_none()

    async def leg_seen(
        self,
        s: AsyncSession,
        provider: str,
        provider_call_id: str,
        agent_id: int,
        leg_id: str,
        *,
        call_id: int | None = None,
    ) -> None:
        """Remember which provider leg rings which agent (a later dial result names only the leg)."""
        if call_id is None:
            call = await self._find(s, provider, provider_call_id, lock=False)
            if call is None:
                return
            call_id = call.id
        leg = await self._leg(s, call_id, agent_id)
        if leg is not None and leg.leg_id is None:
            leg.leg_id = leg_id

    async def _caller_name(self, s: AsyncSession, call: Call) -> str:
        if call.client_id is not None:
            client = await s.get(Client, call.client_id)
            if client is not None:
                return client.name
        number = call.to_number if call.direction == "outbound" else call.from_number
        if number and not is_anonymous(number):
            try:
                return format_international(number)
            except Exception:  # a number phonenumbers cannot format is shown as it came
                return number
        return "a withheld number"


def _name(call: Call, provider_call_id: str) -> None:
    """The provider's name for an outbound call we placed, once it gives one."""
    if call.provider_call_id.startswith(UNNAMED):
        call.provider_call_id = provider_call_id


# An `UNANSWERED` call in words: the notice's headline, the timeline's summary.
_UNANSWERED_WORDS: Mapping[str, tuple[str, str]] = {
    "missed": ("Missed call", "missed"),
    "busy": ("Call while everyone was busy", "nobody free (busy)"),
    "failed": ("Failed call", "failed"),
}


def _summary(call: Call, agent_name: str | None) -> str:
    direction = "Outbound" if call.direction == "outbound" else "Inbound"
    if call.status in UNANSWERED:
        summary = f"{direction} call, {_UNANSWERED_WORDS[call.status][1]}"
        return summary + (", voicemail left" if call.has_voicemail else "")
    summary = f"{direction} call"
    if agent_name:
        summary += f" with {agent_name}"
    if call.status == "ringing":
        return summary + ", ringing"
    if call.status == "in_progress":
        return summary + ", in progress"
    if call.duration_s is not None:
        minutes, seconds = divmod(call.duration_s, 60)
        summary += f", {minutes}m {seconds:02}s" if minutes else f", {seconds}s"
    return summary
