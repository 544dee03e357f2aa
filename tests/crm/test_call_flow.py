"""The call's state machine at the service level: neutral events fed straight to
`crm.services.telephony.Telephony` (no provider, no HTTP) on a real database, and what the call
row, its callback task and the outbox say afterwards.

The provider is a made-up `pbx`: nothing here depends on one provider's words.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from itertools import product

import pytest
from sqlalchemy import func, select

from crm.domain.call_events import (
    OUTCOMES,
    AgentAnswered,
    CallEnded,
    CallStarted,
    DialEnded,
    LegProgress,
    OutboundAnswered,
    Outcome,
    RecordingReady,
)
from crm.domain.call_states import STATUSES, TERMINAL, TRANSITIONS, UNANSWERED_STATUS, CallStatus, can_move
from crm.domain.clock import FrozenClock
from crm.domain.models import Agent, Call, OutboxMessage, Task
from crm.service import Crm
from crm.services.telephony import Telephony
from crm.storage.store import Store

PBX = "pbx"
CALLER = "+14155550123"
COMPANY = "+14155550000"

# Every move the state machine allows, written out apart from `TRANSITIONS`.
ALLOWED = {
    ("ringing", "in_progress"),
    ("ringing", "completed"),
    ("ringing", "missed"),
    ("ringing", "busy"),
    ("ringing", "failed"),
    ("in_progress", "completed"),
}


@pytest.fixture
async def phones(store: Store, crm: Crm) -> AsyncIterator[Telephony]:
    telephony = Telephony(store, crm.first_rings, crm.calls)
    yield telephony
    await telephony.close()


async def add_agent(
    store: Store, clock: FrozenClock, name: str, phone: str | None, *, role: str = "agent"
) -> int:
    async with store.session() as s:
        agent = Agent(name=name, phone=phone, role=role, on_duty=True, created_at=clock.now())
        s.add(agent)
        await s.flush()
        return agent.id


async def call_row(store: Store, call_id: int) -> Call:
    async with store.reading() as s:
        call = await s.get(Call, call_id)
    assert call is not None
    return call


async def callback_tasks(store: Store, call_id: int) -> list[Task]:
    async with store.reading() as s:
        return list((await s.execute(select(Task).where(Task.call_id == call_id))).scalars())


async def outbox_size(store: Store) -> int:
    async with store.reading() as s:
        return int((await s.execute(select(func.count()).select_from(OutboxMessage))).scalar_one())


class Line:
    """One inbound call on the made-up provider, as its events would describe it."""

    def __init__(self, phones: Telephony, clock: FrozenClock, sid: str = "PBX-1") -> None:
        self.phones = phones
        self.clock = clock
        self.sid = sid
        self.call_id = 0

    @property
    def now(self) -> datetime:
        return self.clock.now()

    async def rings(self, caller: str | None = CALLER) -> list[int]:
        """The call comes in; returns the agents it rings."""
        plan = await self.phones.started(CallStarted(PBX, self.sid, caller, COMPANY, self.now))
        self.call_id = plan.call_id
        return [t.agent_id for t in plan.targets]

    async def leg(self, agent_id: int, *, answered: bool = False) -> None:
        leg = f"{self.sid}-leg-{agent_id}"
        await self.phones.leg_progress(
            LegProgress(PBX, self.sid, agent_id, leg, answered, self.now, self.call_id)
        )

    async def answered_by(self, agent_id: int) -> None:
        leg = f"{self.sid}-leg-{agent_id}"
        await self.phones.agent_answered(AgentAnswered(PBX, self.sid, agent_id, leg, self.now, self.call_id))

    async def dial_ended(
        self, outcome: Outcome, *, talk: int | None = None, leg_of: int | None = None
    ) -> int | None:
        leg = f"{self.sid}-leg-{leg_of}" if leg_of is not None else None
        return await self.phones.dial_ended(
            DialEnded(PBX, self.sid, outcome, leg, talk, None, self.now, self.call_id)
        )

    async def ended(self, outcome: Outcome = "answered", *, duration: int | None = None) -> None:
        await self.phones.ended(CallEnded(PBX, self.sid, outcome, duration, self.now, self.call_id))


@pytest.fixture
def line(phones: Telephony, clock: FrozenClock) -> Line:
    return Line(phones, clock)


# -- the table -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("current", "to"), list(product(STATUSES, STATUSES)))
def test_can_move_allows_exactly_the_forward_moves(current: str, to: CallStatus) -> None:
    assert can_move(current, to) is ((current, to) in ALLOWED)


def test_every_status_has_a_row_and_the_terminal_ones_are_final() -> None:
    assert set(TRANSITIONS) == set(STATUSES)
    assert {"completed", "missed", "busy", "failed"} == TERMINAL
    assert set(UNANSWERED_STATUS) == set(OUTCOMES) - {"answered"}


# -- inbound: answered -----------------------------------------------------------------------------


async def test_ringing_then_answered_then_completed(store: Store, clock: FrozenClock, line: Line) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    assert await line.rings() == [alice]
    call = await call_row(store, line.call_id)
    assert (call.status, call.direction, call.agent_id) == ("ringing", "inbound", None)

    clock.advance(seconds=5)
    await line.answered_by(alice)
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id, call.answered_at) == ("in_progress", alice, clock.now())

    clock.advance(seconds=42)
    assert await line.dial_ended("answered", talk=42) is None  # hang up: no voicemail
    await line.ended("answered", duration=47)
    call = await call_row(store, line.call_id)
    assert (call.status, call.duration_s, call.dial_outcome) == ("completed", 42, "answered")
    assert call.ended_at == clock.now()
    assert await callback_tasks(store, line.call_id) == []


async def test_a_dial_result_naming_only_the_leg_gives_the_call_to_its_agent(
    store: Store, clock: FrozenClock, line: Line
) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    bob = await add_agent(store, clock, "Bob", "+14155550102")
    assert sorted(await line.rings()) == [alice, bob]
    await line.leg(alice)
    await line.leg(bob)
    assert (await call_row(store, line.call_id)).status == "ringing"  # a leg seen is no answer
    await line.dial_ended("answered", talk=30, leg_of=bob)
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id) == ("in_progress", bob)


async def test_an_answered_leg_is_an_answer(store: Store, clock: FrozenClock, line: Line) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    await line.rings()
    await line.leg(alice, answered=True)
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id) == ("in_progress", alice)


# -- inbound: nobody took it -----------------------------------------------------------------------


async def test_a_missed_call_makes_one_callback_task_however_often_it_is_told(
    store: Store, clock: FrozenClock, line: Line
) -> None:
    admin = await add_agent(store, clock, "Ada", "+14155550109", role="admin")
    await add_agent(store, clock, "Alice", "+14155550101")
    await line.rings()
    assert await line.dial_ended("no_answer") == line.call_id  # the caller is offered voicemail
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id, call.dial_outcome) == ("missed", None, "no_answer")
    [task] = await callback_tasks(store, line.call_id)
    assert (task.agent_id, task.title) == (admin, "Call back (missed call)")
    sent = await outbox_size(store)

    await line.dial_ended("no_answer")
    await line.ended("no_answer")
    await line.ended("canceled")
    assert (await call_row(store, line.call_id)).status == "missed"
    assert len(await callback_tasks(store, line.call_id)) == 1
    assert await outbox_size(store) == sent  # no second notice


@pytest.mark.parametrize("outcome", ["no_answer", "canceled", "busy", "failed"])
@pytest.mark.parametrize("told_by", ["dial", "end"])
async def test_an_unanswered_outcome_sets_its_status(
    store: Store, clock: FrozenClock, line: Line, outcome: Outcome, told_by: str
) -> None:
    await add_agent(store, clock, "Ada", "+14155550109", role="admin")
    await line.rings()
    if told_by == "dial":
        await line.dial_ended(outcome)
    else:
        await line.ended(outcome)
    call = await call_row(store, line.call_id)
    expected = {"no_answer": "missed", "canceled": "missed", "busy": "busy", "failed": "failed"}[outcome]
    assert call.status == expected
    assert len(await callback_tasks(store, line.call_id)) == 1


async def test_busy_is_said_in_the_task(store: Store, clock: FrozenClock, line: Line) -> None:
    await add_agent(store, clock, "Ada", "+14155550109", role="admin")
    await line.rings()
    await line.dial_ended("busy")
    [task] = await callback_tasks(store, line.call_id)
    assert task.title == "Call back (call while everyone was busy)"


async def test_nobody_to_ring_is_missed_at_once(store: Store, clock: FrozenClock, line: Line) -> None:
    await add_agent(store, clock, "Ada", None, role="admin")  # no phone, SIP URI or app to ring
    assert await line.rings() == []
    assert (await call_row(store, line.call_id)).status == "missed"
    assert len(await callback_tasks(store, line.call_id)) == 1
    sent = await outbox_size(store)
    assert await line.rings() == []  # the provider asks again
    assert len(await callback_tasks(store, line.call_id)) == 1
    assert await outbox_size(store) == sent


# -- late, repeated and out-of-order events --------------------------------------------------------


async def test_an_end_before_the_answer_completes_the_call_on_the_answer(
    store: Store, clock: FrozenClock, line: Line
) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    await line.rings()
    await line.ended("answered", duration=60)  # says nothing of the agents
    call = await call_row(store, line.call_id)
    assert (call.status, call.ended_at) == ("ringing", clock.now())
    await line.answered_by(alice)
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id) == ("completed", alice)


async def test_events_after_the_end_change_nothing(store: Store, clock: FrozenClock, line: Line) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    bob = await add_agent(store, clock, "Bob", "+14155550102")
    await line.rings()
    await line.answered_by(alice)
    await line.dial_ended("answered", talk=30)
    await line.ended("answered", duration=35)
    done = await call_row(store, line.call_id)
    sent = await outbox_size(store)

    clock.advance(minutes=5)
    await line.ended("answered", duration=99)  # ended twice
    await line.answered_by(bob)  # answered after the end
    await line.answered_by(alice)
    await line.leg(bob, answered=True)  # a leg after completion
    await line.dial_ended("no_answer")
    await line.ended("busy")
    call = await call_row(store, line.call_id)
    assert (call.status, call.agent_id, call.duration_s) == ("completed", alice, 30)
    assert (call.answered_at, call.ended_at, call.dial_outcome) == (
        done.answered_at,
        done.ended_at,
        "answered",
    )
    assert await callback_tasks(store, line.call_id) == []
    assert await outbox_size(store) == sent  # no second card, no "taken by"


async def test_an_answer_after_a_missed_call_does_not_revive_it(
    store: Store, clock: FrozenClock, line: Line
) -> None:
    await add_agent(store, clock, "Ada", "+14155550109", role="admin")
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    await line.rings()
    await line.dial_ended("no_answer")
    await line.answered_by(alice)
    await line.dial_ended("answered", talk=10)
    await line.ended("answered", duration=10)
    assert (await call_row(store, line.call_id)).status == "missed"
    assert len(await callback_tasks(store, line.call_id)) == 1


async def test_a_repeated_first_ring_logs_the_call_once(store: Store, clock: FrozenClock, line: Line) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    first = await line.rings()
    call_id = line.call_id
    assert await line.rings() == first == [alice]
    assert line.call_id == call_id
    async with store.reading() as s:
        assert (await s.execute(select(func.count()).select_from(Call))).scalar_one() == 1


async def test_events_about_an_unknown_call_are_ignored(
    store: Store, clock: FrozenClock, phones: Telephony
) -> None:
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    now = clock.now()
    await phones.agent_answered(AgentAnswered(PBX, "nobody", alice, None, now))
    assert await phones.dial_ended(DialEnded(PBX, "nobody", "no_answer", None, None, None, now)) is None
    await phones.ended(CallEnded(PBX, "nobody", "busy", None, now))
    await phones.recording_ready(RecordingReady(PBX, "nobody", "https://pbx.example/r.mp3", 3, True, now))
    async with store.reading() as s:
        assert (await s.execute(select(func.count()).select_from(Call))).scalar_one() == 0
    assert await outbox_size(store) == 0


async def test_a_voicemail_is_kept_once(
    store: Store, clock: FrozenClock, line: Line, phones: Telephony
) -> None:
    await add_agent(store, clock, "Ada", "+14155550109", role="admin")
    await line.rings()
    await line.dial_ended("no_answer")
    sent = await outbox_size(store)
    voicemail = RecordingReady(
        PBX, line.sid, "https://pbx.example/vm.mp3", 7, True, clock.now(), line.call_id
    )
    await phones.recording_ready(voicemail)
    await phones.recording_ready(voicemail)
    call = await call_row(store, line.call_id)
    assert (call.has_voicemail, call.recording_url) == (True, "https://pbx.example/vm.mp3")
    assert await outbox_size(store) == sent + 1


# -- outbound (click-to-call) --------------------------------------------------------------------


async def place(store: Store, crm: Crm, clock: FrozenClock) -> tuple[int, int]:
    """An agent's click-to-call to a client; returns the call's and the agent's ids."""
    alice = await add_agent(store, clock, "Alice", "+14155550101")
    async with store.session() as s:
        client = await crm.clients.find_or_create_by_phone(s, CALLER, name="Grace")
        call = await crm.calls.place_outbound(
            s, client_id=client.client_id, agent_id=alice, provider=PBX, caller_id=COMPANY
        )
        return call.id, alice


