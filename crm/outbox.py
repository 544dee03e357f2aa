"""The outbox: what must reach the outside is written here in the cause's own transaction.

`crm` never talks to Telegram, mail servers or telephony providers. It enqueues a message for a
channel; the adapter that owns the channel claims it, delivers it and marks the outcome. Messages
of one `queue` (one recipient) go out in order: only the oldest pending message of a queue can be
claimed, and a claim is a lease, so a crashed sender's message is taken up again when it expires.
With several processes on PostgreSQL, claims skip rows another process holds (`SKIP LOCKED`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.models import OUTBOX, OutboxMessage

CHANNELS = ("telegram", "mail", "telephony")
# The channels a session enqueued messages for, so whoever owns the session can wake their
# senders once it commits (see `crm.store.Store`).
DIRTY = "crm_outbox_dirty"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed message: deliver it, then call `mark_sent`, `mark_retry` or `mark_failed`."""

    id: int
    channel: str
    queue: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


# Built once: every card, notice and mail is enqueued, claimed and settled here.
_ENQUEUE = (
    insert(OUTBOX)
    .returning(OUTBOX.c.id)
    .values(
        channel=bindparam("channel"),
        queue=bindparam("queue"),
        kind=bindparam("kind"),
        payload=bindparam("payload"),
        status="pending",
        attempts=0,
        next_attempt_at=bindparam("now"),
        created_at=bindparam("now"),
    )
)
# Pending messages of `channel` that are due at `now` and not leased to a sender.
_DUE_AND_FREE = (
    OUTBOX.c.channel == bindparam("channel"),
    OUTBOX.c.status == "pending",
    OUTBOX.c.next_attempt_at <= bindparam("now"),
    OUTBOX.c.locked_until.is_(None) | (OUTBOX.c.locked_until < bindparam("now")),
)
_DUE = select(OUTBOX.c.id).where(*_DUE_AND_FREE).limit(1)
_EARLIER = OUTBOX.alias("earlier")
_CLAIMABLE = (
    select(OUTBOX)
    .where(
        *_DUE_AND_FREE,
        # the oldest pending message of its queue
        ~select(_EARLIER.c.id)
        .where(
            _EARLIER.c.channel == OUTBOX.c.channel,
            _EARLIER.c.queue == OUTBOX.c.queue,
            _EARLIER.c.status == "pending",
            _EARLIER.c.id < OUTBOX.c.id,
        )
        .exists(),
    )
    .order_by(OUTBOX.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=OUTBOX)
)
_LEASE = (
    update(OUTBOX)
    .where(OUTBOX.c.id.in_(bindparam("ids", expanding=True)))
    .values(locked_until=bindparam("until"), attempts=OUTBOX.c.attempts + 1)
)


async def enqueue(
    s: AsyncSession,
    channel: str,
    kind: str,
    payload: dict[str, Any],
    *,
    queue: str,
    clock: Clock,
) -> int:
    """Add a message for `channel`. Messages of one `queue` (say, one agent) keep their order."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}")
    conn = await s.connection()
    params = {"channel": channel, "queue": queue, "kind": kind, "payload": payload, "now": clock.now()}
    result = await conn.execute(_ENQUEUE, params)
    s.info.setdefault(DIRTY, set()).add(channel)
    return int(result.scalar_one())


async def any_due(s: AsyncSession, channel: str, *, now: datetime) -> bool:
    """Whether `claim` may find something: a read, so that a sender with nothing to do does not
    wait for (or hold) SQLite's write lock."""
    conn = await s.connection()
    return (await conn.execute(_DUE, {"channel": channel, "now": now})).first() is not None


async def claim(
    s: AsyncSession, channel: str, *, now: datetime, lease: timedelta, limit: int = 50
) -> list[Delivery]:
    """Lease up to `limit` messages that are due, each the oldest pending one of its queue."""
    conn = await s.connection()
    rows = (await conn.execute(_CLAIMABLE, {"channel": channel, "now": now, "limit": limit})).all()
    if not rows:
        return []
    await conn.execute(_LEASE, {"ids": [m.id for m in rows], "until": now + lease})
    return [
        Delivery(m.id, m.channel, m.queue, m.kind, dict(m.payload), m.attempts + 1, m.created_at)
        for m in rows
    ]


# An outcome is recorded for every message sent: a Core statement built once (`message` is the id).
_SETTLE = update(OUTBOX).where(OUTBOX.c.id == bindparam("message"))
_MARK_DONE = _SETTLE.values(
    status=bindparam("outcome"), sent_at=bindparam("at"), locked_until=None, last_error=bindparam("error")
)


async def _mark_done(s: AsyncSession, message_id: int, outcome: str, at: datetime, error: str | None) -> None:
    conn = await s.connection()
    await conn.execute(_MARK_DONE, {"message": message_id, "outcome": outcome, "at": at, "error": error})


async def mark_sent(s: AsyncSession, message_id: int, *, now: datetime) -> None:
    await _mark_done(s, message_id, "sent", now, None)


async def mark_retry(
    s: AsyncSession, message_id: int, *, at: datetime, error: str, uncount: bool = False
) -> None:
    """Try again at `at`; the queue behind it waits, so order is kept. `uncount`: this attempt
    does not count against the message (the receiver only asked us to slow down)."""
    attempts = OUTBOX.c.attempts - 1 if uncount else OUTBOX.c.attempts
    conn = await s.connection()
    await conn.execute(
        _SETTLE.values(next_attempt_at=at, locked_until=None, last_error=error[:2000], attempts=attempts),
        {"message": message_id},
    )


async def mark_failed(s: AsyncSession, message_id: int, *, now: datetime, error: str) -> None:
    """Give up on a message that can never be delivered (the recipient is gone or blocked us)."""
    await _mark_done(s, message_id, "failed", now, error[:2000])


async def mark_skipped(s: AsyncSession, message_id: int, *, now: datetime, reason: str) -> None:
    """Not sent because it no longer matters (a reminder for a task done meanwhile)."""
    await _mark_done(s, message_id, "skipped", now, reason[:2000])


async def next_due(s: AsyncSession, channel: str) -> datetime | None:
    """When the next pending message of `channel` becomes due (for a sender deciding how long to sleep)."""
    row = await s.execute(
        select(func.min(OutboxMessage.next_attempt_at)).where(
            OutboxMessage.channel == channel, OutboxMessage.status == "pending"
        )
    )
    return row.scalar_one_or_none()


async def pending_count(s: AsyncSession, channel: str | None = None) -> int:
    stmt = select(func.count()).select_from(OutboxMessage).where(OutboxMessage.status == "pending")
    if channel is not None:
        stmt = stmt.where(OutboxMessage.channel == channel)
    return int((await s.execute(stmt)).scalar_one())


async def purge_delivered(s: AsyncSession, *, older_than: datetime) -> int:
    """Forget delivered and skipped messages after a while; failed ones stay for an operator to read."""
    result = await s.execute(
        delete(OutboxMessage).where(
            and_(OutboxMessage.status.in_(("sent", "skipped")), OutboxMessage.sent_at < older_than)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
