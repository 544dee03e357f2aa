"""Clients are matched, never doubled: by any spelling of a number, by e-mail, by messenger account."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from crm.domain.errors import Conflict, InvalidInput
from crm.domain.models import Client, ClientPhone
from crm.service import Crm
from crm.services.clients import ClientDraft
from crm.storage.store import Store


async def test_a_caller_is_found_by_any_spelling_of_their_number(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        first = await crm.clients.find_or_create_by_phone(s, "(415) 555-0100", name="Ada Lovelace")
    async with store.session() as s:
        again = await crm.clients.find_or_create_by_phone(s, "+1 415-555-0100")
    assert first.created and not again.created
    assert again.client_id == first.client_id


async def test_a_second_number_finds_the_same_client(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        ada = await crm.clients.create(
            s, ClientDraft(name="Ada", phones=["(415) 555-0100", "+44 7700 900123"])
        )
    async with store.session() as s:
        found = await crm.clients.find_or_create_by_phone(s, "+44 7700-900-123")
    assert found.client_id == ada and not found.created


async def test_a_new_caller_without_name_is_named_by_their_number(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        match = await crm.clients.find_or_create_by_phone(s, "4155550123")
        client = await crm.clients.require(s, match.client_id)
    assert client.name == "+1 415-555-0123"


async def test_concurrent_first_contacts_from_one_number_make_one_client(db_url: str, crm: Crm) -> None:
    stores = [Store(db_url, pool_size=2) for _ in range(4)]

    async def call(i: int, st: Store) -> int:
        spellings = ["(415) 555-0199", "+14155550199", "415.555.0199", "1 415 555 0199"]
        async with st.session() as s:
            return (await crm.clients.find_or_create_by_phone(s, spellings[i % 4])).client_id

    try:
        ids = await asyncio.gather(*(call(i, stores[i % 4]) for i in range(16)))
        async with stores[0].session() as s:
            clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
            phones = (await s.execute(select(func.count()).select_from(ClientPhone))).scalar_one()
    finally:
        for st in stores:
            await st.close()
    assert len(set(ids)) == 1
    assert (clients, phones) == (1, 1)


async def test_concurrent_first_contacts_by_email_make_one_client(db_url: str, crm: Crm) -> None:
    stores = [Store(db_url, pool_size=2) for _ in range(3)]

    async def lead(i: int) -> int:
        async with stores[i % 3].session() as s:
            spelled = ["Ada@Example.com", "ada@example.com ", "ADA@EXAMPLE.COM"][i % 3]
            return (await crm.clients.find_or_create_by_email(s, spelled, name="Ada")).client_id

    try:
        ids = await asyncio.gather(*(lead(i) for i in range(9)))
    finally:
        for st in stores:
            await st.close()
    assert len(set(ids)) == 1


async def test_messenger_accounts_match_their_client(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        a = await crm.clients.find_or_create_by_identity(s, "telegram", "777", name="Grace")
        b = await crm.clients.find_or_create_by_identity(s, "telegram", "777", name="Grace H.")
    assert a.created and not b.created and a.client_id == b.client_id


async def test_a_number_of_another_client_is_a_conflict_not_a_duplicate(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        await crm.clients.create(
            s, ClientDraft(name="Ada", phones=["+14155550100"], emails=["ada@example.com"])
        )
    with pytest.raises(Conflict, match="belongs to client"):
        async with store.session() as s:
            await crm.clients.create(s, ClientDraft(name="Imposter", phones=["(415) 555-0100"]))
    with pytest.raises(Conflict, match="belongs to client"):
        async with store.session() as s:
            await crm.clients.create(s, ClientDraft(name="Imposter", emails=["ADA@example.com"]))
    async with store.session() as s:
        assert await crm.clients.count(s) == 1


async def test_bad_fields_are_all_reported_and_nothing_is_written(store: Store, crm: Crm) -> None:
    with pytest.raises(InvalidInput) as caught:
        async with store.session() as s:
            await crm.clients.create(
                s, ClientDraft(name="Ada", phones=["12", "+14155550100"], emails=["nope"])
            )
    assert set(caught.value.fields) == {"phones[0]", "emails[0]"}
    with pytest.raises(InvalidInput, match="name"):
        async with store.session() as s:
            await crm.clients.create(s, ClientDraft(name="   ", phones=["+14155550100"]))
    async with store.session() as s:
        assert await crm.clients.count(s) == 0


async def test_a_person_belongs_to_a_company_made_once(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        ada = await crm.clients.create(s, ClientDraft(name="Ada", company="Analytical Engines Ltd"))
        bob = await crm.clients.create(s, ClientDraft(name="Bob", company="analytical engines ltd"))
        a, b = await crm.clients.require(s, ada), await crm.clients.require(s, bob)
        company = await crm.clients.require(s, a.company_id)  # type: ignore[arg-type]
    assert a.company_id == b.company_id
    assert (company.kind, company.name) == ("company", "Analytical Engines Ltd")


async def test_search_by_name_phone_fragment_and_email(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        ada = await crm.clients.create(s, ClientDraft(name="Ada Müller", phones=["+4930123456789"]))
        bob = await crm.clients.create(s, ClientDraft(name="Bob", emails=["bob@builders.example"]))
        await crm.clients.create(s, ClientDraft(name="100% Carol_X"))
    async with store.reading() as s:
        assert (await crm.clients.search(s, q="muller")).items == [ada]
        assert (await crm.clients.search(s, q="+49 30 123456789")).items == [ada]
        assert (await crm.clients.search(s, q="3456789")).items == [ada]
        assert (await crm.clients.search(s, q="BUILDERS")).items == [bob]
        carol = (await crm.clients.search(s, q="100%")).items
        assert len(carol) == 1 and carol == (await crm.clients.search(s, q="l_x")).items
        assert (await crm.clients.search(s, phone="+49 (0)30 123456789")).items == [ada]


async def test_pages_follow_each_other_without_gaps(store: Store, crm: Crm) -> None:
    async with store.session() as s:
        made = [await crm.clients.create(s, ClientDraft(name=f"Client {i}")) for i in range(7)]
    seen: list[int] = []
    cursor = None
    async with store.reading() as s:
        while True:
            page = await crm.clients.search(s, limit=3, cursor=cursor)
            seen += page.items
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    assert seen == made
    with pytest.raises(InvalidInput, match="cursor"):
        async with store.reading() as s:
            await crm.clients.search(s, cursor="garbage!")
