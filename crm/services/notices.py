"""What the domain tells agents. Each notice is an outbox message for one of the agent's lanes
(outbox queues, each delivered in order); the messaging adapter renders it from the store when it
sends.

Cards first: an agent's cards and notices have a lane of their own (`queue_of`), where every
message is short and rendered from the store, so a call's card never waits behind anything slow.
What clients wrote goes in a second lane (`messages_queue_of`), in the order they wrote it; each
voicemail in a lane of its own (`voicemail_queue_of`), since its recording may take a while to
become available. A voicemail still goes out after the cards written before it (`earlier_pending`):
the missed call's card, then its recording.

Kinds: `text` (a sentence), `card` (a client card; with `call_id`, a call's card with outcome
buttons; with `headline`, a line above it; with `lead_id`, a lead's card showing what the form gave that the
client does not have), `reminder` (a task came due), `voicemail` (audio),
`farewell` (the last word to the chat of an agent who has left, addressed by the chat itself),
`client_message` (what a client wrote; the agent's reply to it goes back to the client),
`relay_paused` (a client writes faster than we relay: the rest is on their record only).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.domain.clock import Clock
from crm.domain.models import OUTBOX

# The outbox channel of the chat: these notices, and answers to clients who wrote in it
# (`crm.services.conversations`). The messenger's adapter drains it.
CHANNEL = "chat"


def queue_of(agent_id: int) -> str:
    """The agent's cards, notices and reminders."""
    return f"agent:{agent_id}"


def messages_queue_of(agent_id: int) -> str:
    """What clients wrote to the agent, in the order they wrote it."""
    return f"agent:{agent_id}:messages"


def voicemail_queue_of(agent_id: int, call_id: int) -> str:
    """One voicemail: while its recording is not available yet, it holds up nothing else."""
    return f"agent:{agent_id}:voicemail:{call_id}"


async def _notify(
    s: AsyncSession,
    kind: str,
    agent_id: int,
    payload: dict[str, Any],
    clock: Clock,
    *,
    queue: str | None = None,
) -> int:
    return await outbox.enqueue(
        s, CHANNEL, kind, {"agent_id": agent_id, **payload}, queue=queue or queue_of(agent_id), clock=clock
    )


async def tell(
    s: AsyncSession, agent_id: int, text: str, *, clock: Clock, client_id: int | None = None
) -> int:
    return await _notify(s, "text", agent_id, {"text": text, "client_id": client_id}, clock)


async def show_card(
    s: AsyncSession,
    agent_id: int,
    client_id: int,
    *,
    clock: Clock,
    call_id: int | None = None,
    headline: str | None = None,
    lead_id: int | None = None,
) -> int:
    payload: dict[str, Any] = {"client_id": client_id}
    if lead_id is not None:
        payload["lead_id"] = lead_id
    if call_id is not None:
        payload["call_id"] = call_id
    if headline is not None:
        payload["headline"] = headline
    return await _notify(s, "card", agent_id, payload, clock)


async def remind(s: AsyncSession, agent_id: int, task_id: int, client_id: int, *, clock: Clock) -> int:
    return await _notify(s, "reminder", agent_id, {"task_id": task_id, "client_id": client_id}, clock)


async def voicemail(
    s: AsyncSession,
    agent_id: int,
    *,
    call_id: int,
    client_id: int | None,
    url: str,
    duration_s: int | None,
    caller: str,
    clock: Clock,
) -> int:
    payload = {
        "call_id": call_id,
        "client_id": client_id,
        "url": url,
        "duration_s": duration_s,
        "caller": caller,
    }
    return await _notify(
        s, "voicemail", agent_id, payload, clock, queue=voicemail_queue_of(agent_id, call_id)
    )


async def farewell(s: AsyncSession, agent_id: int, chat_id: int, text: str, *, clock: Clock) -> int:
    """The last message to a leaving agent's chat, which is unbound in the same transaction."""
    return await _notify(s, "farewell", agent_id, {"chat_id": chat_id, "text": text}, clock)


async def relay(s: AsyncSession, agent_id: int, client_id: int, text: str, *, clock: Clock) -> int:
    """A client's message, for their agent to read and answer."""
    payload = {"client_id": client_id, "text": text}
    return await _notify(s, "client_message", agent_id, payload, clock, queue=messages_queue_of(agent_id))


async def relay_paused(
    s: AsyncSession, agent_id: int, client_id: int, *, per_minute: int, clock: Clock
) -> int:
    """The client writes more than `per_minute` messages a minute: their next ones are kept on
    their record without being passed on, and the agent is told so once, after those passed on."""
    payload = {"client_id": client_id, "per_minute": per_minute}
    return await _notify(s, "relay_paused", agent_id, payload, clock, queue=messages_queue_of(agent_id))


# Read for every attempt at a voicemail: the index on (channel, queue, id) serves it.
_EARLIER_PENDING = (
    select(OUTBOX.c.id)
    .where(
        OUTBOX.c.channel == CHANNEL,
        OUTBOX.c.queue == bindparam("queue"),
        OUTBOX.c.id < bindparam("message"),
        OUTBOX.c.status == "pending",
    )
    .limit(1)
)


async def earlier_pending(s: AsyncSession, agent_id: int, message_id: int) -> bool:
    """Whether a card or notice written for the agent before outbox message `message_id` has not
    gone out yet: a message of another lane that must not overtake them waits for them."""
    conn = await s.connection()
    params = {"queue": queue_of(agent_id), "message": message_id}
    return (await conn.execute(_EARLIER_PENDING, params)).first() is not None
