"""An update is taken in once; a failed one may come again; old marks are forgotten."""

from __future__ import annotations

from datetime import timedelta

from crm.domain.clock import FrozenClock
from crm.services import applied_updates
from crm.storage.store import Store


async def test_an_update_is_taken_once_unless_its_handling_failed(store: Store, clock: FrozenClock) -> None:
    now = clock.now()
    async with store.session() as s:
        assert await applied_updates.first_time(s, "telegram", 7, now=now) is True
    async with store.session() as s:
        assert await applied_updates.first_time(s, "telegram", 7, now=now) is False
        assert await applied_updates.first_time(s, "other", 7, now=now) is True  # channels apart
    async with store.session() as s:
        await applied_updates.release(s, "telegram", 7)
    async with store.session() as s:
        assert await applied_updates.first_time(s, "telegram", 7, now=now) is True


async def test_marks_older_than_a_week_are_forgotten(store: Store, clock: FrozenClock) -> None:
    async with store.session() as s:
        await applied_updates.first_time(s, "telegram", 1, now=clock.now() - timedelta(days=8))
        await applied_updates.first_time(s, "telegram", 2, now=clock.now() - timedelta(days=1))
    async with store.session() as s:
        assert await applied_updates.forget_old(s, now=clock.now()) == 1
    async with store.session() as s:
        assert await applied_updates.first_time(s, "telegram", 1, now=clock.now()) is True
        assert await applied_updates.first_time(s, "telegram", 2, now=clock.now()) is False
