"""Routing in the domain: the routing file read into rules, and the agents rung for a call when
there are rules (all of the matching rule's on-duty agents at once)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select

from crm.domain.models import Agent, Client
from crm.service import Crm
from crm.services.clients import Caller
from crm.services.routing import Router, RoutingFileError, parse_rules
from crm.storage.store import Store

RULES = """
[[rule]]
source = " Landing "
agents = ["+1 415 555 0001"]

[[rule]]
country = "gb"
agents = ["+44 1632 960001", "+441632960002", "+44 (0)1632 960001"]
"""


def test_a_routing_file_reads_into_rules() -> None:
    rules = parse_rules(RULES, "US", origin="routing.toml")
    first, second = rules.rules
    assert (first.number, first.source, first.country, first.agents) == (
        1,
        "landing",
        None,
        ("+14155550001",),
    )
    assert (second.source, second.country) == (None, "GB")
    assert second.agents == ("+441632960001", "+441632960002")  # spellings of one number count once
    assert rules.first_match(source="LANDING", country="GB") is first
    assert rules.first_match(source="blog", country="GB") is second
    assert rules.first_match(source=None, country="US") is None
    assert parse_rules("", "US").rules == ()


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rule = 3", "[[rule]] tables"),
        ("[[rule]]\nagents = [1]", "agents[0] must be a phone number in quotes"),
        ('[[rule]]\nsource = ""\nagents = ["+14155550001"]', "source must be a non-empty string"),
        ('[[rule]]\ncountry = 44\nagents = ["+14155550001"]', "ISO 3166"),
    ],
)
def test_a_bad_routing_file_says_where(text: str, says: str) -> None:
    with pytest.raises(RoutingFileError) as failed:
        parse_rules(text, "US", origin="routing.toml")
    assert str(failed.value).startswith("routing.toml: ") and says in str(failed.value)


async def _agents(crm: Crm, store: Store, *specs: tuple[str, str, bool]) -> list[Agent]:
    async with store.session() as s:
        made = []
        for name, phone, on_duty in specs:
            agent = await crm.agents.add(s, name, phone=phone)
            agent.on_duty = on_duty
            made.append(agent)
        return made


async def test_a_call_rings_the_matching_rules_agents_on_duty_all_at_once(crm: Crm, store: Store) -> None:
    alice, eve, fay, _gus = await _agents(
        crm,
        store,
        ("Alice", "+14155550001", True),
        ("Eve", "+441632960001", True),
        ("Fay", "+441632960002", True),
        ("Gus", "+441632960003", False),
    )
    rules = parse_rules(
        '[[rule]]\ncountry = "GB"\nagents = ["+441632960002", "+441632960001", "+441632960003"]\n'
        '[[rule]]\nsource = "landing"\nagents = ["+14155550001"]\n',
        "US",
    )

    async def rung(client_id: int | None) -> list[str]:
        return await _rung(Router(rules, crm.clock), store, client_id)

    async with store.session() as s:
        uk = (await crm.clients.find_or_create_by_phone(s, "+44 20 7946 0958")).client_id
        us = (await crm.clients.find_or_create_by_phone(s, "+1 415 555 0100")).client_id
    assert await rung(uk) == ["Fay", "Eve"]  # the rule's order; Gus is off duty
    # A rule with a source never matches a call; no rule: everyone on duty, as before.
    assert await rung(us) == ["Alice", "Eve", "Fay"]
    assert await rung(None) == ["Alice", "Eve", "Fay"]
    # Nobody of the rule on duty: everyone on duty.
    async with store.session() as s:
        await crm.agents.set_duty(s, eve.id, False)
        await crm.agents.set_duty(s, fay.id, False)
    assert await rung(uk) == ["Alice"]
    # The owner on duty is rung alone, rules or not.
    async with store.session() as s:
        await crm.agents.set_duty(s, eve.id, True)
        await crm.clients.set_owner_if_none(s, uk, alice.id)
    assert await rung(uk) == ["Alice"]


async def test_without_rules_calls_ring_as_before(crm: Crm, store: Store) -> None:
    await _agents(crm, store, ("Alice", "+14155550001", True), ("Bob", "+14155550002", True))
    async with store.session() as s:
        client = (await crm.clients.find_or_create_by_phone(s, "+44 20 7946 0958")).client_id
    assert await _rung(crm.routing, store, client) == ["Alice", "Bob"]


async def _rung(router: Router, store: Store, client_id: int | None) -> list[str]:
    """Whom a call from this client rings (`Router.ring_groups`, as the inbound call's group
    commit asks), by name."""
    async with store.session() as s:
        caller = None
        if client_id is not None:
            owner = (await s.execute(select(Client.owner_id).where(Client.id == client_id))).scalar_one()
            caller = Caller(client_id, owner)
        group = (await s.run_sync(lambda sync: router.ring_groups(sync, [caller])))[0]
        names = {row.id: row.name for row in await s.execute(select(Agent.id, Agent.name))}
    return [names[a.id] for a in group]


async def test_messages_use_the_same_turns_as_leads(crm: Crm, store: Store) -> None:
    await _agents(crm, store, ("Alice", "+14155550001", True), ("Bob", "+14155550002", True))
    router = Router(parse_rules("", "US"), crm.clock)
    async with store.session() as s:
        picked = [await router.agent_for(s, None) for _ in range(3)]
    assert [a.name for a in picked if a is not None] == ["Alice", "Bob", "Alice"]


async def test_two_processes_never_give_the_same_turn(crm: Crm, store: Store, db_url: str) -> None:
    await _agents(
        crm, store, ("A", "+14155550001", True), ("B", "+14155550002", True), ("C", "+14155550003", True)
    )
    other = Store(db_url)  # a second engine: what another gateway process would have
    router = Router(parse_rules("", "US"), crm.clock)

    async def take(st: Store) -> str:
        async with st.session() as s:
            agent = await router.agent_for(s, None)
            assert agent is not None
            return agent.name

    try:
        first = await take(store)  # the pool's row exists from here on
        names = await asyncio.gather(*[take(store if i % 2 else other) for i in range(29)])
    finally:
        await other.close()
    assert Counter([first, *names]) == {"A": 10, "B": 10, "C": 10}
