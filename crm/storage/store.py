"""The database: one engine per process, sessions as units of work, schema upgrades.

SQLite runs in WAL mode with `synchronous=NORMAL`, a busy timeout and foreign keys on. Every
SQLite write transaction starts with `BEGIN IMMEDIATE`, so two writers queue on the busy timeout
instead of failing half-way when a read lock cannot be upgraded; read-only units of work use a
plain `BEGIN` and never wait for writers.

SQLite has one write lock per file. Inside one process, write units of work take turns on an
`asyncio.Lock` before they begin: a waiter is woken the moment the lock is free, where SQLite's
own busy handler would sleep in steps of up to 100 ms (which made the p99 of every webhook
seconds long under load). Write units of work then run on the loop's own thread
(`crm.storage.sqlite_inline`), where a statement costs what SQLite takes, not three round trips to
aiosqlite's thread; a writer of another process is waited for with asyncio sleeps. So do
look-ups of a few rows by key (`Store.looking_up`). Other reads keep aiosqlite, since a search or
a report may take long enough to matter to the loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, closing, nullcontext
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import event, make_url, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session

from crm.delivery import outbox
from crm.storage import sqlite_inline
from crm.storage.group_commit import GroupCommit

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# The commit that grows the write-ahead log past this many pages copies it into the database
# file (and waits for the disk). The gateway checkpoints every second off the requests' path
# (`Store.checkpoint`), so this is only the bound for when nothing else does it.
SQLITE_AUTOCHECKPOINT_PAGES = 4_000
_READ_ONLY = "crm_read_only"
R = TypeVar("R")


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """An async engine for `url`, set up for concurrent use of this gateway."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        _tune_sqlite(engine.sync_engine, busy_timeout_ms=SQLITE_BUSY_TIMEOUT_MS)
        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _create_inline_engine(url: str, path: str, *, pool_size: int, max_overflow: int) -> AsyncEngine:
    """SQLite's engine whose statements run on the loop's thread (`crm.storage.sqlite_inline`): for write
    units of work, which take turns (two connections are plenty, and the one in use keeps its page
    cache warm), and for look-ups of a few rows by key."""
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        async_creator=sqlite_inline.connector(path, busy_timeout_s=SQLITE_BUSY_TIMEOUT_MS / 1000),
    )
    # No busy timeout inside SQLite: the wait for another process's lock is an asyncio sleep.
    _tune_sqlite(engine.sync_engine, busy_timeout_ms=0)
    return engine


def _tune_sqlite(engine: Engine, *, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # We emit BEGIN ourselves (below); sqlite3's own would skip SELECTs and SAVEPOINTs.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "PRAGMA journal_mode=WAL",
            "PRAGMA synchronous=NORMAL",
            f"PRAGMA busy_timeout={busy_timeout_ms}",
            f"PRAGMA wal_autocheckpoint={SQLITE_AUTOCHECKPOINT_PAGES}",
            "PRAGMA foreign_keys=ON",
        ):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        read_only = conn.get_execution_options().get(_READ_ONLY, False)
        # On the driver's cursor: every unit of work begins here, and SQLAlchemy's statement
        # machinery (a context, events, a result) costs more than the BEGIN itself.
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute("BEGIN" if read_only else "BEGIN IMMEDIATE")
        finally:
            cursor.close()


class Store:
    """The engine and its session factories; one per process, owned by whoever serves."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = create_engine(url, pool_size=pool_size)
        self.is_sqlite = url.startswith("sqlite")
        self._outbox_listeners: dict[str, list[Callable[[], None]]] = {}
        self._write_turn: asyncio.Lock | None = None
        self._file: str | None = None
        self._write_engine = self.engine
        self._lookup_engine = self.engine
        if self.is_sqlite:
            self._write_turn = asyncio.Lock()
            self._file = make_url(url).database or None
            if self._file and self._file != ":memory:":
                self._write_engine = _create_inline_engine(url, self._file, pool_size=1, max_overflow=1)
                self._lookup_engine = _create_inline_engine(url, self._file, pool_size=4, max_overflow=16)
        self._sessions = async_sessionmaker(self._write_engine, expire_on_commit=False)
        self._reads = async_sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )
        self.shared_writes: GroupCommit[Callable[[AsyncSession], Awaitable[Any]], Any] = GroupCommit(
            self._write_all, name="shared units of work"
        )
        self._lookups = async_sessionmaker(
            self._lookup_engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A unit of work: committed when the block ends normally, rolled back otherwise.

        When the work enqueued outbox messages, the senders are woken once it has committed.
        """
        async with self._writer_turn(), self._sessions() as session, session.begin():
            yield session
        for channel in session.info.pop(outbox.DIRTY, ()):
            for wake in self._outbox_listeners.get(channel, ()):
                wake()

    async def write_together(self, work: Callable[[AsyncSession], Awaitable[R]]) -> R:
        """Run `work` in a unit of work shared with the other `write_together` work that arrives
        meanwhile, one after another (a group commit, `crm.storage.group_commit`); returns once that unit
        has committed. For the small writes of many concurrent requests (telephony callbacks, leads):
        the costs of a transaction (SQLite's write turn, BEGIN, the commit) are paid once for all
        of them. When one fails, the others are run again without it, each in its own unit."""
        result: R = await self.shared_writes.submit(work)
        return result

    async def _write_all(self, works: Sequence[Callable[[AsyncSession], Awaitable[Any]]]) -> list[Any]:
        async with self.session() as s:
            return [await work(s) for work in works]

    async def write_sync(self, work: Callable[[Session], R]) -> R:
        """Run `work`, plain (blocking) SQLAlchemy, as one write unit of work
        (`AsyncSession.run_sync`): for hot paths, which then build no ORM objects and await
        nothing between statements."""
        async with self.session() as s:
            return await s.run_sync(work)

    def _writer_turn(self) -> AbstractAsyncContextManager[object]:
        """This process's turn to write (SQLite); PostgreSQL locks rows, so there is no turn."""
        return self._write_turn if self._write_turn is not None else nullcontext()

    def on_outbox_commit(self, channel: str, wake: Callable[[], None]) -> None:
        """Call `wake` after every commit that enqueued messages for `channel` (in this process)."""
        self._outbox_listeners.setdefault(channel, []).append(wake)

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work (never commits anything); on SQLite its statements run on a
        thread, so a long search or report does not hold up the loop."""
        async with self._reads() as session:
            yield session

    @asynccontextmanager
    async def looking_up(self) -> AsyncIterator[AsyncSession]:
        """A read-only unit of work for a few rows found by key (what a webhook or a sender reads
        on the hot path). On SQLite its statements run on the loop's thread, as writes do, which
        for such reads costs a fraction of a hand-off to a thread and back; each session has its
        own connection and snapshot, and takes no turn."""
        async with self._lookups() as session:
            yield session

    async def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database file, on a thread and a connection
        of its own. PASSIVE: it waits for no reader or writer, and they do not wait for it."""
        if self.is_sqlite and self._file is not None:
            await asyncio.to_thread(_checkpoint, self._file)

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
        await self.shared_writes.close()
        await self.engine.dispose()
        for inline in (self._write_engine, self._lookup_engine):
            if inline is not self.engine:
                await inline.dispose()


def _checkpoint(path: str) -> None:
    with closing(sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None)) as db:
        db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()


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
