"""An agent leaves: one command hands everything over, and history keeps who did what."""

from __future__ import annotations

import asyncio
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from crm.domain.errors import Conflict, InvalidInput, NotFound
from crm.domain.models import Agent, Call, Client, Deal, Task
from tests.bots.conftest import SECRET
from tests.processes import cli_env, run_cli
from tests.telephony.conftest import Phones


async def _alices_world(phones: Phones) -> dict[str, Any]:
    """Alice owns three clients, one open deal and a callback task; she took a call from Ada."""
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    await phones.agent("Boss", "+14155550009", chat_id=1009, role="admin")
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    grace = await phones.client("Grace", "+14155550101", owner=alice)
    await phones.client("Linus", "+14155550102", owner=alice)
    call = await phones.twilio.inbound(from_="+14155550100")
    await call.answer(by="+14155550001")
    await phones.card(1001)
    now = phones.clock.now()
    async with phones.store.session() as s:
        await phones.crm.deals.open(s, grace, "Compiler licence", owner_id=alice.id)
        s.add(
            Task(
                client_id=ada,
                agent_id=alice.id,
                title="Call Ada back",
                due_at=now + timedelta(days=1),
                created_at=now,
            )
        )
        s.add(
            Task(
                client_id=ada,
                agent_id=alice.id,
                title="Old chore",
                due_at=now,
                done=True,
                done_at=now,
                created_at=now,
            )
        )
    return {"alice": alice, "bob": bob, "ada": ada, "call_sid": call.sid}


async def test_alice_leaves_and_bob_gets_her_clients_deal_and_task(phones: Phones) -> None:
    w = await _alices_world(phones)
    async with phones.store.session() as s:
        moved = await phones.crm.handover.perform(s, w["alice"].id, w["bob"].id)
    assert (moved.clients, moved.deals, moved.tasks) == (3, 1, 1)
    told = await phones.card(1002)
    assert "Alice has left; you now have their 3 clients, 1 open deal and 1 open task" in (told.text or "")
    farewell = await phones.card(1001)
    assert "removed" in (farewell.text or "")
    async with phones.store.reading() as s:
        owners = set((await s.execute(select(Client.owner_id))).scalars())
        deal_owner = (await s.execute(select(Deal.owner_id))).scalar_one()
        tasks = {t.title: t.agent_id for t in (await s.execute(select(Task))).scalars()}
        old_call = (await s.execute(select(Call).where(Call.provider_call_id == w["call_sid"]))).scalar_one()
        alice = await s.get(Agent, w["alice"].id)
    assert owners == {w["bob"].id}
    assert deal_owner == w["bob"].id
    assert tasks == {"Call Ada back": w["bob"].id, "Old chore": w["alice"].id}  # done work stays hers
    assert old_call.agent_id == w["alice"].id  # the old call still says Alice took it
    assert alice is not None and alice.removed_at is not None and alice.chat_id is None

    # The next call from Alice's old client rings Bob, not Alice.
    again = await phones.twilio.inbound(from_="+14155550100")
    assert [t.value for t in again.dial_targets()] == ["+14155550002"]

    # What Alice's chat sends now is answered as from an unbound chat (a client's).
    update = phones.bot_api.user_message(chat_id=1001, text="/tasks", user_id=1001)
    assert await phones.bot_api.post_to_webhook(update, secret=SECRET) == 200
    assert "Write your question here" in ((await phones.card(1001)).text or "")

    # Bob can list them.
    update = phones.bot_api.user_message(chat_id=1002, text="/clients", user_id=1002)
    assert await phones.bot_api.post_to_webhook(update, secret=SECRET) == 200
    listing = (await phones.card(1002)).plain_text or ""
    assert all(name in listing for name in ("Ada", "Grace", "Linus"))


async def _hand_over(phones: Phones, leaving: int, taking: int) -> None:
    async with phones.store.session() as s:
        await phones.crm.handover.perform(s, leaving, taking)


async def test_bad_hand_overs_are_refused_and_change_nothing(phones: Phones) -> None:
    w = await _alices_world(phones)
    alice, bob = w["alice"].id, w["bob"].id
    with pytest.raises(InvalidInput, match="themselves"):
        await _hand_over(phones, alice, alice)
    with pytest.raises(NotFound):
        await _hand_over(phones, 999, bob)
    with pytest.raises(InvalidInput, match="no agent with id 999"):
        await _hand_over(phones, alice, 999)
    async with phones.store.reading() as s:
        assert {c.owner_id for c in (await s.execute(select(Client))).scalars()} == {alice}
    await _hand_over(phones, alice, bob)
    with pytest.raises(Conflict, match="has left already"):
        await _hand_over(phones, alice, bob)
    with pytest.raises(InvalidInput, match="has left"):
        await _hand_over(phones, bob, alice)


