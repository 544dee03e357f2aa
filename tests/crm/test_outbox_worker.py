"""The outbox worker (`crm.delivery.outbox_worker`) as a channel adapter sees it: it hands each
message to `deliver` once and records what came back (sent, retry later, failed, skipped); a
message whose sender hung past its lease goes to another worker; a commit that enqueued wakes it.

The worker runs on the test's store with a frozen clock: a retry falls due only when the test
moves the clock, so "not before its time" is read off the clock time each attempt saw.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.delivery.outbox import Delivery
from crm.delivery.outbox_worker import Failed, OutboxWorker, Outcome, Retry, Sent, Skipped
from crm.domain.clock import FrozenClock
from crm.domain.models import OutboxMessage
from crm.services import notices
from crm.storage.store import Store

T0 = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
DEADLINE = 10.0  # seconds; only bounds a hang
Send = Callable[[Delivery], Awaitable[Outcome]]


@dataclass(frozen=True)
class Attempt:
    """One call of the send function: what it was given and the clock's time then."""

    delivery: Delivery
    at: datetime


class Worker(OutboxWorker):
    """The mail channel's worker, delivering with a plain function the test writes."""

    channel = "mail"

    def __init__(
        self,
        store: Store,
        clock: FrozenClock,
        send: Send,
        *,
        concurrency: int = 30,
        lease: timedelta = timedelta(seconds=60),
        idle_poll: float = 0.05,
    ) -> None:
        super().__init__(store, clock, concurrency=concurrency, lease=lease, idle_poll=idle_poll)
        self.send = send

    async def deliver(self, delivery: Delivery) -> Outcome:
        return await self.send(delivery)


class Recipient:
    """A send function that answers from a script and keeps every attempt it saw."""

    def __init__(self, clock: FrozenClock, *answers: Outcome) -> None:
        self.clock = clock
        self.answers = list(answers)
        self.attempts: list[Attempt] = []
        self.arrived: asyncio.Queue[Attempt] = asyncio.Queue()

    async def __call__(self, delivery: Delivery) -> Outcome:
        attempt = Attempt(delivery, self.clock.now())
        self.attempts.append(attempt)
        self.arrived.put_nowait(attempt)
        return self.answers.pop(0) if self.answers else Sent()

    async def next(self) -> Attempt:
        return await asyncio.wait_for(self.arrived.get(), DEADLINE)


@pytest.fixture
def frozen() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
async def running(store: Store, frozen: FrozenClock) -> AsyncIterator[Callable[..., Worker]]:
    """Start workers on the test's store; every one is stopped at the end."""
    workers: list[Worker] = []

    def start(send: Send, **options: Any) -> Worker:
        worker = Worker(store, frozen, send, **options)
        worker.start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        await worker.stop(grace=1.0)


async def _enqueue(store: Store, clock: FrozenClock, lead_id: int = 1) -> int:
    async with store.session() as s:
        return await outbox.enqueue(
            s, "mail", "lead", {"lead_id": lead_id}, queue=f"lead:{lead_id}", clock=clock
        )


async def _row(store: Store, message_id: int) -> OutboxMessage:
    async with store.reading() as s:
        return (await s.execute(select(OutboxMessage).where(OutboxMessage.id == message_id))).scalar_one()


async def _settled(store: Store, message_id: int, attempts: int) -> OutboxMessage:
    """The message once the outcome of its `attempts`-th attempt is recorded (no lease held)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while True:
        row = await _row(store, message_id)
        if row.attempts == attempts and row.locked_until is None:
            return row
        assert loop.time() < deadline, (row.status, row.attempts, row.locked_until, row.last_error)
        await asyncio.sleep(0.02)


def _utc(at: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC times; PostgreSQL aware ones."""
    return at if at is None or at.tzinfo else at.replace(tzinfo=UTC)


