"""Clients who write to us on a messenger: their messages reach an agent, the agent's replies
reach them, and the whole thread is on the client's timeline.

A writer is matched by their messenger account (`ClientIdentity`); a phone they share is matched
to the client who already has it, and the two records are merged (the one with the phone
survives, so a caller and a writer become one client).

The relay limit: a client's messages are passed on to their agent while the client's last minute
holds at most `RELAY_PER_MINUTE` of them (this one included); the next one is replaced by a note
to the agent that the client keeps writing, and the rest are kept on the client's timeline only
(nothing is lost) until the client slows down. So an agent's chat gets at most
`RELAY_PER_MINUTE + 1` messages from one client in any minute. Counted from the timeline, so every
process counts the same messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput
from crm.domain.models import INTERACTIONS, Agent, ClientIdentity, UtcDateTime
from crm.domain.phones import parse_phone
from crm.services import notices, timeline
from crm.services.clients import Clients
from crm.services.merge import Merger
from crm.services.routing import Router

log = logging.getLogger("crm.conversations")

MAX_TEXT = 4000
RELAY_PER_MINUTE = 10  # more than a person types; a flood reaches the agent as this many and a note
RELAY_WINDOW = timedelta(minutes=1)

# Read for every message a client writes; the (client_id, at) index serves it.
_RECENT_MESSAGES = (
    select(func.count())
    .select_from(INTERACTIONS)
    .where(
        INTERACTIONS.c.client_id == bindparam("client"),
        INTERACTIONS.c.at > bindparam("since", type_=UtcDateTime()),
        INTERACTIONS.c.kind == "message",
        INTERACTIONS.c.direction == "inbound",
    )
)


@dataclass(frozen=True, slots=True)
class Incoming:
    client_id: int
    client_created: bool
    agent_id: int | None  # who was told; None when there is nobody to tell


@dataclass(frozen=True, slots=True)
class SharedPhone:
    client_id: int
    merged_from: int | None  # the messenger-only client folded into the one with the phone


class Conversations:
    def __init__(self, clients: Clients, router: Router, merger: Merger, clock: Clock) -> None:
        self.clients = clients
        self.router = router
        self.merger = merger
        self.clock = clock

    async def incoming(
        self, s: AsyncSession, channel: str, account: str, *, name: str, text: str, handle: str | None = None
    ) -> Incoming:
        """A client's message: stored on their record and passed to their agent (the owner on
        duty, else whoever routing picks, who then owns the client)."""
        body = text.strip()[:MAX_TEXT]
        match = await self.clients.find_or_create_by_identity(s, channel, account, name=name, display=handle)
        client_id = match.client_id
        now = self.clock.now()
        await timeline.record(
            s, client_id, "message", body, at=now, direction="inbound", data={"channel": channel}
        )
        agent = await self.router.agent_for(s, client_id)
        if agent is None:
            log.warning("message from client %s: there is no agent to tell", client_id)
            return Incoming(client_id, match.created, None)
        await self.clients.set_owner_if_none(s, client_id, agent.id)
        await self._pass_on(s, agent.id, client_id, body, since=now - RELAY_WINDOW)
        return Incoming(client_id, match.created, agent.id)

    async def _pass_on(
        self, s: AsyncSession, agent_id: int, client_id: int, body: str, *, since: datetime
    ) -> None:
        """The relay limit. The count includes this message, and sees every message of this client
        committed before it: recording it updated the client's row, which waits for any other
        transaction that recorded one."""
        conn = await s.connection()
        written = (await conn.execute(_RECENT_MESSAGES, {"client": client_id, "since": since})).scalar_one()
        if written <= RELAY_PER_MINUTE:
            await notices.relay(s, agent_id, client_id, body, clock=self.clock)
        elif written == RELAY_PER_MINUTE + 1:
            await notices.relay_paused(s, agent_id, client_id, per_minute=RELAY_PER_MINUTE, clock=self.clock)
        else:
            log.info("client %s writes faster than we relay: message kept on the record only", client_id)

    async def reply(self, s: AsyncSession, agent: Agent, client_id: int, text: str) -> None:
        """An agent answers a client: delivered in the chat, to the account the client wrote from."""
        body = text.strip()
        if not body:
            raise InvalidInput({"text": "an empty reply cannot be sent"})
        row = await s.execute(
            select(ClientIdentity)
            .where(ClientIdentity.client_id == client_id)
            .order_by(ClientIdentity.id)
            .limit(1)
        )
        identity = row.scalar_one_or_none()
        if identity is None:
            raise InvalidInput({"client_id": "this client has not written to us on a messenger"})
        await timeline.record(
            s,
            client_id,
            "message",
            body[:MAX_TEXT],
            at=self.clock.now(),
            direction="outbound",
            agent_id=agent.id,
            data={"channel": identity.channel},
        )
        await outbox.enqueue(
            s,
            notices.CHANNEL,
            "to_client",
            {
                "client_id": client_id,
                "account": identity.external_id,
                "text": body[:MAX_TEXT],
                "agent_id": agent.id,
            },
            queue=f"client:{client_id}",
            clock=self.clock,
        )

    async def shared_phone(
        self, s: AsyncSession, channel: str, account: str, *, name: str, phone: str, region: str
    ) -> SharedPhone:
        """The writer shared their number: the client who has it absorbs the messenger-only
        record, or the number is added to the writer's record."""
        parsed = parse_phone(phone, region)
        writer = (await self.clients.find_or_create_by_identity(s, channel, account, name=name)).client_id
        holder = await self.clients.id_by_phone(s, parsed.e164)
        if holder is None:
            await self.clients.add_phone(s, writer, parsed)
            return SharedPhone(writer, None)
        if holder == writer:
            return SharedPhone(writer, None)
        await self.merger.merge(s, holder, writer)
        return SharedPhone(holder, writer)
