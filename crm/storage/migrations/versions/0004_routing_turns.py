"""routing turns

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "routing_turns",
        sa.Column("pool", sa.String(length=100), nullable=False),
        sa.Column("last_agent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("turns", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["last_agent_id"], ["agents.id"], name=op.f("fk_routing_turns_last_agent_id_agents")
        ),
        sa.PrimaryKeyConstraint("pool", name=op.f("pk_routing_turns")),
    )


def downgrade() -> None:
    op.drop_table("routing_turns")
