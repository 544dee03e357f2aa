"""The store's tables. The schema is created only by the Alembic migrations in `crm/storage/migrations`.

Hot paths use Core statements on these tables (`Client.__table__`); services elsewhere may use
the ORM. Relationships are declared `lazy="raise"`: under asyncio an implicit lazy load is a bug.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every engine (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite's INTEGER PRIMARY KEY is 64-bit already; BigInteger elsewhere.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Json = JSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Agent(Base):
    """Someone who takes calls and leads. Removed agents stay (history points at them)."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_raw: Mapped[str | None] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16), default="agent")
    sip_uri: Mapped[str | None] = mapped_column(String(255))
    client_identity: Mapped[str | None] = mapped_column(String(255))
    on_duty: Mapped[bool] = mapped_column(Boolean, default=True)
    chat_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)  # the agents' chat, once bound
    chat_user_id: Mapped[int | None] = mapped_column(BigInteger)
    invite_code: Mapped[str | None] = mapped_column(String(64), unique=True)
    invite_created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # codes expire (crm.agents)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Client(Base):
    """A person or a company; a person may belong to a company (`company_id`)."""

    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    name: Mapped[str] = mapped_column(String(300))
    name_folded: Mapped[str] = mapped_column(String(300), index=True)
    company_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    custom: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_interaction_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ClientPhone(Base):
    """One of a client's numbers. `e164` is unique: one number belongs to one client."""

    __tablename__ = "client_phones"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    e164: Mapped[str | None] = mapped_column(String(32), unique=True)
    raw: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ClientEmail(Base):
    """One of a client's addresses; `address` is the lower-cased form used for matching."""

    __tablename__ = "client_emails"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    raw: Mapped[str] = mapped_column(String(320))
    position: Mapped[int] = mapped_column(Integer, default=0)


class ClientIdentity(Base):
    """A client's account on a messenger (the messenger's name, the account's id), for matching
    their messages to them."""

    __tablename__ = "client_identities"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_client_identities_channel_external"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    channel: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    display: Mapped[str | None] = mapped_column(String(200))


class Call(Base):
    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("provider", "provider_call_id", name="uq_calls_provider_call"),
        Index("ix_calls_client_started", "client_id", "started_at"),
        Index("ix_calls_status_started", "status", "started_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_call_id: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    from_number: Mapped[str | None] = mapped_column(String(64))
    to_number: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    duration_s: Mapped[int | None] = mapped_column(Integer)
    recording_url: Mapped[str | None] = mapped_column(String(500))
    outcome: Mapped[str | None] = mapped_column(String(32))
    notes: Mapped[str | None] = mapped_column(Text)
    dial_outcome: Mapped[str | None] = mapped_column(String(16))
    has_voicemail: Mapped[bool] = mapped_column(Boolean, default=False)


class CallLeg(Base):
    """One agent rung for a call: who was offered it, and (once known) the provider's leg id."""

    __tablename__ = "call_legs"
    __table_args__ = (UniqueConstraint("call_id", "agent_id", name="uq_call_legs_call_agent"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id"))
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str] = mapped_column(String(255))
    leg_id: Mapped[str | None] = mapped_column(String(64))
    answered: Mapped[bool] = mapped_column(Boolean, default=False)


class Interaction(Base):
    """One entry of a client's timeline: a call, message, lead, note or email."""

    __tablename__ = "interactions"
    __table_args__ = (Index("ix_interactions_client_at", "client_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    summary: Mapped[str] = mapped_column(Text)
    direction: Mapped[str | None] = mapped_column(String(16))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    data: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)


class Lead(Base):
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    assigned_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    source: Mapped[str | None] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(300))
    phone: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(320))
    message: Mapped[str | None] = mapped_column(Text)
    utm: Mapped[dict[str, str]] = mapped_column(Json, default=dict)
    extra: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    # Details the form gave that were not added to the matched client ({"phone": …, "email": …}):
    # a stranger's form may not change a client; an agent adds them with a button.
    unapplied: Mapped[dict[str, str] | None] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


class Stage(Base):
    """A pipeline stage; the default pipeline is seeded by the first migration."""

    __tablename__ = "stages"
    __table_args__ = (UniqueConstraint("pipeline", "name", name="uq_stages_pipeline_name"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(100), default="default")
    name: Mapped[str] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer)
    is_won: Mapped[bool] = mapped_column(Boolean, default=False)
    is_lost: Mapped[bool] = mapped_column(Boolean, default=False)


class Deal(Base):
    __tablename__ = "deals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    stage_id: Mapped[int] = mapped_column(ForeignKey("stages.id"))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_due_open", "done", "due_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    done_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), unique=True)
    reminded_for: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiToken(Base):
    """A REST API bearer token; only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxMessage(Base):
    """Something to deliver outside (a chat message, mail, a call to place), written in the
    same transaction as its cause and sent by a worker. `queue` keeps one recipient's order."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "status", "next_attempt_at"),
        Index("ix_outbox_queue", "channel", "queue", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ChannelMessage(Base):
    """A message we sent on a channel (`address` is the chat, `external_id` the channel's id of
    the message) and what it was about, so that a reply to it lands on the right client and call."""

    __tablename__ = "channel_messages"
    __table_args__ = (
        UniqueConstraint("channel", "address", "external_id", name="uq_channel_messages_message"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(128))
    external_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class RoutingTurn(Base):
    """Who had the last turn in a pool of agents that take leads in turn ("rule:2", "on-duty",
    "admins"). Kept in the store so that turns stay fair across restarts and processes."""

    __tablename__ = "routing_turns"

    pool: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_agent_id: Mapped[int | None] = mapped_column(ForeignKey("agents.id"))
    turns: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AppliedUpdate(Base):
    """An update from a messaging channel already taken in: a channel may deliver one again (a
    webhook retried, a poller that died before confirming), and a replay must change nothing."""

    __tablename__ = "applied_updates"

    channel: Mapped[str] = mapped_column(String(32), primary_key=True)
    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    applied_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


DEFAULT_STAGES = (
    ("New", False, False),
    ("Contacted", False, False),
    ("Qualified", False, False),
    ("Proposal", False, False),
    ("Won", True, False),
    ("Lost", False, True),
)


# The tables of many-row statements and hot-path writes (the CSV import, calls), as Core tables:
# `insert(Call)` with a list of rows goes through the ORM's bulk path, which costs more per row
# than the write, and an ORM-enabled `update()` costs several times the Core one.
CLIENTS: Table = Base.metadata.tables["clients"]
CLIENT_PHONES: Table = Base.metadata.tables["client_phones"]
CLIENT_EMAILS: Table = Base.metadata.tables["client_emails"]
CALLS: Table = Base.metadata.tables["calls"]
CALL_LEGS: Table = Base.metadata.tables["call_legs"]
INTERACTIONS: Table = Base.metadata.tables["interactions"]
OUTBOX: Table = Base.metadata.tables["outbox"]
ROUTING_TURNS: Table = Base.metadata.tables["routing_turns"]


def expire_client(s: AsyncSession, client_id: int, *attributes: str) -> None:
    """After a Core statement changed `attributes` of a client's row: the session's copy of the
    client, if it has one, reads them again on next use."""
    client = s.identity_map.get(Session.identity_key(Client, client_id))
    if client is not None:
        s.expire(client, list(attributes))
