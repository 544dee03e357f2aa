"""Who gets a lead: the owner on duty; else the first matching rule's on-duty agents in turn; else
everyone on duty in turn; else an admin. Turns are fair, and survive a restart."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from sqlalchemy import select

from crm.domain.models import Agent, Deal
from crm.service import Crm
from crm.storage.store import Store
from gateway.app import create_app
from gateway.settings import Settings, SettingsError
from tests.leads.conftest import OpenSite, Site, routing_file

US = ["+14155550101", "+14155550102", "+14155550103", "+14155550104", "+14155550105", "+14155550106"]


async def seed(store: Store, *agents: tuple[str, str], role: str = "agent") -> list[Agent]:
    """Agents who exist before the gateway starts (a routing file may only name existing agents)."""
    crm = Crm(region="US")
    async with store.session() as s:
        return [await crm.agents.add(s, name, phone=phone, role=role) for name, phone in agents]


def who(bodies: list[dict[str, int]], agents: list[Agent]) -> list[str]:
    names = {a.id: a.name for a in agents}
    return [names.get(b["assigned_agent_id"], str(b["assigned_agent_id"])) for b in bodies]


async def leads_from(site: Site, numbers: list[str], **fields: Any) -> list[dict[str, int]]:
    """One lead from each number (new clients: no owner yet), in order."""
    return [await site.lead(phone=n, **fields) for n in numbers]


async def test_everyone_on_duty_takes_leads_in_turn(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001")
    bob = await site.agent("Bob", "+14155550002")
    carol = await site.agent("Carol", "+14155550003")
    bodies = await leads_from(site, US)
    assert who(bodies, [alice, bob, carol]) == ["Alice", "Bob", "Carol"] * 2


async def test_an_agent_off_duty_is_skipped_and_the_turn_goes_on(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001")
    bob = await site.agent("Bob", "+14155550002")
    carol = await site.agent("Carol", "+14155550003")
    agents = [alice, bob, carol]
    assert who(await leads_from(site, US[:1]), agents) == ["Alice"]
    await site.duty(bob, False)
    assert who(await leads_from(site, US[1:3]), agents) == ["Carol", "Alice"]
    await site.duty(bob, True)
    assert who(await leads_from(site, US[3:5]), agents) == ["Bob", "Carol"]


async def test_turns_continue_across_a_restart(open_site: OpenSite, store: Store) -> None:
    agents = await seed(store, ("Alice", "+14155550001"), ("Bob", "+14155550002"), ("Carol", "+14155550003"))
    site = await open_site()
    assert who(await leads_from(site, US[:2]), agents) == ["Alice", "Bob"]
    await site.http.close()
    again = await open_site()
    assert who(await leads_from(again, US[2:5]), agents) == ["Carol", "Alice", "Bob"]


async def test_rules_by_source_take_their_agents_in_turn(
    open_site: OpenSite, store: Store, tmp_path: Path
) -> None:
    agents = await seed(store, ("Alice", "+14155550001"), ("Carol", "+14155550003"), ("Dave", "+14155550004"))
    rules = routing_file(
        tmp_path,
        '[[rule]]\nsource = "landing"\nagents = ["(415) 555-0004", "+1 415 555 0003"]\n',
    )
    site = await open_site(routing_file=rules)
    landing = await leads_from(site, US[:3], source="Landing")  # sources compare case-blind
    assert who(landing, agents) == ["Dave", "Carol", "Dave"]
    other = await leads_from(site, US[3:6], source="blog")
    assert who(other, agents) == ["Alice", "Carol", "Dave"]
    no_source = await leads_from(site, ["+14155550107"])
    assert who(no_source, agents) == ["Alice"]


async def test_rules_by_country_use_the_region_of_the_clients_number(
    open_site: OpenSite, store: Store, tmp_path: Path
) -> None:
    agents = await seed(store, ("Alice", "+14155550001"), ("Eve", "+441632960001"), ("Fay", "+441632960002"))
    rules = routing_file(
        tmp_path,
        '[[rule]]\ncountry = "gb"\nagents = ["+44 1632 960001", "+44 1632 960002"]\n'
        '[[rule]]\nsource = "landing"\nagents = ["+14155550001"]\n',
    )
    site = await open_site(routing_file=rules)
    uk = await leads_from(site, ["+44 20 7946 0958", "+44 20 7946 0959"], source="landing")
    assert who(uk, agents) == ["Eve", "Fay"]  # the first matching rule wins
    us = await leads_from(site, ["+14155550100"], source="landing")
    assert who(us, agents) == ["Alice"]
    # A lead with only an e-mail, from a known client whose number is British.
    brit = await site.client("Brit", phone="+44 20 7946 0960", email="brit@example.co.uk")
    body = await site.lead(email="brit@example.co.uk")
    assert body["client_id"] == brit and who([body], agents) == ["Eve"]
    # With neither a number nor a known client there is no country, and no rule: everyone in
    # turn (a turn of its own, apart from the rules' turns).
    body = await site.lead(email="someone@example.com")
    assert who([body], agents) == ["Alice"]


async def test_a_rule_with_both_keys_needs_both(open_site: OpenSite, store: Store, tmp_path: Path) -> None:
    agents = await seed(store, ("Alice", "+14155550001"), ("Eve", "+441632960001"))
    rules = routing_file(
        tmp_path, '[[rule]]\nsource = "landing"\ncountry = "GB"\nagents = ["+441632960001"]\n'
    )
    site = await open_site(routing_file=rules)
    bodies = [
        await site.lead(phone="+442079460958", source="blog"),  # no rule: everyone in turn
        await site.lead(phone="+14155550100", source="landing"),  # no rule: everyone in turn
        await site.lead(phone="+442079460959", source="landing"),  # the rule
        await site.lead(phone="+14155550101", source="landing"),  # no rule: everyone's turn goes on
    ]
    assert who(bodies, agents) == ["Alice", "Eve", "Eve", "Alice"]


async def test_a_rule_whose_agents_are_all_off_duty_gives_way_to_everyone_on_duty(
    open_site: OpenSite, store: Store, tmp_path: Path
) -> None:
    agents = await seed(store, ("Alice", "+14155550001"), ("Eve", "+441632960001"))
    rules = routing_file(tmp_path, '[[rule]]\ncountry = "GB"\nagents = ["+441632960001"]\n')
    site = await open_site(routing_file=rules)
    await site.duty(agents[1], False)
    body = await site.lead(phone="+442079460958")
    assert body["assigned_agent_id"] == agents[0].id


async def test_an_owner_on_duty_keeps_their_client(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001")
    bob = await site.agent("Bob", "+14155550002")
    ada = await site.client("Ada", phone="+14155550100", owner=bob)
    for _ in range(3):
        assert (await site.lead(phone="+14155550100"))["assigned_agent_id"] == bob.id
    # Owners taking their own clients' leads do not use up anyone's turn.
    assert (await site.lead(phone="+14155550199"))["assigned_agent_id"] == alice.id
    assert await site.owner_of(ada) == bob.id


async def test_an_off_duty_owner_does_not_hold_the_lead_and_stays_owner(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", on_duty=False)
    bob = await site.agent("Bob", "+14155550002", chat_id=2002)
    ada = await site.client("Ada", phone="+14155550100", owner=alice)
    body = await site.lead(phone="+14155550100", message="Anyone there?")
    assert body["assigned_agent_id"] == bob.id
    assert await site.owner_of(ada) == alice.id
    async with site.store.reading() as s:
        deal = (await s.execute(select(Deal).where(Deal.lead_id == body["lead_id"]))).scalar_one()
    assert deal.owner_id == bob.id  # Bob works this lead's deal
    card = await site.bot_api.next_message(2002)
    assert "Anyone there?" in card.plain_text and "Owner: Alice" in card.plain_text


async def test_a_new_client_sticks_to_the_agent_who_got_their_first_lead(site: Site) -> None:
    await site.agent("Alice", "+14155550001")
    bob = await site.agent("Bob", "+14155550002")
    await site.lead(phone="+14155550100")
    body = await site.lead(phone="+14155550111")
    assert body["assigned_agent_id"] == bob.id and await site.owner_of(body["client_id"]) == bob.id
    again = await site.lead(phone="+14155550111")
    assert again["assigned_agent_id"] == bob.id


async def test_with_nobody_on_duty_an_admin_gets_the_lead(site: Site) -> None:
    await site.agent("Alice", "+14155550001", on_duty=False)
    root = await site.agent("Root", "+14155550009", role="admin", on_duty=False)
    body = await site.lead(phone="+14155550100")
    assert body["assigned_agent_id"] == root.id


async def test_with_no_agents_at_all_the_lead_is_still_taken(site: Site) -> None:
    body = await site.lead(phone="+14155550100", message="Hello?")
    assert body["assigned_agent_id"] is None
    [lead] = await site.leads()
    assert lead.assigned_agent_id is None and await site.owner_of(body["client_id"]) is None
    assert len(await site.outbox("mail")) == 1  # the sales mailbox hears of it all the same


async def test_concurrent_leads_never_share_a_turn(site: Site) -> None:
    agents = [await site.agent(n, p) for n, p in (("A", "+14155550001"), ("B", "+14155550002"))]
    agents.append(await site.agent("C", "+14155550003"))
    numbers = [f"+1415555{2000 + i:04d}" for i in range(12)]
    bodies = await asyncio.gather(*[site.lead(phone=n) for n in numbers])
    assert Counter(who(list(bodies), agents)) == {"A": 4, "B": 4, "C": 4}


# -- a routing file that cannot be used stops start-up ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[[rule]\nagents = []", "not valid TOML"),
        ('[[rules]]\nagents = ["+14155550001"]\n', "unknown key 'rules'"),
        ('[[rule]]\nsource = "x"\n', "agents must be a non-empty list"),
        ('[[rule]]\ncountry = "XX"\nagents = ["+14155550001"]\n', "country"),
        ('[[rule]]\nagents = ["12"]\n', "agents[0]: 12: too short"),
        ('[[rule]]\nteam = "a"\nagents = ["+14155550001"]\n', "unknown key 'team'"),
    ],
)
def test_a_file_that_does_not_parse_stops_create_app(
    lead_settings: Settings, tmp_path: Path, text: str, says: str
) -> None:
    path = routing_file(tmp_path, text)
    with pytest.raises(SettingsError) as failed:
        create_app(lead_settings.model_copy(update={"routing_file": path}))
    line = str(failed.value)
    assert line.startswith("CRM_ROUTING_FILE: ") and says in line and "\n" not in line


async def test_a_file_naming_an_agent_nobody_has_stops_start_up(
    lead_settings: Settings, store: Store, tmp_path: Path
) -> None:
    await seed(store, ("Alice", "+14155550001"))
    path = routing_file(tmp_path, '[[rule]]\nagents = ["+14155550001", "+1 415 555 0077"]\n')
    runner = web.AppRunner(create_app(lead_settings.model_copy(update={"routing_file": path})))
    with pytest.raises(SettingsError) as failed:
        await runner.setup()
    await runner.cleanup()
    line = str(failed.value)
    assert line.startswith("CRM_ROUTING_FILE: ") and "rule 1 names +14155550077" in line
    assert "\n" not in line
