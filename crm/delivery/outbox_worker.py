"""The loop every outbox channel runs: claim due messages, deliver each, record the outcome.

An adapter subclasses `OutboxWorker` and writes `deliver()`; the claiming, leasing, concurrency,
order per queue, retries and shutdown are here, once.

Leases: a claim holds a message for `lease`; while it is being delivered and until its outcome is
recorded, one heartbeat per worker extends the leases of everything in flight every `lease / 3`
(one statement, none when nothing is in flight). So however long a delivery takes (a slow Bot
API, a slow SMTP server, a voicemail download), no other sender claims it meanwhile; a process
that dies stops renewing, and its messages are taken over `lease` after its last renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.delivery.outbox import Delivery
from crm.domain.clock import Clock
from crm.storage.store import Store

log = logging.getLogger("crm.delivery.outbox")

AfterCommit = Callable[[AsyncSession], Awaitable[None]]
MAX_BACKOFF = 300.0
PURGE_EVERY = 3600.0
PURGE_AFTER = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class Sent:
    """Delivered; `record` writes what else should be kept, in the same transaction."""

    record: AfterCommit | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    delay: float
    error: str
    counts: bool = True  # False: the receiver only asked us to slow down


@dataclass(frozen=True, slots=True)
class Failed:
    """Never deliverable; `record` writes the consequences (a call marked failed, a notice)."""

    reason: str
    record: AfterCommit | None = None


@dataclass(frozen=True, slots=True)
class Skipped:
    reason: str


Outcome = Sent | Retry | Failed | Skipped


def backoff(attempts: int, first: float = 1.0) -> float:
    """Seconds before attempt `attempts + 1`: `first`, doubling, capped at 5 minutes, ±20%."""
    base = min(first * 2.0 ** max(attempts - 1, 0), MAX_BACKOFF)
    return base * random.uniform(0.8, 1.2)  # noqa: S311  # jitter, not cryptography


class OutboxWorker:
    """Drains one channel of the outbox; one per process and channel."""

    channel = ""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        concurrency: int = 30,
        lease: timedelta = timedelta(seconds=60),
        idle_poll: float = 1.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.concurrency = concurrency
        self.lease = lease
        self.idle_poll = idle_poll  # other processes enqueue too: look again this often
        self.first_retry = 1.0  # seconds; tests shorten it
        self._wakeup = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        # Claims being delivered or settled, by message id: what the heartbeat renews.
        self._held: dict[int, Delivery] = {}
        self._holding = asyncio.Event()
        self._heartbeat_task: asyncio.Task[None] | None = None

    async def deliver(self, delivery: Delivery) -> Outcome:
        raise NotImplementedError

    def retry(self, delivery: Delivery, error: str) -> Retry:
        return Retry(backoff(delivery.attempts, self.first_retry), error)

    def wake(self) -> None:
        """Something was enqueued: look now rather than at the next poll."""
        self._wakeup.set()

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name=f"outbox-{self.channel}")
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name=f"outbox-{self.channel}-leases")

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let deliveries under way finish (the rest stay queued in the store)."""
        self._stopping = True
        self._wakeup.set()
        if self._runner is not None:
            await self._runner
        if self._inflight:
            _, late = await asyncio.wait(self._inflight, timeout=grace)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat_task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        last_purge = loop.time()
        while not self._stopping:
            self._wakeup.clear()
            try:
                claimed = await self._claim()
            except Exception:
                log.exception("%s: could not claim outbox messages; trying again shortly", self.channel)
                claimed = []
            for delivery in claimed:
                self._held[delivery.id] = delivery
                self._holding.set()
                task = asyncio.create_task(self._handle(delivery))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if loop.time() - last_purge > PURGE_EVERY:
                last_purge = loop.time()
                await self._purge()
            if not claimed or len(self._inflight) >= self.concurrency:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), self.idle_poll)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wakeup.set()  # the next message of that queue may be due now

    async def _claim(self) -> list[Delivery]:
        room = self.concurrency - len(self._inflight)
        if room <= 0:
            return []
        async with self.store.looking_up() as s:
            if not await outbox.any_due(s, self.channel, now=self.clock.now()):
                return []
        async with self.store.session() as s:
            return await outbox.claim(s, self.channel, now=self.clock.now(), lease=self.lease, limit=room)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            try:
                outcome = await self.deliver(delivery)
            except Exception as exc:
                log.exception("%s: outbox %s failed unexpectedly", self.channel, delivery.id)
                outcome = self.retry(delivery, f"unexpected: {exc!r}")
            await self._settle(delivery, outcome)
        finally:
            if self._held.get(delivery.id) is delivery:
                del self._held[delivery.id]

    async def _settle(self, delivery: Delivery, outcome: Outcome) -> None:
        """Record the outcome. Tried a few times: a message recorded as sent is never resent.

        An outcome whose lease was lost (see `crm.delivery.outbox`) is dropped with its `record`: the
        sender that took the message over records its own."""
        for attempt in range(5):
            now = self.clock.now()
            try:
                async with self.store.session() as s:
                    recorded = await self._record(s, delivery, outcome, now)
                if not recorded:
                    log.warning(
                        "%s: outbox %s: its lease was lost (another sender took it over or settled it);"
                        " this outcome is dropped: %s",
                        self.channel,
                        delivery.id,
                        type(outcome).__name__,
                    )
                return
            except Exception:
                log.exception(
                    "%s: outbox %s: could not record the outcome (try %d)",
                    self.channel,
                    delivery.id,
                    attempt + 1,
                )
                await asyncio.sleep(0.5 * (attempt + 1))

    async def _record(self, s: AsyncSession, delivery: Delivery, outcome: Outcome, now: datetime) -> bool:
        """Write the outcome in `s`; False (and nothing written) when this claim lost its lease."""
        record: AfterCommit | None = None
        match outcome:
            case Sent():
                marked = await outbox.mark_sent(s, delivery, now=now)
                record = outcome.record
            case Failed(reason=reason):
                log.warning("%s: outbox %s given up: %s", self.channel, delivery.id, reason)
                marked = await outbox.mark_failed(s, delivery, now=now, error=reason)
                record = outcome.record
            case Skipped(reason=reason):
                marked = await outbox.mark_skipped(s, delivery, now=now, reason=reason)
            case Retry(delay=delay, error=error, counts=counts):
                at = now + timedelta(seconds=delay)
                marked = await outbox.mark_retry(s, delivery, at=at, error=error, uncount=not counts)
        if marked and record is not None:
            await record(s)
        return marked

    async def _heartbeat(self) -> None:
        """Every `lease / 3` while something is in flight, extend its leases (one statement)."""
        while True:
            await self._holding.wait()
            await asyncio.sleep(self.lease.total_seconds() / 3)
            if not self._held:
                self._holding.clear()
                continue
            try:
                await self._renew()
            except Exception:
                log.exception("%s: could not renew the leases of messages in flight", self.channel)

    async def _renew(self) -> None:
        held = list(self._held.values())
        async with self.store.session() as s:
            kept = await outbox.renew(s, held, until=self.clock.now() + self.lease)
        for delivery in held:
            # Settled meanwhile, or lost: nothing to renew any more (the settle says which).
            if delivery.id not in kept and self._held.get(delivery.id) is delivery:
                del self._held[delivery.id]

    async def _purge(self) -> None:
        try:
            async with self.store.session() as s:
                await outbox.purge_delivered(s, older_than=self.clock.now() - PURGE_AFTER)
        except Exception:
            log.exception("%s: could not purge delivered outbox messages", self.channel)
