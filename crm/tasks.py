"""Tasks: follow-ups with a due time and an assignee (callbacks for missed calls among them)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.errors import NotFound
from crm.models import Task
from crm.paging import Page, paginate


async def get_task(s: AsyncSession, task_id: int) -> Task:
    task = await s.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    return task


async def list_tasks(
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
