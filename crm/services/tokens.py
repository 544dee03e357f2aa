"""REST API bearer tokens. Only a SHA-256 of each token is stored: a leaked database leaks none.

A token is looked up in the database at every request, never cached: a revoked one stops working
at its next request, in every gateway process.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import NotFound
from crm.domain.models import ApiToken
from crm.domain.text import clean_name
from crm.storage.rows import rows_changed

PREFIX = "crm_"


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Whose a token is, and whether it still works."""

    name: str
    revoked: bool


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What `token list` shows of a token: never the token, which is not stored anyway."""

    name: str
    created_at: datetime


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Tokens:
    """Issuing, checking and revoking tokens; every method works inside the caller's session."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def create(self, s: AsyncSession, name: str) -> str:
        """A new token, returned once; the caller must show it now, it cannot be read back."""
        token = PREFIX + secrets.token_urlsafe(32)
        await s.execute(
            insert(ApiToken).values(
                name=clean_name(name), token_hash=_digest(token), created_at=self.clock.now()
            )
        )
        return token

    async def holder(self, s: AsyncSession, token: str) -> TokenHolder | None:
        """Whose `token` is (revoked or not), or None for one never issued."""
        row = await s.execute(
            select(ApiToken.name, ApiToken.revoked_at).where(ApiToken.token_hash == _digest(token))
        )
        found = row.first()
        return None if found is None else TokenHolder(found.name, found.revoked_at is not None)

    async def live(self, s: AsyncSession) -> list[TokenInfo]:
        """The tokens that work, oldest first."""
        rows = await s.execute(
            select(ApiToken.name, ApiToken.created_at)
            .where(ApiToken.revoked_at.is_(None))
            .order_by(ApiToken.id)
        )
        return [TokenInfo(name, created_at) for name, created_at in rows]

    async def revoke(self, s: AsyncSession, name: str) -> int:
        """Revoke every live token named `name` (names need not be unique); how many there were.
        `NotFound` when there is none: a typo must not look like a revoked token."""
        name = clean_name(name)
        result = await s.execute(
            update(ApiToken)
            .where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
            .values(revoked_at=self.clock.now())
        )
        revoked = rows_changed(result)
        if revoked == 0:
            known = await s.execute(select(ApiToken.id).where(ApiToken.name == name).limit(1))
            why = (
                "its tokens were revoked already"
                if known.first() is not None
                else "see `crm-gateway token list`"
            )
            raise NotFound(f"no live token named {name!r}: {why}")
        return revoked
