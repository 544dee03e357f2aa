"""The database: one engine per process, sessions as units of work, schema upgrades.

SQLite runs in WAL mode with `synchronous=NORMAL`, a busy timeout and foreign keys on. Every
SQLite write transaction starts with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
instead of failing half-way when a read lock cannot be upgraded; read-only units of work use a
plain `BEGIN` and never wait for writers.

SQLite has one write lock per file. Inside one process, write units of work take turns on an
`asyncio.Lock` before they begin: a waiter is woken the moment the lock is free, where SQLite's
own busy handler would sleep in steps of up to 100 ms (which made the p99 of every webhook
seconds long under load). The busy timeout still covers writers in other processes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from crm import outbox

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_READ_ONLY = "crm_read_only"


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`, set up for concurrent use of this gateway."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _tune_sqlite(engine)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _tune_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); sqlite3's own would skip SELECTs and SAVEPOINTs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


class Store:
    """The engine and its session factories; one per process, owned by whoever serves."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._outbox_listeners: list[Callable[[], None]] = []
        self._write_turn: asyncio.Lock | None = asyncio.Lock() if self.is_sqlite else None
        self._reads = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends normally, rolled back otherwise.

        When the work enqueued outbox messages, the senders are woken once it has committed.
        """
        async with self._writer(), self._sessions() as session, session.begin():
            yield session
        if session.info.pop(outbox.DIRTY, False):
            for wake in self._outbox_listeners:
                wake()

    def _writer(self) -> AbstractAsyncContextManager[object]:
        """This process's turn to write (SQLite); PostgreSQL locks rows, so there is no turn."""
        return self._write_turn if self._write_turn is not None else nullcontext()

    def on_outbox_commit(self, wake: Callable[[], None]) -> None:
        """Call `wake` after every commit that enqueued outbox messages (in this process)."""
        self._outbox_listeners.append(wake)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (never commits anything)."""
        async with self._reads() as session:
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "the database does not answer"
            return False
        return True

    async def upgrade(self) -> None:
        await upgrade_schema(self.engine)

    async def close(self) -> None:
        await self.engine.dispose()


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration (Alembic), on the engine's own connection."""

    def upgrade(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    async with engine.begin() as conn:
        await conn.run_sync(upgrade)
