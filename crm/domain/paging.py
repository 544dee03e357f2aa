"""Keyset pagination: stable under inserts, cheap at any depth, an opaque cursor for callers."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from crm.domain.errors import InvalidInput

MAX_PAGE = 200
MAX_ID = 2**63 - 1  # the largest id a BIGINT (and SQLite's INTEGER) holds; larger ones name nothing
T = TypeVar("T")


def parse_id(raw: str) -> int | None:
    """`raw` as a record's id, or None when no record can have it (ids are 1 to `MAX_ID`)."""
    if not (raw.isascii() and raw.isdigit()) or len(raw) > len(str(MAX_ID)):
        return None
    value = int(raw)
    return value if 1 <= value <= MAX_ID else None


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("c"):
            raise ValueError(cursor)
        last_id = int(text[1:])
        if not 0 <= last_id <= MAX_ID:
            raise ValueError(cursor)
        return last_id
    except ValueError:  # covers bad base64 and bad UTF-8 too
        raise InvalidInput({"cursor": "not a cursor this API gave out"}) from None


async def paginate(
    s: AsyncSession,
    stmt: Select[Any],
    key: InstrumentedAttribute[int],
    *,
    limit: int,
    cursor: str | None,
    scalars: bool = True,
) -> Page[Any]:
    """Run `stmt` ordered by the integer `key`, from after `cursor`, at most `limit` rows."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidInput({"limit": f"must be between 1 and {MAX_PAGE}"})
    stmt = stmt.order_by(key).limit(limit + 1)
    if cursor:
        stmt = stmt.where(key > decode_cursor(cursor))
    result = await s.execute(stmt)
    rows: list[Any] = list(result.scalars() if scalars else result)
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    last_key = last if isinstance(last, int) else getattr(last, key.key, None)
    return Page(items=rows, next_cursor=encode_cursor(last_key) if more and last_key is not None else None)
