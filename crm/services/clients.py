"""Clients: create, change, find or create by phone / e-mail / messenger account, search.

One number and one e-mail address belong to at most one client (unique indexes), so concurrent
find-or-create of the same caller cannot double a client: the loser of the race hits the index
inside a savepoint, rolls that back, and reads the winner's row.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, case, exists, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crm.domain.clock import Clock
from crm.domain.errors import Conflict, InvalidInput, InvalidPhone
from crm.domain.models import (
    CLIENT_EMAILS,
    CLIENT_PHONES,
    CLIENTS,
    Agent,
    Client,
    ClientEmail,
    ClientIdentity,
    ClientPhone,
    expire_client,
)
from crm.domain.paging import Page, paginate
from crm.domain.phones import Phone, parse_phone, try_normalize
from crm.domain.text import clean_name, fold, normalize_email, shorten_name
from crm.storage.new_ids import insert_with_ids
from crm.storage.rows import require

KINDS = ("person", "company")

# The statements of `find_or_create_by_phones`, built once: building and keying a statement
# costs more than SQLite takes to run it (see `Store.write_sync`).
_CALLERS = (
    select(ClientPhone.e164, Client.id, Client.owner_id)
    .join(Client, Client.id == ClientPhone.client_id)
    .where(ClientPhone.e164.in_(bindparam("numbers", expanding=True)))
)
_INSERT_CLIENT = insert(CLIENTS).returning(CLIENTS.c.id)
_INSERT_PHONES = insert(CLIENT_PHONES)
# …and of every client made or matched one at a time (a lead, a message, the API).
_INSERT_EMAILS = insert(CLIENT_EMAILS)
_ID_BY_E164 = select(CLIENT_PHONES.c.client_id).where(CLIENT_PHONES.c.e164 == bindparam("e164"))
_ID_BY_EMAIL = select(CLIENT_EMAILS.c.client_id).where(CLIENT_EMAILS.c.address == bindparam("address"))
# One statement for "the owner, made `agent` when there is none" (an answered call, a lead).
_CLAIM_OWNER = (
    update(CLIENTS)
    .where(CLIENTS.c.id == bindparam("client"))
    .values(
        owner_id=func.coalesce(CLIENTS.c.owner_id, bindparam("agent")),
        updated_at=case((CLIENTS.c.owner_id.is_(None), bindparam("now")), else_=CLIENTS.c.updated_at),
    )
    .returning(CLIENTS.c.owner_id)
)


@dataclass(frozen=True, slots=True)
class Match:
    """The client a phone, address or account belongs to, and whether we just made it."""

    client_id: int
    created: bool


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a number belongs to, and their owner, as an inbound call needs them."""

    client_id: int
    owner_id: int | None


@dataclass(slots=True)
class ClientDraft:
    """What a caller may say about a client; `None` means "not given" (leave as is)."""

    name: str | None = None
    kind: str | None = None
    phones: list[str] | None = None
    emails: list[str] | None = None
    company: str | None = None
    tags: list[str] | None = None
    owner_id: int | None = None
    custom: dict[str, Any] | None = None
    notes: str | None = None
    # Set when the caller explicitly clears the owner (`"owner_id": null` in a PATCH).
    clear_owner: bool = False


@dataclass(slots=True)
class _Checked:
    phones: list[Phone] = field(default_factory=list)
    emails: list[tuple[str, str]] = field(default_factory=list)  # (address, raw)


