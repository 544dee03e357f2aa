"""Writing one batch of an import's rows, in one transaction: look-ups first (one query per kind),
then the matching (`crm.files.matching`), then inserts and updates in a few statements each
(`crm.storage.bulk_writes`).

On PostgreSQL another writer may take one of a batch's numbers between its look-ups and its
inserts: the batch fails on the unique index and is redone from its look-ups, its rows read afresh.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.models import CLIENT_EMAILS, CLIENT_PHONES, CLIENTS
from crm.files.matching import Matcher, Outcome, Target
from crm.storage.bulk_writes import BulkWrites
from crm.storage.store import Store

_CLIENTS: Table = CLIENTS
_PHONES: Table = CLIENT_PHONES
_EMAILS: Table = CLIENT_EMAILS
_IN_CHUNK = 5000  # values per IN (...): far below SQLite's and asyncpg's parameter limits
_ATTEMPTS = 3  # a batch whose numbers another writer took meanwhile is redone from its look-ups


async def write_batch(
    store: Store,
    rows: list[Target],
    again: Callable[[], Awaitable[list[Target]]],
    companies: dict[str, int],
    clock: Clock,
    writes: BulkWrites,
) -> Outcome:
    """Write one batch in one transaction; redo it if a concurrent writer took one of its numbers.

    A redo starts from `again()`: the rows read afresh, as an attempt changes the clients they
    propose (keeps them, folds later rows into them, gives them ids). `companies` (folded name
    → id) are known to exist.
    """
    for attempt in range(1, _ATTEMPTS + 1):
        if attempt > 1:
            rows = await again()
        try:
            async with store.session() as s:
                return await Batch(s, rows, companies, clock, writes).write()
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
            companies.clear()  # a cached company may be the row that went away
    raise AssertionError("unreachable")


class Batch:
    """One batch of rows, matched against the database and written inside its transaction."""

    def __init__(
        self,
        s: AsyncSession,
        rows: list[Target],
        companies: dict[str, int],
        clock: Clock,
        writes: BulkWrites,
    ) -> None:
        self.s = s
        self.writes = writes
        self.rows = rows
        self.now = clock.now()
        self.matcher = Matcher(companies)

    async def write(self) -> Outcome:
        await self._look_up()
        for row in self.rows:
            self.matcher.take(row)
        await self._insert()
        await self._update()
        return self.matcher.outcome

    async def _look_up(self) -> None:
        """Who owns the batch's numbers, addresses and company names, and those clients' state."""
        m, among = self.matcher, self.writes.among
        e164s = {e164 for r in self.rows for e164, _, _ in r.new_phones if e164 is not None}
        addresses = {a for r in self.rows for a, _, _ in r.new_emails}
        names = {r.company_folded for r in self.rows if r.company_folded} - m.companies.keys()
        # Core columns, not the ORM's: rows come back as plain tuples, without ORM loading.
        for chunk in _chunks(e164s):
            stmt = select(_PHONES.c.e164, _PHONES.c.client_id).where(among(_PHONES.c.e164, chunk))
            for e164, client_id in await self.s.execute(stmt):
                m.by_phone[e164] = client_id
        for chunk in _chunks(addresses):
            stmt = select(_EMAILS.c.address, _EMAILS.c.client_id).where(among(_EMAILS.c.address, chunk))
            for address, client_id in await self.s.execute(stmt):
                m.by_email[address] = client_id
        for chunk in _chunks(names):
            stmt = (
                select(_CLIENTS.c.name_folded, _CLIENTS.c.id)
                .where(_CLIENTS.c.kind == "company", among(_CLIENTS.c.name_folded, chunk))
                .order_by(_CLIENTS.c.id)
            )
            for folded, client_id in await self.s.execute(stmt):
                m.companies.setdefault(folded, client_id)
                m.outcome.companies.setdefault(folded, client_id)
        ids = {v for v in [*m.by_phone.values(), *m.by_email.values()] if isinstance(v, int)}
        ids |= {
            c for r in self.rows if r.kind == "company" and isinstance(c := m.companies.get(r.folded), int)
        }
        await self._load(ids)

    async def _load(self, ids: set[int]) -> None:
        """The stored clients the batch may write to: their columns, and the positions their
        next number and address take (one query; their numbers' texts only if rows need them)."""
        m, among = self.matcher, self.writes.among
        c, p, e = _CLIENTS.c, _PHONES.c, _EMAILS.c
        last_phone = select(func.max(p.position)).where(p.client_id == c.id).scalar_subquery()
        last_email = select(func.max(e.position)).where(e.client_id == c.id).scalar_subquery()
        clients = select(
            *(c.id, c.kind, c.name, c.name_folded, c.company_id, c.owner_id, c.tags, c.custom, c.notes),
            *(last_phone, last_email),
        )
        # Only a row's numbers that are none (kept as text) are compared with the stored ones.
        # (Filtered here, not by `e164 IS NULL`: SQLite would look that up in the e164 index.)
        phones = select(p.client_id, p.e164, p.raw)
        with_raw_phones = any(row.raw_phones for row in self.rows)
        for chunk in _chunks(ids):
            for row in await self.s.execute(clients.where(among(c.id, chunk)).order_by(c.id)):
                client_id, kind, name, folded, company_id, owner_id, tags, custom, notes, phone, email = row
                m.stored[client_id] = target = Target(
                    id=client_id,
                    line=0,
                    kind=kind,
                    name=name,
                    folded=folded,
                    company=company_id,
                    owner_id=owner_id,
                    tags=tuple(tags or ()),
                    custom=dict(custom or {}),
                    notes=notes,
                    next_phone=0 if phone is None else phone + 1,
                    next_email=0 if email is None else email + 1,
                )
                target.loaded = self._state(target)
            if with_raw_phones:
                for client_id, e164, raw in await self.s.execute(phones.where(among(p.client_id, chunk))):
                    if e164 is None:
                        m.stored[client_id].raw_phones |= {raw}
        # On PostgreSQL a client may be deleted between the look-ups and the load; its numbers
        # went with it, so they are free again.
        for index in (m.by_phone, m.by_email):
            for key in [k for k, v in index.items() if v not in m.stored]:
                del index[key]

    async def _insert(self) -> None:
        """New companies first (people point at them), then people, then all new numbers and addresses."""
        m = self.matcher
        conn = await self.s.connection()
        companies = [t for t in m.new if t.kind == "company"]
        people = [t for t in m.new if t.kind != "company"]
        for group in (companies, people):
            if not group:
                continue
            values = [
                (t.kind, t.name, t.folded, self._company_id(t), t.owner_id, t.tags, t.custom, t.notes)
                for t in group
            ]
            for target, client_id in zip(
                group, await self.writes.insert_clients(conn, values, self.now), strict=True
            ):
                target.id = client_id
        for target in companies:
            m.outcome.companies[target.folded] = _id(target)
        touched = [*m.new, *m.stored.values()]
        await self.writes.insert_phones(conn, [(_id(t), *phone) for t in touched for phone in t.new_phones])
        await self.writes.insert_emails(conn, [(_id(t), *email) for t in touched for email in t.new_emails])

    async def _update(self) -> None:
        """Stored clients the batch added to, only the columns it changed; their name and kind
        stay as they are."""
        changes: list[tuple[int, dict[str, Any]]] = []
        for target in self.matcher.stored.values():
            if not target.changed:
                continue
            columns = self._columns(target)
            state = zip(columns, self._state(target), target.loaded, strict=True)
            changes.append((_id(target), {name: columns[name] for name, now, was in state if now != was}))
        await self.writes.update_clients(await self.s.connection(), changes, self.now)

    def _columns(self, target: Target) -> dict[str, Any]:
        """The columns an import may change on a stored client (never its name or kind)."""
        return {
            "company_id": self._company_id(target),
            "owner_id": target.owner_id,
            "tags": list(target.tags),
            "custom": dict(target.custom),
            "notes": target.notes,
        }

    def _state(self, target: Target) -> tuple[Any, ...]:
        """What tells whether each of `_columns` changed. A merge only adds tags and custom
        fields, so their counts suffice; and a flat tuple of numbers and text is one the garbage
        collector stops following at once (it is kept per stored client)."""
        return (
            self._company_id(target),
            target.owner_id,
            len(target.tags),
            len(target.custom),
            target.notes,
        )

    @staticmethod
    def _company_id(target: Target) -> int | None:
        company = target.company
        return company if isinstance(company, int) or company is None else _id(company)


def _id(target: Target) -> int:
    assert target.id is not None, "inserted before use"
    return target.id


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]