async def test_a_message_is_sent_once(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    recipient = Recipient(frozen)
    worker = running(recipient)
    message = await _enqueue(store, frozen)
    assert (await recipient.next()).delivery.payload == {"lead_id": 1}
    row = await _settled(store, message, attempts=1)
    await worker.stop()  # lets anything under way finish: nothing else was sent
    assert (row.status, row.last_error, _utc(row.sent_at)) == ("sent", None, T0)
    assert [a.delivery.id for a in recipient.attempts] == [message]


async def test_a_retry_comes_after_its_delay_and_counts_as_an_attempt(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    recipient = Recipient(frozen, Retry(30.0, "421 try again later"))
    running(recipient)
    message = await _enqueue(store, frozen)
    first = await recipient.next()
    row = await _settled(store, message, attempts=1)
    assert (row.status, row.last_error) == ("pending", "421 try again later")
    assert _utc(row.next_attempt_at) == T0 + timedelta(seconds=30)
    frozen.advance(seconds=30)
    second = await recipient.next()
    assert (first.at, second.at) == (T0, T0 + timedelta(seconds=30))  # not tried again before its time
    assert (first.delivery.attempts, second.delivery.attempts) == (1, 2)
    row = await _settled(store, message, attempts=2)
    assert (row.status, row.last_error) == ("sent", None)


async def test_a_slow_down_is_waited_out_without_counting(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    recipient = Recipient(frozen, Retry(5.0, "429 slow down", counts=False))
    running(recipient)
    message = await _enqueue(store, frozen)
    await recipient.next()
    row = await _settled(store, message, attempts=0)
    assert (row.status, row.last_error) == ("pending", "429 slow down")
    frozen.advance(seconds=5)
    assert (await recipient.next()).delivery.attempts == 1
    assert (await _settled(store, message, attempts=1)).status == "sent"


async def test_the_last_attempt_fails_the_message_and_records_why(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    async def notice(s: AsyncSession) -> None:  # written with the failure, in its transaction
        await outbox.enqueue(
            s, notices.CHANNEL, "text", {"text": "mail to Ada failed"}, queue="agent:1", clock=frozen
        )

    async def give_up_after_three(delivery: Delivery) -> Outcome:
        await recipient(delivery)
        if delivery.attempts < 3:
            return Retry(10.0, f"timed out ({delivery.attempts})")
        return Failed("timed out three times", record=notice)

    recipient = Recipient(frozen)
    running(give_up_after_three)
    message = await _enqueue(store, frozen)
    for attempt in (1, 2, 3):
        assert (await recipient.next()).delivery.attempts == attempt
        await _settled(store, message, attempts=attempt)
        frozen.advance(seconds=10)
    row = await _row(store, message)
    assert (row.status, row.last_error, row.attempts) == ("failed", "timed out three times", 3)
    async with store.reading() as s:
        told = (
            await s.execute(select(OutboxMessage).where(OutboxMessage.channel == notices.CHANNEL))
        ).scalar_one()
    assert told.payload == {"text": "mail to Ada failed"}


async def test_a_skipped_message_is_closed_with_its_reason(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    recipient = Recipient(frozen, Skipped("the lead was deleted"))
    running(recipient)
    message = await _enqueue(store, frozen)
    await recipient.next()
    row = await _settled(store, message, attempts=1)
    assert (row.status, row.last_error, _utc(row.sent_at)) == ("skipped", "the lead was deleted", T0)


async def test_a_message_whose_sender_hung_past_its_lease_is_sent_once_by_another_worker(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    lease = timedelta(hours=1)  # renewed every 20 real minutes: never, in this test (a frozen sender)
    hung, release = Recipient(frozen), asyncio.Event()

    async def hang(delivery: Delivery) -> Outcome:
        await hung(delivery)
        await release.wait()
        return Failed("timed out at last")  # what the hung sender would have recorded

    first = running(hang, lease=lease, concurrency=1)  # busy with its one message: it claims nothing more
    message = await _enqueue(store, frozen)
    assert (await hung.next()).delivery.attempts == 1
    frozen.advance(hours=1, seconds=1)  # its lease ran out
    other = Recipient(frozen)
    running(other, lease=lease)
    taken = await other.next()
    assert (taken.delivery.id, taken.delivery.attempts) == (message, 2)
    assert (await _settled(store, message, attempts=2)).status == "sent"
    release.set()  # the hung sender comes back: its outcome is dropped, the message stays sent
    await first.stop()  # once its outcome was dealt with
    row = await _row(store, message)
    assert (row.status, row.last_error) == ("sent", None)
    assert len(other.attempts) == 1


async def test_a_commit_that_enqueues_wakes_the_worker(
    store: Store, frozen: FrozenClock, running: Callable[..., Worker]
) -> None:
    recipient = Recipient(frozen)
    worker = running(recipient, idle_poll=3600.0)  # it would not look again for an hour by itself
    store.on_outbox_commit("mail", worker.wake)
    first = await _enqueue(store, frozen, lead_id=1)
    assert (await recipient.next()).delivery.id == first
    await _settled(store, first, attempts=1)  # the worker is idle again
    second = await _enqueue(store, frozen, lead_id=2)
    assert (await recipient.next()).delivery.id == second
