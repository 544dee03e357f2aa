"""Tasks: follow-ups with a due time and an assignee (callbacks for missed calls among them)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import Conflict, InvalidInput
from crm.domain.models import Agent, Client, Task
from crm.domain.paging import Page, paginate
from crm.services import notices
from crm.storage.rows import require

# An assigned task not yet reminded for its present due time.
_UNREMINDED = Task.agent_id.is_not(None) & (Task.reminded_for.is_(None) | (Task.reminded_for != Task.due_at))


class Tasks:
    """Follow-ups; every method works inside the caller's unit of work (session)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def get(self, s: AsyncSession, task_id: int) -> Task:
        return await require(s, Task, task_id, "task")

    async def search(
        self,
        s: AsyncSession,
        *,
        agent_id: int | None = None,
        open_only: bool | None = None,
        client_id: int | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Task]:
        """Tasks by assignee and state; `open_only=False` lists the done ones."""
        stmt = select(Task)
        if agent_id is not None:
            stmt = stmt.where(Task.agent_id == agent_id)
        if client_id is not None:
            stmt = stmt.where(Task.client_id == client_id)
        if open_only is not None:
            stmt = stmt.where(Task.done.is_(not open_only))
        return await paginate(s, stmt, Task.id, limit=limit, cursor=cursor)

    async def create(
        self, s: AsyncSession, *, client_id: int, title: str, due_at: datetime, agent_id: int | None
    ) -> Task:
        """A task for `agent_id`, or for the client's owner when none is named. A due time in the
        past is reminded at once."""
        client = await s.get(Client, client_id)
        if client is None:
            raise InvalidInput({"client_id": f"no client with id {client_id}"})
        assignee = agent_id if agent_id is not None else client.owner_id
        if assignee is None:
            raise InvalidInput(
                {"agent_id": f"client {client_id} has no owner: say which agent the task is for"}
            )
        agent = await s.get(Agent, assignee)
        if agent is None or agent.removed_at is not None:
            field = "agent_id" if agent_id is not None else "client_id"
            raise InvalidInput(
                {field: f"agent {assignee} {'does not exist' if agent is None else 'has left'}"}
            )
        text = title.strip()
        if not text:
            raise InvalidInput({"title": "must not be empty"})
        task = Task(
            client_id=client_id,
            agent_id=assignee,
            title=text[:300],
            due_at=due_at,
            created_at=self.clock.now(),
        )
        s.add(task)
        await s.flush()
        return task

    async def update(
        self, s: AsyncSession, task_id: int, *, done: bool | None = None, due_at: datetime | None = None
    ) -> Task:
        """Mark a task done (or open again), or move it: a task moved later is reminded again then.
        Doing either twice changes nothing."""
        task = await self.get(s, task_id)
        if due_at is not None:
            agent = await s.get(Agent, task.agent_id) if task.agent_id is not None else None
            if agent is not None and agent.removed_at is not None:
                raise Conflict(f"task {task_id} belongs to {agent.name}, who has left; it cannot be moved")
            task.due_at = due_at
        if done is not None and done != task.done:
            task.done = done
            task.done_at = self.clock.now() if done else None
        await s.flush()
        return task

    async def remind_due(self, s: AsyncSession, *, limit: int = 100) -> list[int]:
        """Enqueue a reminder for every open task that has come due and was not reminded for this
        due time; returns their ids. Marking and enqueueing share the transaction, and rows another
        process is reminding are skipped (`SKIP LOCKED`), so each due time is reminded exactly once."""
        now = self.clock.now()
        rows = await s.execute(
            select(Task)
            .where(Task.done.is_(False), Task.due_at <= now, _UNREMINDED)
            .order_by(Task.due_at, Task.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        due = list(rows.scalars())
        for task in due:
            task.reminded_for = task.due_at
            if task.agent_id is not None:  # the query asked for assigned tasks only
                await notices.remind(s, task.agent_id, task.id, task.client_id, clock=self.clock)
        await s.flush()
        return [t.id for t in due]

    async def next_due_at(self, s: AsyncSession) -> datetime | None:
        """When the next open, not yet reminded task comes due (for a worker deciding how long to sleep)."""
        row = await s.execute(select(func.min(Task.due_at)).where(Task.done.is_(False), _UNREMINDED))
        return row.scalar_one_or_none()
