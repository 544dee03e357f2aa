"""Leads taken by two gateway processes at once (two engines on one database): one client per
person, whichever process makes it, with the number and the address once, and every lead filed
on that client. On PostgreSQL the loser of the race to make the client (`Clients.create_with`)
falls back to matching what the winner made."""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from crm.domain.models import Client, ClientEmail, ClientPhone, Lead
from crm.service import Crm
from crm.services.intake import LeadDraft, Receipt
from crm.storage.store import Store


async def test_two_processes_taking_leads_of_one_new_person_make_one_client(
    crm: Crm, store: Store, db_url: str
) -> None:
    async with store.session() as s:
        await crm.agents.add(s, "Alice", phone="+14155550001")
    other = Store(db_url)  # a second engine: what another gateway process would have
    lead = crm.leads.check(LeadDraft(name="Ada", phone="(415) 555-0100", email="Ada@Example.com"))

    async def take(st: Store) -> Receipt:
        async with st.session() as s:
            return await crm.leads.submit(s, lead)

    try:
        receipts = await asyncio.gather(*(take(st) for st in (store, other) * 3))
    finally:
        await other.close()

    assert len({r.client_id for r in receipts}) == 1
    assert sum(r.client_created for r in receipts) == 1
    async with store.reading() as s:
        clients = (await s.execute(select(Client.id, Client.name))).all()
        phones = (await s.execute(select(ClientPhone.e164))).scalars().all()
        emails = (await s.execute(select(ClientEmail.address, ClientEmail.raw))).all()
        leads = (await s.execute(select(func.count()).select_from(Lead))).scalar_one()
    assert [tuple(c) for c in clients] == [(receipts[0].client_id, "Ada")]
    assert phones == ["+14155550100"]
    assert [tuple(e) for e in emails] == [("ada@example.com", "Ada@Example.com")]
    assert leads == 6
