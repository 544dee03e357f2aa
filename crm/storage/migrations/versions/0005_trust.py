"""trust: invites that expire, a lead's unapplied details, a channel's updates applied once

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invite_created_at", sa.DateTime(timezone=True), nullable=True))
    # Codes given before invites expired count from the agent's creation.
    op.execute("UPDATE agents SET invite_created_at = created_at WHERE invite_code IS NOT NULL")

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("unapplied", sa.JSON(), nullable=True))

    op.create_table(
        "applied_updates",
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("update_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("channel", "update_id", name=op.f("pk_applied_updates")),
    )
    with op.batch_alter_table("applied_updates", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_applied_updates_applied_at"), ["applied_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("applied_updates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_applied_updates_applied_at"))
    op.drop_table("applied_updates")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("unapplied")
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.drop_column("invite_created_at")
