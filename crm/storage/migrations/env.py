"""Alembic environment: runs on the connection the gateway hands over (`crm.storage.store.upgrade_schema`),
or, for `alembic` on the command line, on `CRM_DATABASE_URL`."""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from crm.domain.models import Base

target_metadata = Base.metadata


def run_on(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def run_standalone() -> None:
    from crm.storage.store import create_engine

    engine = create_engine(os.environ.get("CRM_DATABASE_URL", "sqlite+aiosqlite:///./crm.db"))
    async with engine.begin() as conn:
        await conn.run_sync(run_on)
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    asyncio.run(run_standalone())
