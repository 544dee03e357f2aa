"""Managers read the call log, leads, tasks and agents through the API."""

from __future__ import annotations

from datetime import timedelta

from crm.domain.clock import FrozenClock
from crm.domain.models import Call, Lead, Task
from crm.service import Crm
from crm.storage.store import Store
from tests.gateway.conftest import Api


async def _world(store: Store, crm: Crm, clock: FrozenClock) -> dict[str, int]:
    now = clock.now()
    async with store.session() as s:
        alice = await crm.agents.add(s, "Alice", phone="+14155550001")
        bob = await crm.agents.add(s, "Bob", phone="+14155550002", role="admin")
        ada = (await crm.clients.find_or_create_by_phone(s, "+14155550100", name="Ada")).client_id
        grace = (await crm.clients.find_or_create_by_phone(s, "+14155550101", name="Grace")).client_id
        calls = [
            Call(
                provider="twilio",
                provider_call_id=f"CA{i:032}",
                direction="inbound",
                from_number="+14155550100",
                to_number="+14155550000",
                client_id=ada if i < 3 else grace,
                agent_id=alice.id if i else None,
                status="missed" if i == 0 else "completed",
                started_at=now - timedelta(hours=10 - i),
                duration_s=None if i == 0 else 30 * i,
            )
            for i in range(5)
        ]
        s.add_all(calls)
        s.add(
            Lead(
                client_id=ada,
                source="landing",
                name="Ada",
                email="ada@example.com",
                utm={"utm_source": "ads"},
                extra={"budget": "10k"},
                created_at=now,
            )
        )
        await s.flush()
        s.add(
            Task(
                client_id=ada,
                agent_id=alice.id,
                title="Call Ada back",
                due_at=now + timedelta(hours=1),
                call_id=calls[0].id,
                created_at=now,
            )
        )
        s.add(
            Task(
                client_id=grace,
                agent_id=bob.id,
                title="Send offer",
                due_at=now,
                done=True,
                done_at=now,
                created_at=now,
            )
        )
    return {"alice": alice.id, "bob": bob.id, "ada": ada, "grace": grace, "missed": calls[0].id}


async def test_the_call_log_filters_by_client_status_and_time(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _world(store, crm, clock)
    everything = await api.get("/calls")
    assert len(everything["calls"]) == 5
    ada = await api.get("/calls", params={"client_id": str(w["ada"])})
    assert [c["client_id"] for c in ada["calls"]] == [w["ada"]] * 3
    missed = (await api.get("/calls", params={"status": "missed"}))["calls"]
    assert [(c["id"], c["agent_id"], c["direction"], c["from"]) for c in missed] == [
        (w["missed"], None, "inbound", "+14155550100")
    ]
    since = (clock.now() - timedelta(hours=7, minutes=30)).isoformat()
    assert len((await api.get("/calls", params={"since": since}))["calls"]) == 2
    one = await api.get(f"/calls/{w['missed']}")
    assert one["provider_call_id"] == "CA" + "0" * 32
    assert set(one) >= {
        "id",
        "provider",
        "provider_call_id",
        "direction",
        "from",
        "to",
        "client_id",
        "agent_id",
        "status",
        "started_at",
        "answered_at",
        "ended_at",
        "duration_s",
        "recording_url",
        "outcome",
        "notes",
    }
    assert "status" in (await api.get("/calls", expect=422, params={"status": "lost"}))["fields"]
    assert "since" in (await api.get("/calls", expect=422, params={"since": "2026-03-02T10:00"}))["fields"]
    await api.get("/calls/9999", expect=404)


async def test_tasks_by_agent_and_state(api: Api, store: Store, crm: Crm, clock: FrozenClock) -> None:
    w = await _world(store, crm, clock)
    open_for_alice = (await api.get("/tasks", params={"agent_id": str(w["alice"]), "open": "true"}))["tasks"]
    assert [(t["title"], t["done"], t["call_id"]) for t in open_for_alice] == [
        ("Call Ada back", False, w["missed"])
    ]
    done = (await api.get("/tasks", params={"open": "false"}))["tasks"]
    assert [t["title"] for t in done] == ["Send offer"]
    assert "open" in (await api.get("/tasks", expect=422, params={"open": "maybe"}))["fields"]


async def test_leads_keep_their_source_and_fields(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _world(store, crm, clock)
    leads = (await api.get("/leads"))["leads"]
    assert [(x["client_id"], x["source"], x["utm"], x["fields"]) for x in leads] == [
        (w["ada"], "landing", {"utm_source": "ads"}, {"budget": "10k"})
    ]


async def test_agents_show_duty_and_binding(api: Api, store: Store, crm: Crm, clock: FrozenClock) -> None:
    await _world(store, crm, clock)
    agents = (await api.get("/agents"))["agents"]
    assert [(a["name"], a["role"], a["on_duty"], a["telegram_bound"], a["phone"]) for a in agents] == [
        ("Alice", "agent", True, False, "+14155550001"),
        ("Bob", "admin", True, False, "+14155550002"),
    ]


async def test_the_card_shows_open_tasks_and_history(
    api: Api, store: Store, crm: Crm, clock: FrozenClock
) -> None:
    w = await _world(store, crm, clock)
    card = await api.get(f"/clients/{w['ada']}")
    assert [t["title"] for t in card["open_tasks"]] == ["Call Ada back"]
    assert card["open_deals"] == []
