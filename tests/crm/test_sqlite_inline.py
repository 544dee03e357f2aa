"""The fence around `crm.storage.sqlite_inline`, the one speed-up that leans on another library's
private parts: SQLAlchemy's aiosqlite adapter reaches into an `aiosqlite.Connection`'s internals
(`_conn`, `_tx`, `_connection`), and our inline connection stands in for one. A new SQLAlchemy may
reach for more. These tests read the adapter's own source and fail by name when it asks our stand-in
for something it does not have, before anything fails in production."""

from __future__ import annotations

import inspect
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import sqlalchemy
import sqlalchemy.connectors.asyncio as asyncio_connector
import sqlalchemy.dialects.sqlite.aiosqlite as aiosqlite_dialect
from sqlalchemy import text

from crm.storage.sqlite_inline import InlineConnection, InlineCursor
from crm.storage.store import Store

# What the adapter may use of a driver cursor that the inline one deliberately lacks: both serve
# only server-side cursors and `setinputsizes`, which SQLAlchemy never asks of SQLite.
NOT_NEEDED = {"__aiter__", "setinputsizes"}


def _asked_of(source: str, holder: str) -> set[str]:
    return set(re.findall(rf"self\.{holder}\.(\w+)", source))


def test_the_adapter_asks_the_inline_connection_only_for_what_it_has() -> None:
    """Every attribute the aiosqlite dialect reads off its driver connection exists on ours."""
    asked = _asked_of(inspect.getsource(aiosqlite_dialect), "_connection")
    assert {"_conn", "_tx", "_connection"} <= asked, "the adapter changed how it reaches aiosqlite"
    with closing(sqlite3.connect(":memory:")) as raw:
        ours = InlineConnection(raw, busy_timeout_s=1)
        missing = sorted(name for name in asked if not hasattr(ours, name))
    assert not missing, (
        f"SQLAlchemy {sqlalchemy.__version__}'s aiosqlite adapter uses {missing} of the driver "
        "connection: add them to crm.storage.sqlite_inline.InlineConnection"
    )


def test_the_adapter_asks_the_inline_cursor_only_for_what_it_has() -> None:
    asked = _asked_of(inspect.getsource(asyncio_connector), "_cursor") - NOT_NEEDED
    missing = sorted(name for name in asked if not hasattr(InlineCursor, name))
    assert not missing, (
        f"SQLAlchemy {sqlalchemy.__version__}'s async cursor adapter uses {missing} of the driver "
        "cursor: add them to crm.storage.sqlite_inline.InlineCursor"
    )


async def test_the_inline_engine_works_through_the_private_paths(tmp_path: Path) -> None:
    """The paths that go through aiosqlite's internals, run for real: setting the isolation level
    (through `_tx`), commit and rollback (guarded by `_connection`), and closing."""
    store = Store(f"sqlite+aiosqlite:///{tmp_path / 'fence.db'}")
    try:
        await store.upgrade()
        async with store.session() as s:
            await s.execute(text("CREATE TABLE fence (n INTEGER)"))
            await s.execute(text("INSERT INTO fence VALUES (1)"))
        try:
            async with store.session() as s:
                await s.execute(text("INSERT INTO fence VALUES (2)"))
                raise RuntimeError("roll back")
        except RuntimeError:
            pass
        async with store.looking_up() as s:
            assert (await s.execute(text("SELECT n FROM fence"))).scalars().all() == [1]
        engine = store._write_engine  # the inline engine itself, which only the store builds
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            assert (await conn.execute(text("SELECT count(*) FROM fence"))).scalar() == 1
    finally:
        await store.close()
