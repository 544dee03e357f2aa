"""Background work that runs inside the gateway: task reminders, the sweep of calls whose
callbacks never came, and SQLite's checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from crm.service import Crm
from crm.storage.store import Store

log = logging.getLogger("gateway.workers")


class Periodic:
    """Runs `run_once()` now and again: when woken, or after `sleep_for()` seconds."""

    name = "worker"

    def __init__(self, store: Store, crm: Crm) -> None:
        self.store = store
        self.crm = crm
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def run_once(self) -> list[int]:
        raise NotImplementedError

    async def sleep_for(self) -> float:
        return 5.0

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.run_once()
                pause = await self.sleep_for()
            except Exception:
                log.exception("%s failed; trying again shortly", self.name)
                pause = 5.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), pause)


class Reminders(Periodic):
    """Wakes when tasks come due and enqueues one reminder per due time (`Tasks.remind_due`)."""

    name = "reminders"
    MAX_SLEEP = 5.0  # other processes add and move tasks too: look again at least this often

    async def run_once(self) -> list[int]:
        reminded: list[int] = []
        while True:
            async with self.store.session() as s:
                batch = await self.crm.tasks.remind_due(s)
            reminded += batch
            if not batch:
                return reminded

    async def sleep_for(self) -> float:
        async with self.store.looking_up() as s:
            upcoming: datetime | None = await self.crm.tasks.next_due_at(s)
        if upcoming is None:
            return self.MAX_SLEEP
        seconds = (upcoming - self.crm.clock.now()).total_seconds()
        return min(max(seconds, 0.05), self.MAX_SLEEP)


class CallSweeper(Periodic):
    """Marks calls missed that stayed `ringing` past CRM_MISSED_CALL_TIMEOUT (their callbacks
    were lost), so that none rings forever and each gets its callback task."""

    name = "call-sweeper"

    def __init__(self, store: Store, crm: Crm, *, timeout_s: int) -> None:
        super().__init__(store, crm)
        self.timeout = timedelta(seconds=timeout_s)

    async def run_once(self) -> list[int]:
        async with self.store.session() as s:
            swept = await self.crm.calls.sweep(s, ringing_timeout=self.timeout)
        if swept:
            log.info("calls %s never reported an answer: marked missed", swept)
        return swept


class WalCheckpoints(Periodic):
    """SQLite: copies the write-ahead log into the database file every second. Otherwise the
    commit that fills the log does it, and the webhook behind that commit waits for the disk."""

    name = "wal-checkpoints"

    async def run_once(self) -> list[int]:
        await self.store.checkpoint()
        return []

    async def sleep_for(self) -> float:
        return 1.0
