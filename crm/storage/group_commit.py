"""Group commit: the writes of concurrent requests share one transaction, and each request is
answered after that transaction has committed.

A request hands its item to `submit` and waits. While one batch is being written, the items
that arrive queue up and become the next batch, so under load a batch holds about as many
items as requests arrived during one write, and the per-transaction costs (BEGIN, the write
lock, the commit, each statement's round trip) are paid once per batch instead of once per
request. Before taking a batch the writer lets the loop run once, so that requests already read
(whose handlers are queued to run) join it rather than make a batch of their own; idle, a batch is
one item and nothing waits for a timer.

Durability stays the writer's: `apply` returns once its transaction has committed, and only
then are the requests answered. When a batch fails, its items are written again one at a time,
so a bad item fails alone and the others are still written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

log = logging.getLogger("crm.storage.group_commit")

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(Generic[T, R]):
    """Batches calls of `apply(items) -> results` (one result per item, in order), which writes
    and commits the items in one transaction."""

    def __init__(
        self, apply: Callable[[Sequence[T]], Awaitable[Sequence[R]]], *, name: str, max_batch: int = 256
    ) -> None:
        self.apply = apply
        self.name = name
        self.max_batch = max_batch
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._writer: asyncio.Task[None] | None = None
        # How well writes are shared, for the metrics: batches written and the items in them.
        self.batches = 0
        self.items = 0

    async def submit(self, item: T) -> R:
        """`item`'s result, once it is committed (with whatever else came meanwhile)."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all(), name=f"group commit: {self.name}")
        # A caller that goes away (its client hung up) does not cancel the write of the others.
        return await asyncio.shield(future)

    async def close(self) -> None:
        """Wait for what was submitted to be written."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def _write_all(self) -> None:
        try:
            while self._queue:
                await asyncio.sleep(0)
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                self.batches += 1
                self.items += len(batch)
                await self._write(batch)
        finally:
            self._writer = None

    async def _write(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self.apply([item for item, _ in batch])
        except Exception as exc:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(exc)
                return
            log.warning("%s: a batch of %d failed; writing its items one by one", self.name, len(batch))
            for one in batch:
                await self._write([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