class Clients:
    """Client records; every method works inside the caller's unit of work (session)."""

    def __init__(self, region: str, clock: Clock) -> None:
        self.region = region
        self.clock = clock

    # -- reading -------------------------------------------------------------------------

    async def require(self, s: AsyncSession, client_id: int) -> Client:
        return await require(s, Client, client_id, "client")

    async def names(self, s: AsyncSession, ids: set[int]) -> dict[int, str]:
        if not ids:
            return {}
        rows = await s.execute(select(Client.id, Client.name).where(Client.id.in_(ids)))
        return {row.id: row.name for row in rows}

    async def owned_by(self, s: AsyncSession, agent_id: int, *, limit: int = 50) -> list[tuple[int, str]]:
        """(id, name) of the clients an agent owns, by name."""
        rows = await s.execute(
            select(Client.id, Client.name)
            .where(Client.owner_id == agent_id)
            .order_by(Client.name_folded)
            .limit(limit)
        )
        return [(row.id, row.name) for row in rows]

    async def id_by_phone(self, s: AsyncSession, raw: str) -> int | None:
        """The client whose number `raw` is, in any spelling; None when unknown or unreadable."""
        e164 = try_normalize(raw, self.region)
        if e164 is None:
            return None
        return await self._id_by_e164(s, e164)

    async def _id_by_e164(self, s: AsyncSession, e164: str) -> int | None:
        conn = await s.connection()
        return (await conn.execute(_ID_BY_E164, {"e164": e164})).scalar_one_or_none()

    async def id_by_email(self, s: AsyncSession, raw: str) -> int | None:
        try:
            address = normalize_email(raw)
        except ValueError:
            return None
        conn = await s.connection()
        return (await conn.execute(_ID_BY_EMAIL, {"address": address})).scalar_one_or_none()

    async def id_by_identity(self, s: AsyncSession, channel: str, external_id: str) -> int | None:
        row = await s.execute(
            select(ClientIdentity.client_id).where(
                ClientIdentity.channel == channel, ClientIdentity.external_id == external_id
            )
        )
        return row.scalar_one_or_none()

    async def search(
        self,
        s: AsyncSession,
        *,
        q: str | None = None,
        phone: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[int]:
        """Clients by name, phone or e-mail (`q`), or exactly by `phone`; oldest first, paged."""
        stmt = select(Client.id)
        if phone is not None:
            e164 = try_normalize(phone, self.region)
            if e164 is None:
                raise InvalidInput({"phone": f"{phone!r} is not a phone number"})
            stmt = stmt.where(Client.id.in_(select(ClientPhone.client_id).where(ClientPhone.e164 == e164)))
        if q and q.strip():
            stmt = stmt.where(self._matches(q))
        return await paginate(s, stmt, Client.id, limit=limit, cursor=cursor)

    def _matches(self, q: str) -> Any:
        text = q.strip()
        pattern = f"%{_escape_like(fold(text))}%"
        conditions = [
            Client.name_folded.like(pattern, escape="\\"),
            exists().where(
                ClientEmail.client_id == Client.id,
                ClientEmail.address.like(f"%{_escape_like(text.casefold())}%", escape="\\"),
            ),
        ]
        digits = "".join(c for c in text if c.isdigit())
        if len(digits) >= 4 and all(c.isdigit() or c in " +-().\u00a0" for c in text):
            e164 = try_normalize(text, self.region)
            # A full number matches exactly; a fragment matches anywhere in the canonical form.
            phone_cond = ClientPhone.e164 == e164 if e164 else ClientPhone.e164.like(f"%{digits}%")
            conditions.append(exists().where(ClientPhone.client_id == Client.id, phone_cond))
        return or_(*conditions)

    # -- find or create ------------------------------------------------------------------

    async def find_or_create_by_phone(self, s: AsyncSession, raw: str, *, name: str | None = None) -> Match:
        """The client with this number (any spelling), made now if there is none."""
        phone = parse_phone(raw, self.region)
        found = await self._id_by_e164(s, phone.e164)
        if found is not None:
            return Match(found, created=False)
        display = shorten_name(name) if name and name.strip() else phone.display
        return await self._claim(
            s,
            lambda: self._insert(s, display, phones=[phone]),
            lambda: self._id_by_e164(s, phone.e164),
        )

    async def create_with(
        self, s: AsyncSession, name: str | None, *, phone: Phone | None, email: tuple[str, str] | None
    ) -> int | None:
        """A new client with this number and this (address, as written), neither of them anyone's
        when just looked up: one savepoint, where matching each first would take several. Named
        as `find_or_create_by_phone` (or `_by_email`) would. None, and nothing made, when another
        writer took the number or the address meanwhile."""
        if name and name.strip():
            display = shorten_name(name)
        elif phone is not None:
            display = phone.display
        else:
            assert email is not None, "a number or an address"
            display = shorten_name(email[1])
        try:
            async with s.begin_nested():
                return await self._insert(
                    s, display, phones=[phone] if phone else [], emails=[email] if email else []
                )
        except IntegrityError:
            return None

    def find_or_create_by_phones(self, s: Session, phones: Sequence[Phone]) -> dict[str, Caller]:
        """`find_or_create_by_phone` for many numbers at once, in a few statements whatever
        their count. Plain (blocking) SQLAlchemy: the inbound-call group commit runs it in one
        go (see `Store.write_sync`). Keyed by E.164."""
        wanted = {p.e164: p for p in phones}
        found = self._callers(s, wanted)
        missing = [p for e164, p in wanted.items() if e164 not in found]
        if not missing:
            return found
        try:
            with s.begin_nested():
                ids = self._insert_people(s, missing)
            found.update({p.e164: Caller(i, None) for i, p in zip(ids, missing, strict=True)})
        except IntegrityError:
            # Another process took one of the numbers meanwhile: one at a time; the loser of a
            # race reads the winner's row.
            for p in missing:
                with suppress(IntegrityError), s.begin_nested():
                    self._insert_people(s, [p])
            found.update(self._callers(s, [p.e164 for p in missing]))
        return found

    def _callers(self, s: Session, numbers: Collection[str]) -> dict[str, Caller]:
        rows = s.connection().execute(_CALLERS, {"numbers": list(numbers)})
        return {row.e164: Caller(row.id, row.owner_id) for row in rows}

    def _insert_people(self, s: Session, phones: Sequence[Phone]) -> list[int]:
        """New people named after their number, in two statements; their ids in order."""
        conn = s.connection()
        ids = insert_with_ids(conn, CLIENTS, [self._row(p.display) for p in phones])
        conn.execute(
            _INSERT_PHONES,
            [
                {"client_id": i, "e164": p.e164, "raw": p.raw, "position": 0}
                for i, p in zip(ids, phones, strict=True)
            ],
        )
        return ids

    async def find_or_create_by_email(self, s: AsyncSession, raw: str, *, name: str | None = None) -> Match:
        try:
            address = normalize_email(raw)
        except ValueError as exc:
            raise InvalidInput({"email": str(exc)}) from None
        found = await self.id_by_email(s, address)
        if found is not None:
            return Match(found, created=False)
        display = shorten_name(name) if name and name.strip() else shorten_name(raw)
        return await self._claim(
            s,
            lambda: self._insert(s, display, emails=[(address, raw.strip())]),
            lambda: self.id_by_email(s, address),
        )

    async def find_or_create_by_identity(
        self, s: AsyncSession, channel: str, external_id: str, *, name: str, display: str | None = None
    ) -> Match:
        """The client behind a messenger account (the messenger's name, the account's id), made now if new."""
        found = await self.id_by_identity(s, channel, external_id)
        if found is not None:
            return Match(found, created=False)

        async def make() -> int:
            client_id = await self._insert(s, shorten_name(name) or display or external_id)
            await s.execute(
                insert(ClientIdentity).values(
                    client_id=client_id, channel=channel, external_id=external_id, display=display
                )
            )
            return client_id

        return await self._claim(s, make, lambda: self.id_by_identity(s, channel, external_id))

    async def _claim(
        self,
        s: AsyncSession,
        make: Callable[[], Awaitable[int]],
        find: Callable[[], Awaitable[int | None]],
    ) -> Match:
        """Run `make` in a savepoint; if a concurrent writer got there first, return theirs."""
        try:
            async with s.begin_nested():
                return Match(await make(), created=True)
        except IntegrityError:
            found = await find()
            if found is None:
                raise
            return Match(found, created=False)

    async def _insert(
        self,
        s: AsyncSession,
        name: str,
        *,
        kind: str = "person",
        phones: Sequence[Phone] = (),
        emails: Sequence[tuple[str, str]] = (),
        company_id: int | None = None,
        owner_id: int | None = None,
        tags: list[str] | None = None,
        custom: dict[str, Any] | None = None,
        notes: str | None = None,
    ) -> int:
        conn = await s.connection()
        values = self._row(name, kind, company_id, owner_id, tags, custom, notes)
        client_id = int((await conn.execute(_INSERT_CLIENT, values)).scalar_one())
        if phones:
            await conn.execute(
                _INSERT_PHONES,
                [
                    {"client_id": client_id, "e164": p.e164, "raw": p.raw, "position": i}
                    for i, p in enumerate(phones)
                ],
            )
        if emails:
            await conn.execute(
                _INSERT_EMAILS,
                [
                    {"client_id": client_id, "address": a, "raw": r, "position": i}
                    for i, (a, r) in enumerate(emails)
                ],
            )
        return client_id

    def _row(
        self,
        name: str,
        kind: str = "person",
        company_id: int | None = None,
        owner_id: int | None = None,
        tags: list[str] | None = None,
        custom: dict[str, Any] | None = None,
        notes: str | None = None,
    ) -> dict[str, Any]:
        now = self.clock.now()
        return {
            "kind": kind,
            "name": name,
            "name_folded": fold(name),
            "company_id": company_id,
            "owner_id": owner_id,
            "tags": tags or [],
            "custom": custom or {},
            "notes": notes,
            "created_at": now,
            "updated_at": now,
        }

    # -- create and change ---------------------------------------------------------------

    async def create(self, s: AsyncSession, draft: ClientDraft) -> int:
        """A new client; a phone or address that belongs to someone else is a `Conflict`."""
        name = clean_name(draft.name)
        kind = _check_kind(draft.kind or "person")
        checked = self._check(draft)
        await self._refuse_taken(s, checked, client_id=None)
        if draft.owner_id is not None:
            await self._require_agent(s, draft.owner_id)
        company_id = await self._company_id(s, draft.company) if draft.company else None
        return await self._insert(
            s,
            name,
            kind=kind,
            phones=checked.phones,
            emails=checked.emails,
            company_id=company_id,
            owner_id=draft.owner_id,
            tags=_clean_tags(draft.tags or []),
            custom=dict(draft.custom or {}),
            notes=draft.notes,
        )

    async def update(self, s: AsyncSession, client_id: int, draft: ClientDraft) -> None:
        """Change what `draft` gives; phones, e-mails and tags given replace the old lists."""
        client = await self.require(s, client_id)
        checked = self._check(draft)
        await self._refuse_taken(s, checked, client_id=client_id)
        if draft.name is not None:
            client.name = clean_name(draft.name)
            client.name_folded = fold(client.name)
        if draft.kind is not None:
            client.kind = _check_kind(draft.kind)
        if draft.owner_id is not None:
            await self._require_agent(s, draft.owner_id)
            client.owner_id = draft.owner_id
        elif draft.clear_owner:
            client.owner_id = None
        if draft.company is not None:
            client.company_id = await self._company_id(s, draft.company) if draft.company.strip() else None
            if client.company_id == client.id:
                raise InvalidInput({"company": "a client cannot belong to itself"})
        if draft.tags is not None:
            client.tags = _clean_tags(draft.tags)
        if draft.custom is not None:
            merged = {**client.custom, **draft.custom}
            client.custom = {k: v for k, v in merged.items() if v is not None}
        if draft.notes is not None:
            client.notes = draft.notes
        if draft.phones is not None:
            await self.replace_phones(s, client_id, checked.phones)
        if draft.emails is not None:
            await self.replace_emails(s, client_id, checked.emails)
        client.updated_at = self.clock.now()
        await s.flush()

    async def replace_phones(self, s: AsyncSession, client_id: int, phones: Sequence[Phone]) -> None:
        existing = {
            p.e164: p
            for p in (
                await s.execute(select(ClientPhone).where(ClientPhone.client_id == client_id))
            ).scalars()
        }
        keep = {p.e164 for p in phones}
        for e164, row in existing.items():
            if e164 not in keep:
                await s.delete(row)
        await s.flush()
        for i, phone in enumerate(phones):
            kept = existing.get(phone.e164)
            if kept is None:
                s.add(ClientPhone(client_id=client_id, e164=phone.e164, raw=phone.raw, position=i))
            else:
                kept.position, kept.raw = i, phone.raw
        await s.flush()

    async def replace_emails(
        self, s: AsyncSession, client_id: int, emails: Sequence[tuple[str, str]]
    ) -> None:
        existing = {
            e.address: e
            for e in (
                await s.execute(select(ClientEmail).where(ClientEmail.client_id == client_id))
            ).scalars()
        }
        keep = {a for a, _ in emails}
        for address, row in existing.items():
            if address not in keep:
                await s.delete(row)
        await s.flush()
        for i, (address, raw) in enumerate(emails):
            kept = existing.get(address)
            if kept is None:
                s.add(ClientEmail(client_id=client_id, address=address, raw=raw, position=i))
            else:
                kept.position, kept.raw = i, raw
        await s.flush()

    async def add_phone(self, s: AsyncSession, client_id: int, phone: Phone) -> None:
        """Add a number to a client (after the ones it has); a number it has already is kept."""
        if await self._id_by_e164(s, phone.e164) == client_id:
            return
        count = await s.execute(
            select(func.count()).select_from(ClientPhone).where(ClientPhone.client_id == client_id)
        )
        s.add(
            ClientPhone(client_id=client_id, e164=phone.e164, raw=phone.raw, position=int(count.scalar_one()))
        )
        await s.flush()

    async def add_email(self, s: AsyncSession, client_id: int, raw: str) -> None:
        """Add an address to a client (after the ones it has); an address it has already is kept."""
        try:
            address = normalize_email(raw)
        except ValueError as exc:
            raise InvalidInput({"email": str(exc)}) from None
        if await self.id_by_email(s, address) == client_id:
            return
        count = await s.execute(
            select(func.count()).select_from(ClientEmail).where(ClientEmail.client_id == client_id)
        )
        s.add(
            ClientEmail(
                client_id=client_id, address=address, raw=raw.strip(), position=int(count.scalar_one())
            )
        )
        await s.flush()

    async def set_owner_if_none(self, s: AsyncSession, client_id: int, agent_id: int) -> int:
        """Give the client a sticky owner unless it has one; returns whoever owns it now."""
        conn = await s.connection()
        params = {"client": client_id, "agent": agent_id, "now": self.clock.now()}
        owner = (await conn.execute(_CLAIM_OWNER, params)).scalar_one()
        expire_client(s, client_id, "owner_id", "updated_at")
        return int(owner)

    def _check(self, draft: ClientDraft) -> _Checked:
        """Read every phone and e-mail of a draft; all problems at once, as field errors."""
        checked = _Checked()
        errors: dict[str, str] = {}
        seen_phones: set[str] = set()
        for i, raw in enumerate(draft.phones or []):
            try:
                phone = parse_phone(str(raw), self.region)
            except InvalidPhone as exc:
                errors[f"phones[{i}]"] = str(exc)
                continue
            if phone.e164 not in seen_phones:
                seen_phones.add(phone.e164)
                checked.phones.append(phone)
        seen_emails: set[str] = set()
        for i, raw in enumerate(draft.emails or []):
            try:
                address = normalize_email(str(raw))
            except ValueError as exc:
                errors[f"emails[{i}]"] = str(exc)
                continue
            if address not in seen_emails:
                seen_emails.add(address)
                checked.emails.append((address, str(raw).strip()))
        if errors:
            raise InvalidInput(errors)
        return checked

    async def _refuse_taken(self, s: AsyncSession, checked: _Checked, client_id: int | None) -> None:
        if checked.phones:
            rows = await s.execute(
                select(ClientPhone.e164, ClientPhone.client_id).where(
                    ClientPhone.e164.in_([p.e164 for p in checked.phones])
                )
            )
            for e164, owner in rows:
                if owner != client_id:
                    raise Conflict(f"phone {e164} belongs to client {owner}; merge the two instead")
        if checked.emails:
            rows = await s.execute(
                select(ClientEmail.address, ClientEmail.client_id).where(
                    ClientEmail.address.in_([a for a, _ in checked.emails])
                )
            )
            for address, owner in rows:
                if owner != client_id:
                    raise Conflict(f"e-mail {address} belongs to client {owner}; merge the two instead")

    async def _require_agent(self, s: AsyncSession, agent_id: int) -> None:
        row = await s.execute(select(Agent.removed_at).where(Agent.id == agent_id))
        found = row.one_or_none()
        if found is None:
            raise InvalidInput({"owner_id": f"no agent with id {agent_id}"})
        if found.removed_at is not None:
            raise InvalidInput({"owner_id": f"agent {agent_id} has left"})

    async def _company_id(self, s: AsyncSession, company: str) -> int:
        """The company client of that name, made when there is none yet."""
        name = clean_name(company, field="company")
        row = await s.execute(
            select(Client.id)
            .where(Client.kind == "company", Client.name_folded == fold(name))
            .order_by(Client.id)
            .limit(1)
        )
        found = row.scalar_one_or_none()
        return found if found is not None else await self._insert(s, name, kind="company")

    async def count(self, s: AsyncSession) -> int:
        return int((await s.execute(select(func.count()).select_from(Client))).scalar_one())


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput({"kind": f"must be one of {', '.join(KINDS)}"})
    return kind


def _clean_tags(tags: Sequence[str]) -> list[str]:
    out: list[str] = []
    for tag in tags:
        text = " ".join(str(tag).split())
        if text and text not in out:
            out.append(text)
    return out


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
