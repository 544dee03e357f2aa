"""Test databases: a fresh, migrated database per test, on SQLite or on PostgreSQL.

`TEST_DATABASE_URL=postgresql+asyncpg://…` runs the suite on PostgreSQL (`.ci/run` sets it);
otherwise each test gets its own SQLite file. Either way the schema is made once per run by the
real migrations, then copied: a file copy on SQLite, `CREATE DATABASE … TEMPLATE` on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from crm.storage.store import create_engine, upgrade_schema

PG_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def backend() -> str:
    return "postgresql" if PG_URL else "sqlite"


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await upgrade_schema(engine)
    finally:
        await engine.dispose()


def _pg_dsn(url: str, database: str) -> str:
    parsed = make_url(url).set(drivername="postgresql", database=database)
    return parsed.render_as_string(hide_password=False)


class SqliteTemplates:
    def __init__(self, root: Path) -> None:
        self.template = root / "template.db"
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{self.template}"))

    def fresh(self, where: Path) -> str:
        target = where / "crm.db"
        shutil.copyfile(self.template, target)
        return f"sqlite+aiosqlite:///{target}"

    def drop(self, url: str) -> None:
        pass


class PostgresTemplates:
    def __init__(self) -> None:
        self.base = make_url(PG_URL)
        self.template = f"crm_tpl_{os.getpid()}"
        asyncio.run(self._create_template())

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(_pg_dsn(PG_URL, self.base.database or "postgres"))

    async def _create_template(self) -> None:
        conn = await self._admin()
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.template}"')
            await conn.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await conn.close()
        await _migrate(self.base.set(database=self.template).render_as_string(hide_password=False))

    def fresh(self, where: Path) -> str:
        name = f"crm_t_{uuid.uuid4().hex[:12]}"

        async def create() -> None:
            conn = await self._admin()
            try:
                await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
            finally:
                await conn.close()

        asyncio.run(create())
        return self.base.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        name = make_url(url).database

        async def drop() -> None:
            conn = await self._admin()
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())

    def close(self) -> None:
        async def drop() -> None:
            conn = await self._admin()
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{self.template}" WITH (FORCE)')
            finally:
                await conn.close()

        asyncio.run(drop())
