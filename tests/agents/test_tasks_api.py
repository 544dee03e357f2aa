"""Tasks by API: made for an agent (or the client's owner), moved, closed; reminded once per due
time, also across a restart, and by exactly one of several gateway processes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp.test_utils import TestClient

from gateway.app import create_app
from gateway.keys import REMINDERS, TELEGRAM
from gateway.settings import Settings
from tests.telephony.conftest import AiohttpServer, Phones


async def _api(phones: Phones, aiohttp_client: Any) -> tuple[TestClient[Any, Any], dict[str, str]]:
    client = await aiohttp_client(phones.server)
    async with phones.store.session() as s:
        token = await phones.crm.tokens.create(s, "tests")
    return client, {"Authorization": f"Bearer {token}"}


async def test_a_task_for_the_owner_is_reminded_when_due(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada Lovelace", "+14155550100", owner=alice)
    http, auth = await _api(phones, aiohttp_client)
    due = (phones.clock.now() + timedelta(milliseconds=400)).astimezone(UTC).isoformat()
    r = await http.post(
        "/api/v1/tasks", json={"client_id": ada, "title": "Send the offer", "due_at": due}, headers=auth
    )
    assert r.status == 201
    task = await r.json()
    assert set(task) >= {"id", "client_id", "agent_id", "title", "due_at", "done", "created_at", "call_id"}
    assert (task["agent_id"], task["done"], task["call_id"]) == (alice.id, False, None)
    reminder = await phones.bot_api.next_message(1001, timeout=8)
    assert "Time to call Ada Lovelace: Send the offer" in (reminder.plain_text or "")
    await phones.bot_api.no_message(1001, within=0.8)


async def test_moved_later_is_reminded_again_done_never(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    http, auth = await _api(phones, aiohttp_client)
    past = (phones.clock.now() - timedelta(hours=1)).isoformat()
    task = await (
        await http.post(
            "/api/v1/tasks", json={"client_id": ada, "title": "Late", "due_at": past}, headers=auth
        )
    ).json()
    await phones.bot_api.next_message(1001, timeout=8)  # in the past: reminded at once
    later = (phones.clock.now() + timedelta(hours=3)).isoformat()
    r = await http.patch(f"/api/v1/tasks/{task['id']}", json={"due_at": later}, headers=auth)
    assert r.status == 200 and (await r.json())["due_at"].startswith(later[:16])
    await phones.bot_api.no_message(1001, within=0.5)
    phones.clock.advance(hours=3, seconds=1)
    phones.server.app[REMINDERS].wake()
    assert "Late" in ((await phones.bot_api.next_message(1001, timeout=8)).plain_text or "")
    r = await http.patch(f"/api/v1/tasks/{task['id']}", json={"done": True}, headers=auth)
    assert (await r.json())["done"] is True
    phones.clock.advance(days=1)
    phones.server.app[REMINDERS].wake()
    await phones.bot_api.no_message(1001, within=0.6)


async def test_bad_task_requests_get_clear_errors(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    orphan = await phones.client("Nobody's", "+14155550100")
    http, auth = await _api(phones, aiohttp_client)
    soon = (phones.clock.now() + timedelta(hours=1)).isoformat()

    async def post(body: dict[str, Any]) -> tuple[int, Any]:
        r = await http.post("/api/v1/tasks", json=body, headers=auth)
        return r.status, await r.json()

    status, body = await post({"client_id": 999, "title": "x", "due_at": soon})
    assert status == 422 and "client_id" in body["fields"]
    status, body = await post({"client_id": orphan, "title": "x", "due_at": soon})
    assert status == 422 and "no owner" in body["fields"]["agent_id"]
    status, body = await post(
        {"client_id": orphan, "title": "x", "due_at": "2026-03-02T10:00:00", "agent_id": alice.id}
    )
    assert status == 422 and "due_at" in body["fields"]
    status, body = await post({"client_id": orphan, "title": "", "due_at": soon, "agent_id": alice.id})
    assert status == 422 and "title" in body["fields"]
    r = await http.patch("/api/v1/tasks/999", json={"done": True}, headers=auth)
    assert r.status == 404
    r = await http.patch("/api/v1/tasks/1", json={}, headers=auth)
    assert r.status in (404, 422)


async def test_a_removed_agents_task_cannot_be_moved(phones: Phones, aiohttp_client: Any) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    http, auth = await _api(phones, aiohttp_client)
    soon = (phones.clock.now() + timedelta(hours=1)).isoformat()
    task = await (
        await http.post("/api/v1/tasks", json={"client_id": ada, "title": "t", "due_at": soon}, headers=auth)
    ).json()
    await http.patch(f"/api/v1/tasks/{task['id']}", json={"done": True}, headers=auth)
    async with phones.store.session() as s:
        await phones.crm.handover.perform(s, alice.id, bob.id)
    r = await http.patch(f"/api/v1/tasks/{task['id']}", json={"due_at": soon}, headers=auth)
    assert r.status == 409 and "has left" in (await r.json())["detail"]
    r = await http.post(
        "/api/v1/tasks",
        json={"client_id": ada, "title": "t", "due_at": soon, "agent_id": alice.id},
        headers=auth,
    )
    assert r.status == 422 and "has left" in (await r.json())["fields"]["agent_id"]


async def test_reminders_survive_a_restart_and_two_processes_remind_once(
    phones: Phones, aiohttp_client: Any, aiohttp_server: AiohttpServer, call_settings: Settings
) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    await phones.server.close()  # the gateway is down when the task comes due
    async with phones.store.session() as s:
        await phones.crm.tasks.create(
            s, client_id=ada, title="While you were out", due_at=datetime.now(UTC), agent_id=None
        )
    servers = []
    for _ in range(2):  # two gateway processes on the same database
        from tests.bots.conftest import free_port

        port = free_port()
        settings = call_settings.model_copy(update={"port": port, "public_url": f"http://127.0.0.1:{port}"})
        server = await aiohttp_server(create_app(settings, clock=phones.clock), port=port)
        server.app[TELEGRAM].sender.limits.chat_interval = 0.05
        servers.append(server)
    for server in servers:
        server.app[REMINDERS].wake()
    reminder = await phones.bot_api.next_message(1001, timeout=8)
    assert "While you were out" in (reminder.plain_text or "")
    await phones.bot_api.no_message(1001, within=1.0)
