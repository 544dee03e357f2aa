"""The outbox: what must reach the outside is written here in the cause's own transaction.

`crm` never talks to messengers, mail servers or telephony providers. It enqueues a message for a
channel; the adapter that owns the channel claims it, delivers it and marks the outcome. Messages
of one `queue` (one recipient) go out in order: only the oldest pending message of a queue can be
claimed, and a claim is a lease, so a crashed sender's message is taken up again when it expires.
With several processes on PostgreSQL, claims skip rows another process holds (`SKIP LOCKED`).

A live sender keeps renewing the leases of what it is still sending (`renew`), so a slow
delivery is never claimed a second time. A claim is named by the message's id and its `attempts`
after the claim (each claim adds one): renewals and outcomes other than "sent" apply only while
that claim still holds the message, so a sender that lost its lease cannot disturb the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.models import OUTBOX, OutboxMessage
from crm.storage.rows import rows_changed

CHANNELS = ("chat", "mail", "telephony")  # the chat (`crm.services.notices`), mail, calls to place
# The channels a session enqueued messages for, so whoever owns the session can wake their
# senders once it commits (see `crm.storage.store.Store`).
DIRTY = "crm_outbox_dirty"


@dataclass(frozen=True, slots=True)
class Delivery:
    """A claimed message: deliver it, then call `mark_sent`, `mark_retry` or `mark_failed`.
    `attempts` (the count after this claim) also names the claim: see `renew`."""

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


# While a claim holds a message: `attempts` is still the claim's and no outcome has cleared
# `locked_until` (a claim after this one adds one to `attempts`; a settled retry clears the lease).
_HELD = (
    OUTBOX.c.id == bindparam("message"),
    OUTBOX.c.attempts == bindparam("attempt"),
    OUTBOX.c.status == "pending",
    OUTBOX.c.locked_until.is_not(None),
)
_RENEW = (
    update(OUTBOX)
    .where(
        tuple_(OUTBOX.c.id, OUTBOX.c.attempts).in_(bindparam("held", expanding=True)),
        OUTBOX.c.status == "pending",
        OUTBOX.c.locked_until.is_not(None),
    )
    .values(locked_until=bindparam("until"))
    .returning(OUTBOX.c.id)
)
_NOTE = update(OUTBOX).where(*_HELD).values(payload=bindparam("noted"))


async def renew(s: AsyncSession, held: Sequence[Delivery], *, until: datetime) -> set[int]:
    """Extend the leases of messages still being sent, in one statement; returns the ids whose
    claim still held them (the others were settled meanwhile, or their lease was lost)."""
    if not held:
        return set()
    conn = await s.connection()
    result = await conn.execute(_RENEW, {"held": [(d.id, d.attempts) for d in held], "until": until})
    return {int(row.id) for row in result}


async def note(s: AsyncSession, delivery: Delivery, payload: dict[str, Any]) -> bool:
    """Replace the message's payload while this claim still holds it (a sender noting, before an
    act it cannot take back, what the next claim must know); False when the lease was lost."""
    conn = await s.connection()
    params = {"message": delivery.id, "attempt": delivery.attempts, "noted": payload}
    return _applied(await conn.execute(_NOTE, params))


def _applied(result: Any) -> bool:
    return rows_changed(result) > 0


# An outcome is recorded for every message sent: Core statements built once (`message` is the id).
# "Sent" closes a message whoever holds it now: it was delivered, so nobody should send it again.
# The other outcomes apply only while the claim that reached them still holds the message.
_SENT = (
    update(OUTBOX)
    .where(OUTBOX.c.id == bindparam("message"), OUTBOX.c.status == "pending")
    .values(status="sent", sent_at=bindparam("at"), locked_until=None, last_error=None)
)
_SETTLE_HELD = update(OUTBOX).where(*_HELD)
_MARK_DONE = _SETTLE_HELD.values(
    status=bindparam("outcome"), sent_at=bindparam("at"), locked_until=None, last_error=bindparam("error")
)
_MARK_RETRY = _SETTLE_HELD.values(
    next_attempt_at=bindparam("at"), locked_until=None, last_error=bindparam("error")
)
_MARK_RETRY_UNCOUNTED = _SETTLE_HELD.values(
    next_attempt_at=bindparam("at"),
    locked_until=None,
    last_error=bindparam("error"),
    attempts=OUTBOX.c.attempts - 1,
)


async def _mark_done(s: AsyncSession, delivery: Delivery, outcome: str, at: datetime, error: str) -> bool:
    conn = await s.connection()
    params = {
        "message": delivery.id,
        "attempt": delivery.attempts,
        "outcome": outcome,
        "at": at,
        "error": error,
    }
    return _applied(await conn.execute(_MARK_DONE, params))


async def mark_sent(s: AsyncSession, delivery: Delivery, *, now: datetime) -> bool:
    """Delivered. False when the message was already settled (by whoever took over a lost lease)."""
    conn = await s.connection()
    return _applied(await conn.execute(_SENT, {"message": delivery.id, "at": now}))


async def mark_retry(
    s: AsyncSession, delivery: Delivery, *, at: datetime, error: str, uncount: bool = False
) -> bool:
    """Try again at `at`; the queue behind it waits, so order is kept. `uncount`: this attempt
    does not count against the message (the receiver only asked us to slow down).
    False when this claim no longer holds the message: its current holder decides."""
    conn = await s.connection()
    params = {"message": delivery.id, "attempt": delivery.attempts, "at": at, "error": error[:2000]}
    return _applied(await conn.execute(_MARK_RETRY_UNCOUNTED if uncount else _MARK_RETRY, params))


async def mark_failed(s: AsyncSession, delivery: Delivery, *, now: datetime, error: str) -> bool:
    """Give up on a message that can never be delivered (the recipient is gone or blocked us)."""
    return await _mark_done(s, delivery, "failed", now, error[:2000])


async def mark_skipped(s: AsyncSession, delivery: Delivery, *, now: datetime, reason: str) -> bool:
    """Not sent because it no longer matters (a reminder for a task done meanwhile)."""
    return await _mark_done(s, delivery, "skipped", now, reason[:2000])


async def purge_delivered(s: AsyncSession, *, older_than: datetime) -> int:
    """Forget delivered and skipped messages after a while; failed ones stay for an operator to read."""
    result = await s.execute(
        delete(OutboxMessage).where(
            and_(OutboxMessage.status.in_(("sent", "skipped")), OutboxMessage.sent_at < older_than)
        )
    )
    return rows_changed(result)
