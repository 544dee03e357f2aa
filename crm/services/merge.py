"""Merging two records of one client: everything of `other` moves to the survivor, in one go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput, NotFound
from crm.domain.models import (
    Call,
    ChannelMessage,
    Client,
    ClientEmail,
    ClientIdentity,
    ClientPhone,
    Deal,
    Interaction,
    Lead,
    Task,
)
from crm.services import timeline
from crm.storage.rows import rows_changed


@dataclass(frozen=True, slots=True)
class Merged:
    survivor_id: int
    merged_id: int
    moved: dict[str, int]


# Every table that points at a client, and what we call its rows in the summary.
_CHILDREN = (
    ("phones", ClientPhone),
    ("emails", ClientEmail),
    ("identities", ClientIdentity),
    ("interactions", Interaction),
    ("calls", Call),
    ("leads", Lead),
    ("deals", Deal),
    ("tasks", Task),
    ("channel messages", ChannelMessage),
)


class Merger:
    """Folds one client record into another (an operator's merge, a writer who shared a known phone)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def merge(
        self, s: AsyncSession, survivor_id: int, other_id: int, *, agent_id: int | None = None
    ) -> Merged:
        """Fold `other` into `survivor`: phones, e-mails, accounts, history, deals and tasks move;
        tags are united; custom fields, owner, company and notes of the survivor win where both
        have one. `other` is deleted, and a note on the survivor says so."""
        if survivor_id == other_id:
            raise InvalidInput({"other_id": "a client cannot be merged into itself"})
        survivor = await s.get(Client, survivor_id, with_for_update=True)
        other = await s.get(Client, other_id, with_for_update=True)
        if survivor is None:
            raise NotFound(f"no client with id {survivor_id}")
        if other is None:
            raise InvalidInput({"other_id": f"no client with id {other_id}"})

        moved: dict[str, int] = {}
        for label, table in _CHILDREN:
            moved[label] = await _move(s, table, other_id, survivor_id)
        # Members of a merged company belong to the survivor now.
        await s.execute(update(Client).where(Client.company_id == other_id).values(company_id=survivor_id))

        survivor.tags = survivor.tags + [t for t in other.tags if t not in survivor.tags]
        survivor.custom = {**other.custom, **survivor.custom}
        survivor.owner_id = survivor.owner_id or other.owner_id
        if survivor.company_id in (None, other_id):
            survivor.company_id = other.company_id if other.company_id != survivor_id else None
        if other.notes:
            survivor.notes = f"{survivor.notes}\n\n{other.notes}" if survivor.notes else other.notes
        survivor.created_at = min(survivor.created_at, other.created_at)
        survivor.updated_at = self.clock.now()
        other_name = other.name
        await s.flush()
        await s.execute(delete(Client).where(Client.id == other_id))
        await _renumber(s, ClientPhone, survivor_id)
        await _renumber(s, ClientEmail, survivor_id)
        await timeline.record(
            s,
            survivor_id,
            "note",
            f"Merged client #{other_id} ({other_name}) into this record",
            at=self.clock.now(),
            agent_id=agent_id,
            data={"merged_client_id": other_id},
        )
        await s.flush()
        latest = await s.execute(select(func.max(Interaction.at)).where(Interaction.client_id == survivor_id))
        survivor.last_interaction_at = latest.scalar_one()
        await s.flush()
        return Merged(survivor_id=survivor_id, merged_id=other_id, moved=moved)


async def _move(s: AsyncSession, table: Any, from_id: int, to_id: int) -> int:
    return rows_changed(
        await s.execute(update(table).where(table.client_id == from_id).values(client_id=to_id))
    )


async def _renumber(s: AsyncSession, table: type[ClientPhone] | type[ClientEmail], client_id: int) -> None:
    """Keep the survivor's own phones and addresses first, the merged ones after."""
    rows: Any = (
        await s.execute(select(table).where(table.client_id == client_id).order_by(table.position, table.id))
    ).scalars()
    for i, row in enumerate(rows):
        row.position = i
