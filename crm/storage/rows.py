"""Rows read and written the same way everywhere: one by id or a 404, and how many changed."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.errors import NotFound

M = TypeVar("M")


async def require(s: AsyncSession, model: type[M], key: int, noun: str) -> M:
    """The `model` row with id `key`; `NotFound` ("no call with id 7") when there is none."""
    row = await s.get(model, key)
    if row is None:
        raise NotFound(f"no {noun} with id {key}")
    return row


def rows_changed(result: object) -> int:
    """The `rowcount` of an UPDATE or DELETE result (0 when the driver cannot tell: SQLAlchemy
    types a statement's result as `Result`, which has no `rowcount`, hence the `getattr`)."""
    return int(getattr(result, "rowcount", 0) or 0)
