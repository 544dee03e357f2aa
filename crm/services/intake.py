"""A lead from a web form, taken in one unit of work: checked, matched to a client (or a new one),
stored with a timeline entry and a deal in the first stage, given an agent, who is told in
the agents' chat, and mailed to the sales mailbox. The chat and mail go through the outbox, committed
with the lead, so a dead server delays them and never loses or slows down a lead.

Matching: by phone (any spelling), then e-mail (any case). A form is a public door: whoever
fills it in may not be the client whose number or address they typed. So a lead never changes an
existing client: a detail the matched client does not have (a new number, another client's
address) stays on the lead as `unapplied`, shown to the agent with a button that adds it
(`crm.services.lead_details`). When the phone is one client's and the e-mail another's, the phone's
client gets the lead (a number is the stronger sign of a person) and a note names the other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.delivery import outbox
from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput, InvalidPhone
from crm.domain.models import Client, ClientEmail, ClientPhone, Lead
from crm.domain.paging import Page, paginate
from crm.domain.phones import Phone, format_international, parse_phone
from crm.domain.text import MAX_NAME, normalize_email, storable
from crm.services import notices, timeline
from crm.services.clients import ClientDraft, Clients
from crm.services.deals import Deals
from crm.services.notes import Notes
from crm.services.routing import Router

MAX_MESSAGE = 5000
MAX_SOURCE = 200
MAX_PHONE = 64
MAX_VALUE = 1000  # an extra field's or UTM parameter's value
MAX_KEY = 100  # an extra field's name
MAX_EXTRA = 50
MAX_UTM = 20
HEADLINE_MESSAGE = 200  # the message as far as it shows in the agent's headline

_INSERT_LEAD = insert(Lead).returning(Lead.id)  # built once, as the hot paths' statements are


@dataclass(slots=True)
class LeadDraft:
    """What a form sent, as text; `None` or blank means not given."""

    name: str | None = None
    phone: str | None = None
    email: str | None = None
    message: str | None = None
    source: str | None = None
    utm: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CheckedLead:
    """A lead whose every field is known to be usable."""

    name: str | None
    phone: Phone | None
    email: str | None  # as written (trimmed); matching uses its normalised form
    message: str | None
    source: str | None
    utm: dict[str, str]
    extra: dict[str, Any]

    @property
    def address(self) -> str | None:
        return normalize_email(self.email) if self.email else None


@dataclass(frozen=True, slots=True)
class _Matched:
    client_id: int
    created: bool
    unapplied: dict[str, str] = field(default_factory=dict)  # what the client lacks, as the form gave it
    email_owner: int | None = None  # another client who has the lead's e-mail


@dataclass(frozen=True, slots=True)
class Receipt:
    """What the form's sender is told."""

    lead_id: int
    client_id: int
    client_created: bool
    assigned_agent_id: int | None


def clean_text(value: str) -> str:
    """Text as a store can keep it (`crm.domain.text.storable`), without surrounding blanks."""
    return storable(value).strip()


def check(draft: LeadDraft, region: str) -> CheckedLead:
    """Every field checked, every problem reported at once (`InvalidInput`)."""
    errors: dict[str, str] = {}

    def text(name: str, value: str | None, limit: int, *, one_line: bool = True) -> str | None:
        if value is None:
            return None
        cleaned = clean_text(value)
        cleaned = " ".join(cleaned.split()) if one_line else cleaned.replace("\r\n", "\n")
        if len(cleaned) > limit:
            errors[name] = f"longer than {limit} characters"
            return None
        return cleaned or None

    name = text("name", draft.name, MAX_NAME)
    message = text("message", draft.message, MAX_MESSAGE, one_line=False)
    source = text("source", draft.source, MAX_SOURCE)
    phone = None
    raw_phone = text("phone", draft.phone, MAX_PHONE)
    if raw_phone is not None:
        try:
            phone = parse_phone(raw_phone, region)
        except InvalidPhone as exc:
            errors["phone"] = str(exc)
    email = text("email", draft.email, 320)
    if email is not None:
        try:
            normalize_email(email)
        except ValueError as exc:
            errors["email"] = str(exc)
    if raw_phone is None and email is None and "phone" not in errors and "email" not in errors:
        errors["phone"] = errors["email"] = "give a phone number or an e-mail address"
    utm = _fields(draft.utm, MAX_UTM, "utm", errors)
    extra = _fields(draft.extra, MAX_EXTRA, "extra", errors)
    if errors:
        raise InvalidInput(errors)
    return CheckedLead(
        name=name,
        phone=phone,
        email=email,
        message=message,
        source=source,
        utm={k: str(v) for k, v in utm.items()},
        extra=extra,
    )


