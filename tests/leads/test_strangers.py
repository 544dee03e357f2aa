"""A web form is a public door: whoever fills it in may type a client's number or address. A lead
is filed on the client it matches, but it never adds a detail to that client nor merges clients;
what the client lacks stays on the lead, for the agent to add with a button."""

from __future__ import annotations

from sqlalchemy import select

from crm.domain.models import ClientEmail, ClientPhone, Interaction
from tests.bots.conftest import SECRET
from tests.leads.conftest import Site


async def _phones(site: Site, client_id: int) -> list[str]:
    async with site.store.reading() as s:
        rows = await s.execute(select(ClientPhone.e164).where(ClientPhone.client_id == client_id))
        return [r for r in rows.scalars() if r is not None]


async def _emails(site: Site, client_id: int) -> list[str]:
    async with site.store.reading() as s:
        rows = await s.execute(select(ClientEmail.address).where(ClientEmail.client_id == client_id))
        return list(rows.scalars())


async def _press(site: Site, chat_id: int, label_start: str, *, user_id: int | None = None) -> None:
    message = site.bot_api.messages(chat_id)[-1]
    [label] = [b["text"] for b in message.buttons if b["text"].startswith(label_start)]
    update = site.bot_api.callback(
        chat_id=chat_id, message=message, data=message.button_data(label), user_id=user_id or chat_id
    )
    assert await site.bot_api.post_to_webhook(update, secret=SECRET) == 200


async def _forge(site: Site, chat_id: int, data: str) -> None:
    """A callback query with `data` sent from a bot message in `chat_id`'s own chat, as a modified
    Telegram app can send one: callback data is not bound to the button it came from."""
    hello = site.bot_api.user_message(chat_id=chat_id, text="hi", user_id=chat_id)
    assert await site.bot_api.post_to_webhook(hello, secret=SECRET) == 200
    own = await site.bot_api.next_message(chat_id)
    forged = site.bot_api.callback(
        chat_id=chat_id, message=own, data=data, user_id=chat_id, require_button=False
    )
    assert await site.bot_api.post_to_webhook(forged, secret=SECRET) == 200


async def test_a_strangers_phone_with_a_clients_email_is_not_added_to_the_client(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", chat_id=1001)
    ada = await site.client("Ada Lovelace", email="ada@example.com", owner=alice)
    body = await site.lead(email="ada@example.com", phone="(415) 555-0199", message="Call me")
    assert (body["client_id"], body["client_created"]) == (ada, False)
    assert await _phones(site, ada) == []  # a call from that number does not pop Ada's card
    async with site.store.reading() as s:
        assert await site.crm.clients.id_by_phone(s, "+14155550199") is None
    [lead] = await site.leads()
    assert lead.unapplied == {"phone": "+14155550199"}

    card = await site.bot_api.next_message(1001)
    assert "The form also gave the phone +1 415-555-0199: not added to this client." in card.plain_text
    assert any(b["text"] == "➕ Add phone +1 415-555-0199" for b in card.buttons)


async def test_the_agent_adds_the_forms_phone_with_the_button(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", chat_id=1001)
    ada = await site.client("Ada Lovelace", email="ada@example.com", owner=alice)
    await site.lead(email="ada@example.com", phone="(415) 555-0199")
    await site.bot_api.next_message(1001)

    await _press(site, 1001, "➕ Add phone")
    answer = await site.bot_api.next_call("answerCallbackQuery")
    assert answer["text"] == "Added to Ada Lovelace: +1 415-555-0199"
    await site.bot_api.next_call("editMessageText")
    edited = site.bot_api.messages(1001)[-1]
    assert "not added" not in edited.current_text and not any("Add" in b["text"] for b in edited.buttons)
    assert "📞 +1 415-555-0199" in edited.current_text  # now among the client's phones
    assert await _phones(site, ada) == ["+14155550199"]
    [lead] = await site.leads()
    assert lead.unapplied is None
    async with site.store.reading() as s:
        notes = (await s.execute(select(Interaction.summary).where(Interaction.kind == "note"))).scalars()
        assert list(notes) == [f"Added the phone +14155550199 from web-form lead {lead.id}"]


async def test_another_clients_email_stays_on_the_lead_and_cannot_be_added(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", chat_id=1001)
    ada = await site.client("Ada Lovelace", phone="+14155550100", owner=alice)
    grace = await site.client("Grace Hopper", email="grace@example.com")
    body = await site.lead(phone="415-555-0100", email="Grace@example.com")
    assert body["client_id"] == ada
    [lead] = await site.leads()
    assert lead.unapplied == {"email": "Grace@example.com"}
    await site.bot_api.next_message(1001)

    await _press(site, 1001, "➕ Add e-mail")
    answer = await site.bot_api.next_call("answerCallbackQuery")
    assert answer["show_alert"] is True
    assert answer["text"] == (
        f"Grace@example.com is Grace Hopper (client {grace})'s; merge the two clients if they are one person"
    )
    assert await _emails(site, ada) == [] and await _emails(site, grace) == ["grace@example.com"]


async def test_only_the_leads_agent_the_owner_or_an_admin_may_add_a_detail(site: Site) -> None:
    alice = await site.agent("Alice", "+14155550001", chat_id=1001)
    await site.agent("Mallory", "+14155550002", chat_id=1002, on_duty=False)
    ada = await site.client("Ada Lovelace", email="ada@example.com", owner=alice)
    await site.lead(email="ada@example.com", phone="(415) 555-0199")
    card = await site.bot_api.next_message(1001)
    data = card.button_data("➕ Add phone +1 415-555-0199")

    await _forge(site, 1002, data)  # Mallory sends the button's data from her own chat
    answer = await site.bot_api.next_call("answerCallbackQuery")
    assert "only the agent this lead went to" in answer["text"]
    assert await _phones(site, ada) == []

    admin = await site.agent("Root", "+14155550003", chat_id=1003, role="admin")
    assert admin.role == "admin"
    await _forge(site, 1003, data)
    assert await _phones(site, ada) == ["+14155550199"]


async def test_the_api_shows_a_leads_unapplied_details(site: Site) -> None:
    await site.client("Ada Lovelace", email="ada@example.com")
    await site.lead(email="ADA@example.com", phone="+44 20 7946 0000")
    await site.lead(email="someone@example.com")
    async with site.store.session() as s:
        token = await site.crm.tokens.create(s, "tests")
    response = await site.http.get("/api/v1/leads", headers={"Authorization": f"Bearer {token}"})
    leads = (await response.json())["leads"]
    assert [lead["unapplied"] for lead in leads] == [{"phone": "+442079460000"}, {}]


async def test_the_sales_mail_of_an_unsure_lead_tells_the_client_nothing(site: Site) -> None:
    await site.client("Ada Lovelace", phone="+14155550100")
    async with site.store.session() as s:
        ada = await site.crm.clients.id_by_phone(s, "+14155550100")
        await site.crm.clients.add_email(s, ada, "ada@example.com")
    await site.lead(phone="+1 415 555 0100", email="mallory@evil.example", message="send me my file")
    mail = await site.mailbox.next_mail()
    assert mail.message["Reply-To"] is None
    text = mail.part("plain")
    assert "ada@example.com" not in text and "mallory@evil.example" in text
    assert "whoever sent it may not be the client" in text
