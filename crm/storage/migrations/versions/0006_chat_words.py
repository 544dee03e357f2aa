"""chat words: an agent's chat is `chat_id`, and the outbox channel of the chat is `chat`

The columns are renamed in place (SQLite ≥ 3.25 renames a column with ALTER TABLE too). A batch
rebuild of `agents` is not possible on SQLite: every other table refers to it, and dropping the
old table fails their foreign keys. So on SQLite the unique constraint on `chat_id` keeps its old
name inside the table's definition; SQLite never uses that name. PostgreSQL renames it.

What stays: `client_identities.channel`, `applied_updates.channel` and the `channel` in a
message's timeline entry name the messenger a client's account and an update id belong to; they
are data the adapter gives, not words of the domain.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.alter_column("agents", "telegram_chat_id", new_column_name="chat_id")
    op.alter_column("agents", "telegram_user_id", new_column_name="chat_user_id")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE agents RENAME CONSTRAINT uq_agents_telegram_chat_id TO uq_agents_chat_id")
    # Messages to the chat, waiting or sent, and what the chat's sent messages were about.
    op.execute("UPDATE outbox SET channel = 'chat' WHERE channel = 'telegram'")
    op.execute("UPDATE channel_messages SET channel = 'chat' WHERE channel = 'telegram'")


def downgrade() -> None:
    op.execute("UPDATE channel_messages SET channel = 'telegram' WHERE channel = 'chat'")
    op.execute("UPDATE outbox SET channel = 'telegram' WHERE channel = 'chat'")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE agents RENAME CONSTRAINT uq_agents_chat_id TO uq_agents_telegram_chat_id")
    op.alter_column("agents", "chat_user_id", new_column_name="telegram_user_id")
    op.alter_column("agents", "chat_id", new_column_name="telegram_chat_id")