def _fields(given: dict[str, Any], most: int, what: str, errors: dict[str, str]) -> dict[str, Any]:
    """Other fields kept on the lead as sent: limited in number, name length and value size."""
    kept: dict[str, Any] = {}
    for raw_key, raw_value in given.items():
        key = clean_text(raw_key)
        if not key:
            continue
        if len(key) > MAX_KEY:
            errors[what] = f"a field name is longer than {MAX_KEY} characters"
            continue
        value = _clean_value(raw_value)
        size = len(value) if isinstance(value, str) else len(json.dumps(value, ensure_ascii=False))
        if size > MAX_VALUE:
            errors[key] = f"longer than {MAX_VALUE} characters"
            continue
        if value in ("", None, []):
            continue
        kept[key] = value
    if len(kept) > most:
        errors[what] = f"more than {most} fields"
    return kept


def _clean_value(value: Any) -> Any:
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, list):
        return [_clean_value(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(str(k)): _clean_value(v) for k, v in value.items()}
    return value


class LeadIntake:
    """Takes leads in, and lists them; `mail_to` is the sales mailbox (None: no lead mail)."""

    def __init__(
        self,
        clients: Clients,
        router: Router,
        deals: Deals,
        notes: Notes,
        clock: Clock,
        *,
        mail_to: str | None = None,
    ) -> None:
        self.clients = clients
        self.router = router
        self.deals = deals
        self.notes = notes
        self.clock = clock
        self.mail_to = mail_to

    async def search(
        self,
        s: AsyncSession,
        *,
        client_id: int | None = None,
        since: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page[Lead]:
        """The leads, oldest first, filtered by client and arrival time."""
        stmt = select(Lead)
        if client_id is not None:
            stmt = stmt.where(Lead.client_id == client_id)
        if since is not None:
            stmt = stmt.where(Lead.created_at >= since)
        return await paginate(s, stmt, Lead.id, limit=limit, cursor=cursor)

    def check(self, draft: LeadDraft) -> CheckedLead:
        return check(draft, self.clients.region)

    async def submit(self, s: AsyncSession, lead: CheckedLead) -> Receipt:
        """Store the lead and everything that follows from it, in the caller's unit of work."""
        now = self.clock.now()
        matched = await self._match(s, lead)
        client_id, created = matched.client_id, matched.created
        agent = await self.router.agent_for(  # a client made just now has no owner to look up
            s,
            None if created else client_id,
            source=lead.source,
            country=lead.phone.region if lead.phone else None,
        )
        conn = await s.connection()
        values = {
            "client_id": client_id,
            "assigned_agent_id": agent.id if agent else None,
            "source": lead.source,
            "name": lead.name,
            "phone": lead.phone.raw if lead.phone else None,
            "email": lead.email,
            "message": lead.message,
            "utm": lead.utm,
            "extra": lead.extra,
            "unapplied": matched.unapplied or None,
            "created_at": now,
        }
        lead_id = int((await conn.execute(_INSERT_LEAD, values)).scalar_one())
        if matched.email_owner is not None:
            await self._note_other_client(s, client_id, matched.email_owner, lead, lead_id)
        if agent is not None:
            await self.clients.set_owner_if_none(s, client_id, agent.id)
        where = lead.source or "the web form"
        await timeline.record(
            s,
            client_id,
            "lead",
            f"Lead from {where}: {lead.message}" if lead.message else f"Lead from {where}",
            at=now,
            agent_id=agent.id if agent else None,
            lead_id=lead_id,
            direction="inbound",
        )
        await self.deals.open(  # the deal is worked by whoever got the lead
            s,
            client_id,
            f"Lead from {where}"[:300],
            owner_id=agent.id if agent else None,
            lead_id=lead_id,
        )
        if agent is not None:
            headline = lead_headline(lead.source, lead.message)
            await notices.show_card(
                s, agent.id, client_id, clock=self.clock, headline=headline, lead_id=lead_id
            )
        if self.mail_to:
            await outbox.enqueue(
                s,
                "mail",
                "lead",
                {"lead_id": lead_id, "to": self.mail_to},
                queue=f"lead:{lead_id}",
                clock=self.clock,
            )
        await s.flush()
        return Receipt(lead_id, client_id, created, agent.id if agent else None)

    async def _match(self, s: AsyncSession, lead: CheckedLead) -> _Matched:
        """The lead's client, made now when neither detail is anyone's. Adds nothing to a client
        that existed before: what it lacks stays unapplied."""
        address = lead.address
        phone_owner = await self.clients.id_by_phone(s, lead.phone.e164) if lead.phone else None
        email_owner = await self.clients.id_by_email(s, address) if address else None
        created = False
        if phone_owner is None and email_owner is None:
            email = (address, lead.email or address) if address else None
            made = await self.clients.create_with(s, lead.name, phone=lead.phone, email=email)
            if made is not None:
                return _Matched(made, created=True)
            # Another writer took the number or the address meanwhile: match them one by one.
            if lead.phone is not None:
                match = await self.clients.find_or_create_by_phone(s, lead.phone.raw, name=lead.name)
            else:
                assert lead.email is not None  # checked: one of the two is given
                match = await self.clients.find_or_create_by_email(s, lead.email, name=lead.name)
            created = match.created
            phone_owner = await self.clients.id_by_phone(s, lead.phone.e164) if lead.phone else None
            email_owner = await self.clients.id_by_email(s, address) if address else None
        client_id = phone_owner if phone_owner is not None else email_owner
        assert client_id is not None
        if not created and lead.name:
            await self._name_if_unnamed(s, client_id, lead.name)
        unapplied: dict[str, str] = {}
        if lead.phone is not None and phone_owner != client_id:
            unapplied["phone"] = lead.phone.e164
        if address is not None and email_owner != client_id:
            unapplied["email"] = lead.email or address
        other = email_owner if email_owner not in (None, client_id) else None
        return _Matched(client_id, created, unapplied, other)

    async def _name_if_unnamed(self, s: AsyncSession, client_id: int, name: str) -> None:
        """A client known only by a number or an address (a caller, say) takes the name the form gives."""
        client = await self.clients.require(s, client_id)
        phones = (await s.execute(select(ClientPhone).where(ClientPhone.client_id == client_id))).scalars()
        emails = (await s.execute(select(ClientEmail).where(ClientEmail.client_id == client_id))).scalars()
        placeholders = set()
        for p in phones:
            placeholders.add(p.raw)
            if p.e164:
                placeholders |= {p.e164, format_international(p.e164)}
        for e in emails:
            placeholders |= {e.raw, e.address}
        if client.name in placeholders:
            await self.clients.update(s, client_id, ClientDraft(name=name))

    async def _note_other_client(
        self, s: AsyncSession, client_id: int, other_id: int, lead: CheckedLead, lead_id: int
    ) -> None:
        other = await s.get(Client, other_id)
        who = f"{other.name} (client {other_id})" if other is not None else f"client {other_id}"
        phone = lead.phone.display if lead.phone else "this client's phone"
        await self.notes.add(
            s,
            client_id,
            f"Web-form lead {lead_id} came with {phone}, which is this client's, and the e-mail "
            f"{lead.email}, which is {who}'s. The lead is filed here and nothing was changed on either "
            "client; merge the two if they are one person.",
            agent_id=None,
        )


def lead_headline(source: str | None, message: str | None) -> str:
    """The line above a lead's card: `📝 New lead from landing: <message>`, as plain text (the
    messaging adapter escapes it)."""
    where = source or "the web form"
    if not message:
        return f"📝 New lead from {where}"
    line = " ".join(message.split())
    if len(line) > HEADLINE_MESSAGE:
        line = line[: HEADLINE_MESSAGE - 1] + "…"
    return f"📝 New lead from {where}: {line}"
