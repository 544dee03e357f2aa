"""The store as a DBA would check it: schema by migrations only, SQLite tuned for concurrent use."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import make_url, select, text

from crm.storage.store import Store
from tests.databases import backend


async def test_the_schema_is_at_the_newest_migration(store: Store) -> None:
    from alembic.script import ScriptDirectory

    from crm.storage.store import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    async with store.reading() as s:
        current = (await s.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        stages = (await s.execute(text("SELECT name FROM stages ORDER BY position"))).scalars().all()
    assert current == head
    assert stages == ["New", "Contacted", "Qualified", "Proposal", "Won", "Lost"]


async def test_upgrading_twice_changes_nothing(store: Store) -> None:
    await store.upgrade()
    await store.upgrade()
    async with store.reading() as s:
        assert (await s.execute(text("SELECT count(*) FROM stages"))).scalar_one() == 6


@pytest.mark.skipif(backend() != "sqlite", reason="SQLite pragmas")
async def test_sqlite_runs_in_wal_mode_with_foreign_keys_and_a_busy_timeout(store: Store) -> None:
    for unit in (store.session, store.reading):
        async with unit() as s:
            mode = (await s.execute(text("PRAGMA journal_mode"))).scalar_one()
            fks = (await s.execute(text("PRAGMA foreign_keys"))).scalar_one()
            timeout = (await s.execute(text("PRAGMA busy_timeout"))).scalar_one()
            sync = (await s.execute(text("PRAGMA synchronous"))).scalar_one()
        assert (mode, fks, sync) == ("wal", 1, 1)
        # Writers run on the event loop's thread and wait for a lock with asyncio sleeps
        # (crm.storage.sqlite_inline), not inside SQLite; readers keep SQLite's own busy timeout.
        assert timeout == 0 if unit == store.session else timeout >= 5000


@pytest.mark.skipif(backend() != "sqlite", reason="SQLite's one write lock")
async def test_a_writer_waits_for_another_process_lock_without_stopping_the_loop(store: Store) -> None:
    """Another process holds SQLite's write lock for a while: our write waits for it and then
    goes through, and meanwhile the event loop keeps serving everything else."""
    path = make_url(store.url).database
    assert path is not None
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")

    async def write() -> None:
        async with store.session() as s:
            await s.execute(text("UPDATE stages SET name = name WHERE position = 0"))

    try:
        writing = asyncio.create_task(write())
        await asyncio.sleep(0)  # the write starts and finds the lock taken
        async with store.reading() as s:  # meanwhile the loop serves other work to the end
            served = (await s.execute(text("SELECT count(*) FROM stages"))).scalar_one()
        assert served == 6 and not writing.done()  # while the write still waits for the lock
        await asyncio.to_thread(other.execute, "COMMIT")
        await asyncio.wait_for(writing, 10)  # then it goes through (the deadline only bounds a hang)
    finally:
        other.close()


async def test_a_failed_unit_of_work_leaves_nothing_behind(store: Store) -> None:
    from crm.service import Crm
    from crm.services.clients import ClientDraft

    crm = Crm()

    async def crash_half_way() -> None:
        async with store.session() as s:
            await crm.clients.create(s, ClientDraft(name="Ada", phones=["+14155550100"]))
            raise RuntimeError("crash half-way")

    with pytest.raises(RuntimeError):
        await crash_half_way()
    async with store.reading() as s:
        assert await crm.clients.count(s) == 0


async def test_work_written_together_commits_all_but_the_one_that_fails(store: Store) -> None:
    from sqlalchemy.ext.asyncio import AsyncSession

    from crm.domain.models import Client
    from crm.service import Crm
    from crm.services.clients import ClientDraft

    crm = Crm()

    def create(name: str, phone: str, *, then_fail: bool = False) -> Callable[[AsyncSession], Awaitable[int]]:
        async def work(s: AsyncSession) -> int:
            client_id = await crm.clients.create(s, ClientDraft(name=name, phones=[phone]))
            if then_fail:
                raise RuntimeError(f"{name} fails after writing")
            return client_id

        return work

    results = await asyncio.gather(
        store.write_together(create("Ada", "+14155550101")),
        store.write_together(create("Bob", "+14155550102", then_fail=True)),
        store.write_together(create("Cy", "+14155550103")),
        return_exceptions=True,
    )

    assert isinstance(results[0], int) and isinstance(results[2], int)
    assert isinstance(results[1], RuntimeError)
    async with store.reading() as s:
        names = sorted((await s.execute(select(Client.name))).scalars())
    assert names == ["Ada", "Cy"]
