"""Agents: who takes calls and leads, how to reach them, whether they are on duty.

An agent binds their messenger chat with an invite code (`/start CODE`). A code binds one chat,
and only within `INVITE_LIFETIME` of being made: a code forwarded or found in an old mail later
cannot take over an agent's notices. `new_invite` makes a fresh code (`crm-gateway agent invite`).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import Conflict, CrmError, InvalidInput, InvalidPhone, NotFound
from crm.domain.models import Agent
from crm.domain.phones import parse_phone
from crm.domain.text import clean_name
from crm.services import notices

ROLES = ("agent", "admin")
INVITE_LIFETIME = timedelta(days=7)  # an unused invite code stops working after this


class BindingRefused(CrmError):
    """An invite code that cannot bind this chat; the message says what to do instead."""

    code = "binding_refused"


@dataclass(frozen=True, slots=True)
class AgentView:
    """What `agent list` and `GET /agents` show of an agent."""

    id: int
    name: str
    phone: str | None
    role: str
    on_duty: bool
    chat_bound: bool
    sip_uri: str | None
    client_identity: str | None

    @classmethod
    def of(cls, agent: Agent) -> AgentView:
        return cls(
            id=agent.id,
            name=agent.name,
            phone=agent.phone,
            role=agent.role,
            on_duty=agent.on_duty,
            chat_bound=agent.chat_id is not None,
            sip_uri=agent.sip_uri,
            client_identity=agent.client_identity,
        )


class Agents:
    def __init__(self, region: str, clock: Clock) -> None:
        self.region = region
        self.clock = clock

    async def add(
        self,
        s: AsyncSession,
        name: str,
        *,
        phone: str | None,
        role: str = "agent",
        sip_uri: str | None = None,
        client_identity: str | None = None,
    ) -> Agent:
        """A new agent with a fresh invite code for binding their chat."""
        errors: dict[str, str] = {}
        try:
            clean = clean_name(name)
        except InvalidInput as exc:
            errors.update(exc.fields)
        if role not in ROLES:
            errors["role"] = f"must be one of {', '.join(ROLES)}"
        e164 = raw = None
        if phone:
            try:
                parsed = parse_phone(phone, self.region)
                e164, raw = parsed.e164, parsed.raw
            except InvalidPhone as exc:
                errors["phone"] = str(exc)
        if sip_uri and not sip_uri.startswith(("sip:", "sips:")):
            errors["sip"] = f"{sip_uri!r} is not a SIP URI (sip:user@host)"
        if not (phone or sip_uri or client_identity):
            errors["phone"] = "give a phone number, a SIP URI or a softphone identity to ring"
        if errors:
            raise InvalidInput(errors)
        if e164 and await self.active_by_phone(s, e164) is not None:
            raise InvalidInput({"phone": f"{e164} is already an agent's number"})
        agent = Agent(
            name=clean,
            phone=e164,
            phone_raw=raw,
            role=role,
            sip_uri=sip_uri,
            client_identity=client_identity,
            on_duty=True,
            invite_code=_invite_code(),
            invite_created_at=(now := self.clock.now()),
            created_at=now,
        )
        s.add(agent)
        await s.flush()
        return agent

    async def get(self, s: AsyncSession, agent_id: int) -> Agent:
        agent = await s.get(Agent, agent_id)
        if agent is None:
            raise NotFound(f"no agent with id {agent_id}")
        return agent

    async def active(self, s: AsyncSession) -> list[Agent]:
        rows = await s.execute(select(Agent).where(Agent.removed_at.is_(None)).order_by(Agent.id))
        return list(rows.scalars())

    async def active_by_phone(self, s: AsyncSession, e164: str) -> Agent | None:
        rows = await s.execute(select(Agent).where(Agent.phone == e164, Agent.removed_at.is_(None)).limit(1))
        return rows.scalar_one_or_none()

    async def by_chat(self, s: AsyncSession, chat_id: int) -> Agent | None:
        """The active agent bound to this chat, if any."""
        rows = await s.execute(
            select(Agent).where(Agent.chat_id == chat_id, Agent.removed_at.is_(None)).limit(1)
        )
        return rows.scalar_one_or_none()

    async def bind_chat(self, s: AsyncSession, code: str, *, chat_id: int, user_id: int | None) -> Agent:
        """Bind a messenger chat to the agent whose invite `code` this is.

        A code works once: used by another chat it is refused, so a forwarded invite cannot take
        over an agent's notices; unused for `INVITE_LIFETIME`, it has expired. Binding the same
        chat again is harmless, however old the code.
        """
        code = code.strip()
        agent = None
        if code:
            rows = await s.execute(select(Agent).where(Agent.invite_code == code).limit(1))
            agent = rows.scalar_one_or_none()
        if agent is None or agent.removed_at is not None:
            raise BindingRefused(
                "this invite code is not valid; ask your admin for a new one (crm-gateway agent invite)"
            )
        if agent.chat_id == chat_id:
            agent.chat_user_id = user_id
            await s.flush()
            return agent
        if agent.chat_id is not None:
            raise BindingRefused("this invite code was used already; ask your admin for a new one")
        made = agent.invite_created_at
        if made is not None and self.clock.now() - made > INVITE_LIFETIME:
            raise BindingRefused(
                f"this invite code has expired (codes last {INVITE_LIFETIME.days} days); "
                f"ask your admin for a new one: crm-gateway agent invite {agent.id}"
            )
        other = await self.by_chat(s, chat_id)
        if other is not None and other.id != agent.id:
            raise BindingRefused(f"this chat is already bound to {other.name}")
        agent.chat_id = chat_id
        agent.chat_user_id = user_id
        await s.flush()
        return agent

    async def new_invite(self, s: AsyncSession, agent_id: int) -> Agent:
        """A fresh invite code for an agent whose chat is lost; the old code stops working.

        The chat bound now is unbound at once, not when the new one binds: a chat is lost with
        a phone, and whoever has the phone must not go on reading client cards, or answering
        clients as the agent, until the agent has a new one. That chat is told so. Until the new
        code binds a chat, the agent's notices are not delivered, as for an agent who never bound
        one. The new code binds whichever chat sends it first, within `INVITE_LIFETIME`.
        """
        agent = await s.get(Agent, agent_id, with_for_update=True)
        if agent is None:
            raise NotFound(f"no agent with id {agent_id}")
        if agent.removed_at is not None:
            raise Conflict(f"agent {agent_id} ({agent.name}) has left; add them again with `agent add`")
        await cut_off_chat(
            s,
            agent,
            f"This chat no longer gets {agent.name}'s cards and notices: a new invite was made for "
            "them. If that is a surprise, tell your admin.",
            clock=self.clock,
        )
        agent.invite_code = _invite_code()
        agent.invite_created_at = self.clock.now()
        await s.flush()
        return agent

    async def set_duty(self, s: AsyncSession, agent_id: int, on_duty: bool) -> Agent:
        agent = await self.get(s, agent_id)
        agent.on_duty = on_duty
        await s.flush()
        return agent

    async def on_duty(self, s: AsyncSession) -> list[Agent]:
        rows = await s.execute(
            select(Agent).where(Agent.removed_at.is_(None), Agent.on_duty.is_(True)).order_by(Agent.id)
        )
        return list(rows.scalars())

    async def admins(self, s: AsyncSession) -> list[Agent]:
        rows = await s.execute(
            select(Agent).where(Agent.removed_at.is_(None), Agent.role == "admin").order_by(Agent.id)
        )
        return list(rows.scalars())


async def cut_off_chat(s: AsyncSession, agent: Agent, farewell: str, *, clock: Clock) -> None:
    """Unbind the agent's chat, which gets `farewell` as its last message from us."""
    if agent.chat_id is not None:
        await notices.farewell(s, agent.id, agent.chat_id, farewell, clock=clock)
    agent.chat_id = None
    agent.chat_user_id = None


def _invite_code() -> str:
    return secrets.token_urlsafe(12)
