"""What the domain tells agents. Each notice is an outbox message for the agent's own queue (so an
agent's notices keep their order); the messaging adapter renders it from the store when it sends.

Kinds: `text` (a sentence), `card` (a client card; with `call_id`, a call's card with outcome
buttons; with `headline`, a line above it; with `lead_id`, a lead's card showing what the form gave that the
client does not have), `reminder` (a task came due), `voicemail` (audio),
`farewell` (the last word to the chat of an agent who has left, addressed by the chat itself),
`client_message` (what a client wrote; the agent's reply to it goes back to the client).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm import outbox
from crm.clock import Clock

CHANNEL = "telegram"


def queue_of(agent_id: int) -> str:
    return f"agent:{agent_id}"


async def _notify(s: AsyncSession, kind: str, agent_id: int, payload: dict[str, Any], clock: Clock) -> int:
    return await outbox.enqueue(
        s, CHANNEL, kind, {"agent_id": agent_id, **payload}, queue=queue_of(agent_id), clock=clock
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
    return await _notify(s, "voicemail", agent_id, payload, clock)


async def farewell(s: AsyncSession, agent_id: int, chat_id: int, text: str, *, clock: Clock) -> int:
    """The last message to a leaving agent's chat, which is unbound in the same transaction."""
    return await _notify(s, "farewell", agent_id, {"chat_id": chat_id, "text": text}, clock)


async def relay(s: AsyncSession, agent_id: int, client_id: int, text: str, *, clock: Clock) -> int:
    """A client's message, for their agent to read and answer."""
    return await _notify(s, "client_message", agent_id, {"client_id": client_id, "text": text}, clock)