async def test_the_last_admin_cannot_be_removed(phones: Phones) -> None:
    boss = await phones.agent("Boss", "+14155550009", chat_id=1009, role="admin")
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    with pytest.raises(Conflict, match="last admin"):
        await _hand_over(phones, boss.id, bob.id)


async def test_an_admin_hands_over_from_the_bot_with_a_confirm_button(phones: Phones) -> None:
    w = await _alices_world(phones)
    boss_chat = 1009
    ask = phones.bot_api.user_message(
        chat_id=boss_chat, text=f"/handover {w['alice'].id} {w['bob'].id}", user_id=boss_chat
    )
    assert await phones.bot_api.post_to_webhook(ask, secret=SECRET) == 200
    question = await phones.card(boss_chat)
    assert "Remove Alice and give Bob their 3 clients, 1 open deals and 1 open tasks?" in (
        question.plain_text or ""
    )
    press = phones.bot_api.callback(
        chat_id=boss_chat, message=question, data=question.button_data("✅ Hand over"), user_id=boss_chat
    )
    assert await phones.bot_api.post_to_webhook(press, secret=SECRET) == 200
    await phones.bot_api.next_call("editMessageText")
    assert "Done: 3 clients" in (phones.bot_api.message(boss_chat, question.message_id).plain_text or "")
    team = phones.bot_api.user_message(chat_id=boss_chat, text="/agents", user_id=boss_chat)
    assert await phones.bot_api.post_to_webhook(team, secret=SECRET) == 200
    listing = (await phones.card(boss_chat)).plain_text or ""
    assert "Bob" in listing and "Boss" in listing and "Alice" not in listing
    not_admin = phones.bot_api.user_message(chat_id=1002, text=f"/handover {w['bob'].id} 3", user_id=1002)
    assert await phones.bot_api.post_to_webhook(not_admin, secret=SECRET) == 200
    # Bob hears of the hand-over (through the outbox) and, directly, that he cannot do one.
    texts = [(await phones.card(1002)).text or "" for _ in range(2)]
    assert any("Only admins" in t for t in texts)
    assert any("Alice has left" in t for t in texts)


async def test_two_concurrent_first_calls_from_a_new_number_leave_one_owner(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    first = await phones.twilio.inbound(from_="+14155550199")
    second = await phones.twilio.inbound(from_="+1 415 555 0199")
    await asyncio.gather(first.answer(by="+14155550001"), second.answer(by="+14155550002"))
    async with phones.store.reading() as s:
        clients = (await s.execute(select(Client))).scalars().all()
    assert len(clients) == 1
    assert clients[0].owner_id in (alice.id, bob.id)
    rows = [await phones.call_row(first.sid), await phones.call_row(second.sid)]
    assert {r.agent_id for r in rows} == {alice.id, bob.id}


async def test_an_off_duty_owner_does_not_hold_the_client_hostage(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    await phones.agent("Bob", "+14155550002", chat_id=1002)
    ada = await phones.client("Ada", "+14155550100", owner=alice)
    async with phones.store.session() as s:
        await phones.crm.agents.set_duty(s, alice.id, False)
    call = await phones.twilio.inbound(from_="+14155550100")
    assert [t.value for t in call.dial_targets()] == ["+14155550002"]
    await call.answer(by="+14155550002")
    async with phones.store.reading() as s:
        assert (await s.get(Client, ada)).owner_id == alice.id  # type: ignore[union-attr]


def test_agent_remove_from_the_command_line(db_url: str, tmp_path: Path) -> None:
    env = cli_env(db_url)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(list(args), env, tmp_path)

    alice = json.loads(cli("agent", "add", "Alice", "--phone", "+14155550001", "--json").stdout)
    bob = json.loads(cli("agent", "add", "Bob", "--phone", "+14155550002", "--json").stdout)
    done = cli("agent", "remove", str(alice["id"]), "--reassign-to", str(bob["id"]), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {
        "id": alice["id"],
        "reassigned": {"clients": 0, "deals": 0, "tasks": 0},
    }
    listed = json.loads(cli("agent", "list", "--json").stdout)
    assert [a["name"] for a in listed["agents"]] == ["Bob"]
    again = cli("agent", "remove", str(alice["id"]), "--reassign-to", str(bob["id"]), "--json")
    assert again.returncode != 0 and "has left already" in again.stderr and again.stdout == ""
    to_self = cli("agent", "remove", str(bob["id"]), "--reassign-to", str(bob["id"]))
    assert to_self.returncode != 0 and "themselves" in to_self.stderr
