"""SQLite connections for write units of work that run each call on the event loop's own thread.

aiosqlite runs every call on a thread of its connection and hands the result back to the loop:
for the short statements of a write transaction that round trip (three per statement: cursor,
execute, fetch) costs several times what SQLite takes to do the work. This module gives
SQLAlchemy's aiosqlite dialect (through `async_creator`) a connection with aiosqlite's shape
whose coroutines call `sqlite3` directly and finish without suspending.

The price is that the loop waits while SQLite works, so only short work uses it: write units of
work, which in one process already run one at a time (`Store.session`), and look-ups of a few
rows by key (`Store.looking_up`). The one wait
that could be long, for another process's write lock, is not spent inside SQLite: the connection
has no busy timeout, and `BEGIN` retries with `asyncio.sleep` until `busy_timeout_s` has passed.
Inside a transaction begun `IMMEDIATE`, in WAL mode, no statement waits for a lock.

SQLAlchemy's aiosqlite adapter reads private attributes of the connection it is given (`_conn`,
`_tx`, `_connection`), so this stand-in has them too. tests/crm/test_sqlite_inline.py reads the
adapter's source and fails, naming the attribute, when a new SQLAlchemy asks for one more.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

_FIRST_RETRY_S = 0.001
_MAX_RETRY_S = 0.05


def connector(path: str, busy_timeout_s: float) -> Callable[[], Any]:
    """An `async_creator` for `create_async_engine`: each call opens `path`."""

    async def connect() -> InlineConnection:
        conn = sqlite3.connect(path, timeout=0, check_same_thread=False, isolation_level=None)
        return InlineConnection(conn, busy_timeout_s)

    return connect


class _RunNow:
    """Stands for aiosqlite's queue of work for its thread: runs the work at once."""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except Exception as exc:
            if future is not None:
                future.set_exception(exc)
        else:
            if future is not None:
                future.set_result(result)


class InlineConnection:
    """What SQLAlchemy's aiosqlite adapter uses of an `aiosqlite.Connection`."""

    def __init__(self, conn: sqlite3.Connection, busy_timeout_s: float) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._tx = _RunNow()
        self.busy_timeout_s = busy_timeout_s

    @property
    def _connection(self) -> sqlite3.Connection | None:
        return self._conn

    @property
    def isolation_level(self) -> str | None:
        return self._live().isolation_level

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise ValueError("Connection closed")
        return self._conn

    def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._live().cursor())

    async def commit(self) -> None:
        self._live().commit()

    async def rollback(self) -> None:
        self._live().rollback()

    async def create_function(self, *args: Any, **kw: Any) -> None:
        self._live().create_function(*args, **kw)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class InlineCursor:
    """What SQLAlchemy's aiosqlite adapter uses of an `aiosqlite.Cursor`."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._connection = connection
        self._cursor = cursor

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._cursor.close()

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] = ()) -> InlineCursor:
        if sql.lstrip()[:5].upper() != "BEGIN":
            self._cursor.execute(sql, parameters)
            return self
        # Another process holds the write lock: wait for it here, not inside SQLite.
        deadline = time.monotonic() + self._connection.busy_timeout_s
        pause = _FIRST_RETRY_S
        while True:
            try:
                self._cursor.execute(sql, parameters)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                await asyncio.sleep(pause)
                pause = min(pause * 2, _MAX_RETRY_S)
            else:
                return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        self._cursor.executemany(sql, seq_of_parameters)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(size if size is not None else self._cursor.arraysize)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()

    async def nextset(self) -> None:
        return None
