"""A task that comes due reminds its agent once, with the client's card; moved later, again then."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from crm.domain.models import OutboxMessage, Task
from gateway.keys import REMINDERS
from tests.bots.conftest import BotWorld


async def _task(world: BotWorld, agent_id: int, due_in: timedelta, title: str = "Call Ada back") -> int:
    now = world.clock.now()
    async with world.store.session() as s:
        ada = (
            await world.crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada Lovelace")
        ).client_id
        task = Task(client_id=ada, agent_id=agent_id, title=title, due_at=now + due_in, created_at=now)
        s.add(task)
        await s.flush()
        task_id = task.id
    world.app[REMINDERS].wake()
    return task_id


async def test_a_due_task_reminds_its_agent_once_with_the_card(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await _task(world, alice.id, timedelta(milliseconds=300))
    reminder = await world.bot_api.next_message(1001, timeout=5)
    text = reminder.plain_text or ""
    assert "Time to call Ada Lovelace: Call Ada back" in text
    assert "+1 415-555-0100" in text
    assert [b["text"] for b in reminder.buttons] == ["✔️ Done: Call Ada back"]
    world.app[REMINDERS].wake()
    await world.bot_api.no_message(1001, within=1.0)
    await world.press(1001, reminder, "✔️ Done: Call Ada back")
    await world.bot_api.next_call("answerCallbackQuery")
    async with world.store.reading() as s:
        assert (await world.crm.tasks.search(s, agent_id=alice.id, open_only=True)).items == []


async def test_a_task_moved_later_is_reminded_again_then(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    task_id = await _task(world, alice.id, timedelta(0))
    await world.bot_api.next_message(1001, timeout=5)
    async with world.store.session() as s:
        task = await s.get(Task, task_id)
        assert task is not None
        task.due_at = world.clock.now() + timedelta(hours=2)
    world.app[REMINDERS].wake()
    await world.bot_api.no_message(1001, within=0.5)
    world.clock.advance(hours=2, seconds=1)
    world.app[REMINDERS].wake()
    again = await world.bot_api.next_message(1001, timeout=5)
    assert "Time to call Ada Lovelace" in (again.plain_text or "")


async def test_a_done_task_is_never_reminded(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    now = world.clock.now()
    async with world.store.session() as s:
        ada = (await world.crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada")).client_id
        s.add(
            Task(
                client_id=ada,
                agent_id=alice.id,
                title="Old",
                due_at=now - timedelta(hours=1),
                done=True,
                done_at=now,
                created_at=now,
            )
        )
    world.app[REMINDERS].wake()
    await world.bot_api.no_message(1001, within=0.7)


async def test_a_task_done_before_its_reminder_goes_out_is_skipped(world: BotWorld) -> None:
    alice = await world.bound_agent("Alice", "+14155550001", chat_id=1001)
    await world.bot_api.stop()
    task_id = await _task(world, alice.id, timedelta(0))
    for _ in range(50):
        async with world.store.reading() as s:
            task = await s.get(Task, task_id)
            if task is not None and task.reminded_for is not None:
                break
        await asyncio.sleep(0.05)
    async with world.store.session() as s:
        await world.crm.tasks.update(s, task_id, done=True)
    # A try already under way when the task was done had read it as open: Telegram is back only
    # once the sender has looked again and dropped the reminder, so the test does not race it.
    for _ in range(100):
        async with world.store.reading() as s:
            statuses = (
                await s.execute(select(OutboxMessage.status).where(OutboxMessage.kind == "reminder"))
            ).scalars()
            if list(statuses) == ["skipped"]:
                break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the reminder of a done task was not dropped")
    await world.bot_api.start()
    await world.bot_api.no_message(1001, within=1.5)
