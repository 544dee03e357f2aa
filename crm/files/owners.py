"""The active agents an import's `owner` cells may name: by name (any case) or by phone number."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.errors import InvalidPhone
from crm.domain.models import Agent
from crm.domain.phones import parse_phone


class Owners:
    """Active agents, to read an `owner` cell as a name (any case) or a phone number."""

    def __init__(self, by_name: dict[str, list[int]], by_phone: dict[str, int]) -> None:
        self.by_name = by_name
        self.by_phone = by_phone

    @classmethod
    async def active(cls, s: AsyncSession) -> Owners:
        """The agents who have not left: only they can own clients."""
        rows = await s.execute(select(Agent.id, Agent.name, Agent.phone).where(Agent.removed_at.is_(None)))
        return cls.of(rows.all())

    @classmethod
    def of(cls, agents: Iterable[tuple[int, str, str | None]]) -> Owners:
        by_name: dict[str, list[int]] = {}
        by_phone: dict[str, int] = {}
        for agent_id, name, phone in agents:
            by_name.setdefault(_name_key(name), []).append(agent_id)
            if phone:
                by_phone[phone] = agent_id
        return cls(by_name, by_phone)

    def find(self, text: str, region: str) -> int:
        """The agent `text` names, or `ValueError` saying why there is none."""
        ids = self.by_name.get(_name_key(text), [])
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise ValueError(f"owner {text!r}: {len(ids)} active agents have that name; give their phone")
        try:
            return self.by_phone[parse_phone(text, region).e164]
        except (InvalidPhone, KeyError):
            raise ValueError(f"owner {text!r}: no active agent has that name or phone") from None


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()