async def test_an_outbound_call_placed_answered_and_completed(
    store: Store, crm: Crm, clock: FrozenClock, phones: Telephony
) -> None:
    call_id, alice = await place(store, crm, clock)
    call = await call_row(store, call_id)
    assert (call.status, call.direction, call.agent_id) == ("ringing", "outbound", None)

    assert await phones.outbound_answered(OutboundAnswered(PBX, "PBX-out-1", call_id, clock.now())) == CALLER
    call = await call_row(store, call_id)
    assert (call.provider_call_id, call.agent_id, call.status) == ("PBX-out-1", alice, "ringing")
    # A second answer under another name neither renames it nor pops another card.
    sent = await outbox_size(store)
    assert await phones.outbound_answered(OutboundAnswered(PBX, "PBX-out-2", call_id, clock.now())) == CALLER
    assert (await call_row(store, call_id)).provider_call_id == "PBX-out-1"
    assert await outbox_size(store) == sent

    assert (
        await phones.dial_ended(DialEnded(PBX, "PBX-out-1", "answered", None, 20, None, clock.now(), call_id))
        is None
    )
    assert (await call_row(store, call_id)).status == "in_progress"
    await phones.ended(CallEnded(PBX, "PBX-out-1", "answered", 25, clock.now(), call_id))
    call = await call_row(store, call_id)
    assert (call.status, call.duration_s) == ("completed", 20)


async def test_an_outbound_call_the_agent_never_took_is_missed_without_a_task(
    store: Store, crm: Crm, clock: FrozenClock, phones: Telephony
) -> None:
    call_id, _ = await place(store, crm, clock)
    await phones.ended(CallEnded(PBX, "PBX-out-1", "no_answer", None, clock.now(), call_id))
    call = await call_row(store, call_id)
    assert (call.status, call.provider_call_id) == ("missed", "PBX-out-1")  # the end named it
    assert await callback_tasks(store, call_id) == []


async def test_an_outbound_call_the_provider_refused_fails_once(
    store: Store, crm: Crm, clock: FrozenClock, phones: Telephony
) -> None:
    call_id, _ = await place(store, crm, clock)
    async with store.session() as s:
        await crm.calls.outbound_failed(s, call_id, "the number is not in service")
    call = await call_row(store, call_id)
    assert (call.status, call.ended_at) == ("failed", clock.now())
    sent = await outbox_size(store)
    async with store.session() as s:
        await crm.calls.outbound_failed(s, call_id, "again")
    await phones.ended(CallEnded(PBX, "PBX-out-1", "answered", 5, clock.now(), call_id))
    assert (await call_row(store, call_id)).status == "failed"
    assert await outbox_size(store) == sent
