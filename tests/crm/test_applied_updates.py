"""An update is taken in once; a failed one may come again; old marks are forgotten."""

from __future__ import annotations

from crm.domain.clock import FrozenClock
from crm.service import Crm
from crm.storage.store import Store


async def test_an_update_is_taken_once_unless_its_handling_failed(store: Store, crm: Crm) -> None:
    applied = crm.applied_updates
    async with store.session() as s:
        assert await applied.first_time(s, "telegram", 7) is True
    async with store.session() as s:
        assert await applied.first_time(s, "telegram", 7) is False
        assert await applied.first_time(s, "other", 7) is True  # channels apart
    async with store.session() as s:
        await applied.release(s, "telegram", 7)
    async with store.session() as s:
        assert await applied.first_time(s, "telegram", 7) is True


async def test_marks_older_than_a_week_are_forgotten(store: Store, crm: Crm, clock: FrozenClock) -> None:
    applied = crm.applied_updates
    async with store.session() as s:
        await applied.first_time(s, "telegram", 1)
    clock.advance(days=7)
    async with store.session() as s:
        await applied.first_time(s, "telegram", 2)
    clock.advance(days=1)
    async with store.session() as s:
        assert await applied.forget_old(s) == 1
    async with store.session() as s:
        assert await applied.first_time(s, "telegram", 1) is True
        assert await applied.first_time(s, "telegram", 2) is False
