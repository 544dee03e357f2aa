"""REST API bearer tokens. Only a SHA-256 of each token is stored: a leaked database leaks none."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.models import ApiToken
from crm.text import clean_name

PREFIX = "crm_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(s: AsyncSession, name: str, clock: Clock) -> str:
    """A new token, returned once; the caller must show it now, it cannot be read back."""
    token = PREFIX + secrets.token_urlsafe(32)
    await s.execute(
        insert(ApiToken).values(name=clean_name(name), token_hash=_digest(token), created_at=clock.now())
    )
    return token


async def token_name(s: AsyncSession, token: str) -> str | None:
    """The name of a live token, or None for an unknown or revoked one."""
    row = await s.execute(
        select(ApiToken.name).where(ApiToken.token_hash == _digest(token), ApiToken.revoked_at.is_(None))
    )
    return row.scalar_one_or_none()


async def revoke_token(s: AsyncSession, name: str, clock: Clock) -> int:
    result = await s.execute(
        update(ApiToken)
        .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
        .values(revoked_at=clock.now())
    )
    return int(getattr(result, "rowcount", 0) or 0)
