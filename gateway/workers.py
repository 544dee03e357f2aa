"""Background work of the domain that runs inside the gateway: task reminders, and the sweep of
calls whose callbacks never came."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

from crm import tasks
from crm.service import Crm
from crm.store import Store

log = logging.getLogger("gateway.workers")

MAX_SLEEP = 5.0  # other processes add and move tasks too: look again at least this often


class Reminders:
    """Wakes when tasks come due and enqueues one reminder per due time (see `crm.tasks.remind_due`)."""

    def __init__(self, store: Store, crm: Crm) -> None:
        self.store = store
        self.crm = crm
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reminders")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> list[int]:
        async with self.store.session() as s:
            return await tasks.remind_due(s, clock=self.crm.clock)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                while len(await self.run_once()) > 0:
                    pass
                async with self.store.reading() as s:
                    upcoming = await tasks.next_due_at(s)
            except Exception:
                log.exception("reminders: could not check due tasks; trying again shortly")
                upcoming = None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self._sleep_for(upcoming))

    def _sleep_for(self, upcoming: datetime | None) -> float:
        if upcoming is None:
            return MAX_SLEEP
        seconds = (upcoming - self.crm.clock.now()).total_seconds()
        return min(max(seconds, 0.05), MAX_SLEEP)


class CallSweeper:
    """Marks calls missed that stayed `ringing` past CRM_MISSED_CALL_TIMEOUT (their callbacks
    were lost), so that none rings forever and each gets its callback task."""

    def __init__(self, store: Store, crm: Crm, *, timeout_s: int, every_s: float = 5.0) -> None:
        self.store = store
        self.crm = crm
        self.timeout = timedelta(seconds=timeout_s)
        self.every = every_s
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wakeup.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="call-sweeper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def run_once(self) -> list[int]:
        async with self.store.session() as s:
            return await self.crm.calls.sweep(s, ringing_timeout=self.timeout)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                swept = await self.run_once()
                if swept:
                    log.info("calls %s never reported an answer: marked missed", swept)
            except Exception:
                log.exception("call sweep failed; trying again shortly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), self.every)
