"""Migrations that move data: a database written by the previous schema keeps every row, both ways.

0006 renames the agents' chat columns and the chat's outbox channel (`telegram` → `chat`); the
messenger named by a client's account and by the bot's update ids stays `telegram`.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import JSON, Table, column, insert, select, table, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from crm.domain.clock import FrozenClock
from crm.domain.models import OUTBOX, AppliedUpdate, ChannelMessage, ClientIdentity, UtcDateTime
from crm.service import Crm
from crm.services import notices
from crm.storage.store import Store, alembic_config, create_engine

AT = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def _table(name: str, *columns: str, json: tuple[str, ...] = (), times: tuple[str, ...] = ()) -> Table:
    """A table as revision 0005 has it, with only the columns these tests write."""
    return table(
        name,
        column("id"),
        *(column(c) for c in columns),
        *(column(c, JSON()) for c in json),
        *(column(c, UtcDateTime()) for c in times),
    )


AGENTS_0005 = _table(
    "agents", "name", "role", "on_duty", "telegram_chat_id", "telegram_user_id", times=("created_at",)
)
OUTBOX_0005 = _table(
    "outbox",
    *("channel", "queue", "kind", "status", "attempts"),
    json=("payload",),
    times=("next_attempt_at", "created_at"),
)
CLIENTS_0005 = _table(
    "clients", "kind", "name", "name_folded", json=("tags", "custom"), times=("created_at", "updated_at")
)
IDENTITIES_0005 = _table("client_identities", "client_id", "channel", "external_id")
SENT_0005 = _table(
    "channel_messages", "channel", "address", "external_id", "kind", "client_id", times=("created_at",)
)
APPLIED_0005 = table(
    "applied_updates", column("channel"), column("update_id"), column("applied_at", UtcDateTime())
)


async def downgrade_to(url: str, revision: str) -> None:
    """Take a migrated database back to `revision`, as `alembic downgrade` does."""

    def downgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, revision)

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
    finally:
        await engine.dispose()


async def write_at_0005(url: str, *, chat_id: int, text: str) -> int:
    """An agent bound to chat `chat_id`, and a text notice waiting for them, as 0005 stored them;
    returns the agent's id."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            agent = await conn.execute(
                insert(AGENTS_0005)
                .values(
                    name="Alice",
                    role="agent",
                    on_duty=True,
                    telegram_chat_id=chat_id,
                    telegram_user_id=chat_id,
                    created_at=AT,
                )
                .returning(AGENTS_0005.c.id)
            )
            agent_id = int(agent.scalar_one())
            await conn.execute(
                insert(OUTBOX_0005).values(
                    channel="telegram",
                    queue=f"agent:{agent_id}",
                    kind="text",
                    status="pending",
                    attempts=0,
                    payload={"agent_id": agent_id, "text": text},
                    next_attempt_at=AT,
                    created_at=AT,
                )
            )
        return agent_id
    finally:
        await engine.dispose()


async def _write_client_at_0005(url: str) -> int:
    """A client who wrote from a messenger account, a card about them sent to the chat, and an
    update taken in; returns the client's id."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            client = await conn.execute(
                insert(CLIENTS_0005)
                .values(
                    kind="person",
                    name="Ada",
                    name_folded="ada",
                    tags=[],
                    custom={},
                    created_at=AT,
                    updated_at=AT,
                )
                .returning(CLIENTS_0005.c.id)
            )
            client_id = int(client.scalar_one())
            await conn.execute(
                insert(IDENTITIES_0005).values(client_id=client_id, channel="telegram", external_id="555")
            )
            await conn.execute(
                insert(SENT_0005).values(
                    channel="telegram",
                    address="1001",
                    external_id="42",
                    kind="card",
                    client_id=client_id,
                    created_at=AT,
                )
            )
            await conn.execute(insert(APPLIED_0005).values(channel="telegram", update_id=9, applied_at=AT))
        return client_id
    finally:
        await engine.dispose()


async def test_0006_renames_the_chat_words_and_back_keeping_every_row(db_url: str) -> None:
    await downgrade_to(db_url, "0005")
    agent_id = await write_at_0005(db_url, chat_id=1001, text="Call Ada back")
    client_id = await _write_client_at_0005(db_url)

    store = Store(db_url)
    crm = Crm(region="US", clock=FrozenClock(AT))
    try:
        await store.upgrade()
        async with store.reading() as s:
            alice = await crm.agents.by_chat(s, 1001)
            assert alice is not None and (alice.id, alice.chat_user_id) == (agent_id, 1001)
            assert (await s.execute(select(OUTBOX.c.channel, OUTBOX.c.status))).all() == [
                (notices.CHANNEL, "pending")
            ]
            sent = (await s.execute(select(ChannelMessage))).scalar_one()
            assert (sent.channel, sent.address, sent.client_id) == (notices.CHANNEL, "1001", client_id)
            # The messenger a client's account and an update id belong to is data: it stays.
            assert (await s.execute(select(ClientIdentity.channel))).scalar_one() == "telegram"
            assert (await s.execute(select(AppliedUpdate.channel))).scalar_one() == "telegram"
        async with store.session() as s:
            bob = await crm.agents.add(s, "Bob", phone="+14155550002")
        with pytest.raises(IntegrityError):  # the unique constraint came along with the column
            async with store.session() as s:
                await s.execute(text("UPDATE agents SET chat_id = 1001 WHERE id = :id"), {"id": bob.id})
    finally:
        await store.close()

    await downgrade_to(db_url, "0005")
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            chat = select(AGENTS_0005.c.telegram_chat_id).where(AGENTS_0005.c.id == agent_id)
            assert (await conn.execute(chat)).scalar_one() == 1001
            assert (await conn.execute(select(OUTBOX_0005.c.channel))).scalar_one() == "telegram"
            assert (await conn.execute(select(SENT_0005.c.channel))).scalar_one() == "telegram"
            assert (await conn.execute(select(IDENTITIES_0005.c.channel))).scalar_one() == "telegram"
    finally:
        await engine.dispose()
