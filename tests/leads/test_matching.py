"""A lead finds the client it is about, however the phone or address is written; a lead that
names two clients goes to the phone's, with a note about the other. A lead changes no client: what
the matched client lacks stays on the lead (tests/leads/test_strangers.py)."""

from __future__ import annotations

from sqlalchemy import select

from crm.domain.models import ClientEmail, ClientPhone, Deal, Interaction, Stage
from tests.leads.conftest import Site


async def test_the_same_person_twice_in_other_spellings_is_one_client(site: Site) -> None:
    first = await site.lead(name="Ada", phone="(415) 555-0100", email="Ada@Example.com")
    again = await site.lead(phone="+1 415-555-0100")
    by_mail = await site.lead(email="  ADA@example.COM ")
    assert first["client_created"] is True
    assert again["client_created"] is False and by_mail["client_created"] is False
    assert first["client_id"] == again["client_id"] == by_mail["client_id"]
    assert len(await site.clients()) == 1 and len(await site.leads()) == 3


async def test_a_known_caller_is_matched_and_takes_the_forms_name(site: Site) -> None:
    caller = await site.client("+1 415-555-0100", phone="+14155550100")  # named by the number
    body = await site.lead(name="Ada Lovelace", phone="415 555 0100")
    assert (body["client_id"], body["client_created"]) == (caller, False)
    [client] = await site.clients()
    assert client.name == "Ada Lovelace"
    named = await site.client("Grace Hopper", phone="+14155550111")
    await site.lead(name="G. H.", phone="+14155550111")
    assert next(c for c in await site.clients() if c.id == named).name == "Grace Hopper"


async def test_a_new_phone_or_address_stays_on_the_lead_not_on_the_matched_client(site: Site) -> None:
    ada = await site.client("Ada", email="ada@example.com")
    body = await site.lead(email="ada@example.com", phone="+14155550100")
    assert body["client_id"] == ada
    # The number was not added to Ada, so it matches nobody: the next lead with it is someone new.
    again = await site.lead(phone="(415) 555-0100", email="ada@work.example")
    assert again["client_id"] != ada and again["client_created"] is True
    async with site.store.reading() as s:
        phones = (await s.execute(select(ClientPhone.e164).where(ClientPhone.client_id == ada))).scalars()
        emails = (await s.execute(select(ClientEmail.address).where(ClientEmail.client_id == ada))).scalars()
        assert list(phones) == []
        assert list(emails) == ["ada@example.com"]
    assert [lead.unapplied for lead in await site.leads()] == [{"phone": "+14155550100"}, None]


async def test_phone_and_email_of_two_clients_the_phone_wins_with_a_note(site: Site) -> None:
    ada = await site.client("Ada Lovelace", phone="+14155550100")
    grace = await site.client("Grace Hopper", email="grace@example.com")
    body = await site.lead(phone="415-555-0100", email="Grace@example.com", message="Call me")
    assert (body["client_id"], body["client_created"]) == (ada, False)
    async with site.store.reading() as s:
        notes = (
            await s.execute(select(Interaction).where(Interaction.kind == "note").order_by(Interaction.id))
        ).scalars()
        [note] = list(notes)
        grace_email = (
            await s.execute(select(ClientEmail.client_id).where(ClientEmail.address == "grace@example.com"))
        ).scalar_one()
    assert note.client_id == ada
    assert "Grace Hopper" in note.summary and f"client {grace}" in note.summary
    assert "grace@example.com" in note.summary.lower()
    assert grace_email == grace  # nothing moved: merging is an agent's decision
    [lead] = await site.leads()
    assert lead.client_id == ada


async def test_a_lead_is_on_the_timeline_and_opens_a_deal_in_the_first_stage(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001")
    body = await site.lead(name="Ada", email="ada@example.com", message="Need 20 seats", source="landing")
    async with site.store.reading() as s:
        [entry] = (await s.execute(select(Interaction).where(Interaction.kind == "lead"))).scalars()
        [deal] = (await s.execute(select(Deal))).scalars()
        stage = await s.get(Stage, deal.stage_id)
    assert (entry.client_id, entry.lead_id, entry.agent_id) == (body["client_id"], body["lead_id"], alice.id)
    assert entry.summary == "Lead from landing: Need 20 seats"
    assert (deal.client_id, deal.lead_id, deal.owner_id) == (body["client_id"], body["lead_id"], alice.id)
    assert stage is not None and stage.name == "New" and deal.closed_at is None
    assert deal.title == "Lead from landing"


async def test_concurrent_leads_of_one_new_person_make_one_client(site: Site) -> None:
    import asyncio

    await site.agent("Alice", "+14155550001")
    bodies = await asyncio.gather(
        *[site.lead(phone="+14155550100", email="ada@example.com", name="Ada") for _ in range(6)]
    )
    assert len({b["client_id"] for b in bodies}) == 1
    assert sum(b["client_created"] for b in bodies) == 1
    assert len(await site.clients()) == 1 and len(await site.leads()) == 6
