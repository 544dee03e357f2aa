"""The agent who gets a lead sees it in Telegram with the client's card; the sales mailbox gets a
mail. Neither a dead Telegram nor a dead mail server loses a lead or slows its answer."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from tests.bots.conftest import free_port
from tests.leads.conftest import SALES, OpenSite, Site


async def _settled(site: Site, channel: str, timeout: float = 10.0) -> list[str]:
    """The statuses of the channel's outbox messages once none is pending."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await site.outbox(channel)
        if rows and all(r.status != "pending" for r in rows):
            return [r.status for r in rows]
        assert time.monotonic() < deadline, [(r.status, r.attempts, r.last_error) for r in rows]
        await asyncio.sleep(0.05)


async def test_the_agent_gets_the_card_with_the_lead_as_headline(site: Site) -> None:
    await site.agent("Alice", "+14155550001", chat_id=1001)
    await site.lead(
        name="<b>Ada</b> & Co",
        phone="+1 415 555 0100",
        email="ada@example.com",
        message="Call me <now>\nplease",
        source="landing",
    )
    card = await site.bot_api.next_message(1001)
    lines = card.plain_text.splitlines()
    assert lines[0] == "📝 New lead from landing: Call me <now> please"
    assert lines[1] == "<b>Ada</b> & Co"  # shown as typed: escaped, not markup
    assert "&lt;b&gt;Ada&lt;/b&gt; &amp; Co" in (card.text or "")
    assert "+1 415-555-0100" in card.plain_text and "ada@example.com" in card.plain_text
    assert "Owner: Alice" in card.plain_text
    assert "Lead from landing — New" in card.plain_text  # the deal it opened
    assert "Lead from landing: Call me <now> please" in card.plain_text  # the timeline
    await site.bot_api.no_message(1001, within=0.3)


async def test_a_lead_without_message_or_source_has_a_plain_headline(site: Site) -> None:
    await site.agent("Alice", "+14155550001", chat_id=1001)
    await site.lead(email="ada@example.com")
    card = await site.bot_api.next_message(1001)
    assert card.plain_text.splitlines()[0] == "📝 New lead from the web form"


async def test_a_long_message_is_cut_in_the_headline_but_kept_whole(site: Site) -> None:
    await site.agent("Alice", "+14155550001", chat_id=1001)
    message = "word " * 999
    await site.lead(email="ada@example.com", message=message)
    card = await site.bot_api.next_message(1001)
    assert len(card.plain_text.splitlines()[0]) < 260 and card.plain_text.splitlines()[0].endswith("…")
    [lead] = await site.leads()
    assert lead.message == message.strip()


async def test_the_sales_mailbox_gets_both_parts_with_reply_to_the_client(site: Site) -> None:
    await site.agent("Alice", "+14155550001")
    await site.lead(
        name="Ada <script>alert(1)</script>",
        phone="(415) 555-0100",
        email="Ada@Example.com",
        message="Need 20 seats & a <b>demo</b>",
        source="landing",
        utm_source="google",
        utm_campaign="spring",
        company_size="50",
    )
    mail = await site.mailbox.next_mail()
    message = mail.message
    assert (mail.mail_from, mail.rcpt_tos) == ("crm@example.com", [SALES])
    assert (message["From"], message["To"], message["Reply-To"]) == (
        "crm@example.com",
        SALES,
        "Ada@Example.com",
    )
    assert message["Subject"] == "New lead from landing: Ada <script>alert(1)</script>"
    assert message.is_multipart() and message.get_content_type() == "multipart/alternative"
    text, html = mail.part("plain"), mail.part("html")
    for fact in ("+1 415-555-0100", "Ada@Example.com", "Alice", "landing", "utm_campaign=spring", "50"):
        assert fact in text and fact in html
    assert "Ada <script>alert(1)</script>" in text and "Need 20 seats & a <b>demo</b>" in text
    assert "<script>" not in html and "<b>demo</b>" not in html
    assert "Ada &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Need 20 seats &amp; a &lt;b&gt;demo&lt;/b&gt;" in html
    assert await _settled(site, "mail") == ["sent"]
    await site.mailbox.no_mail(within=0.3)


async def test_a_lead_without_an_address_has_no_reply_to(site: Site) -> None:
    await site.lead(phone="+14155550100")
    mail = await site.mailbox.next_mail()
    assert mail.message["Reply-To"] is None
    assert "nobody (no agents)" in mail.part("plain")


async def test_an_smtp_outage_delays_the_mail_and_then_it_arrives_once(site: Site) -> None:
    await site.mailbox.stop()
    body = await site.lead(email="ada@example.com", message="Are you there?")
    for _ in range(200):
        [row] = await site.outbox("mail")
        if row.attempts >= 2 and row.last_error:
            break
        await asyncio.sleep(0.05)
    assert (row.status, row.payload["lead_id"]) == ("pending", body["lead_id"])
    assert row.attempts >= 2 and row.last_error
    await site.mailbox.start()
    mail = await site.mailbox.next_mail()
    assert "Are you there?" in mail.part("plain")
    assert await _settled(site, "mail") == ["sent"]
    await site.mailbox.no_mail(within=0.5)


async def test_a_deferral_is_retried_and_a_refusal_is_recorded(site: Site) -> None:
    site.mailbox.reply = "451 4.7.1 Greylisted, try again later"
    await site.lead(email="ada@example.com")
    await site.mailbox.attempted(2)
    site.mailbox.reply = "250 OK"
    await site.mailbox.next_mail()
    assert await _settled(site, "mail") == ["sent"]

    site.mailbox.reply = "550 5.1.1 No such mailbox"
    attempts = site.mailbox.attempts
    await site.lead(email="grace@example.com")
    assert await _settled(site, "mail") == ["sent", "failed"]
    [_, refused] = await site.outbox("mail")
    assert refused.attempts == 1 and "550" in (refused.last_error or "")
    assert site.mailbox.attempts == attempts + 1


async def test_no_lead_mail_without_a_mailbox_to_send_to(open_site: OpenSite) -> None:
    site = await open_site(leads_notify_email=None)
    await site.lead(email="ada@example.com")
    assert await site.outbox("mail") == []


class SilentSmtp:
    """A server that accepts connections and never says a word (a hung mail server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.connected = asyncio.Event()  # someone is stuck waiting for its greeting
        self._held: list[asyncio.StreamWriter] = []

    async def _hold(self, _reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._held.append(writer)
        self.connected.set()

    async def __aenter__(self) -> SilentSmtp:
        self._server = await asyncio.start_server(self._hold, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for writer in self._held:
            writer.close()
        self._server.close()


@pytest.fixture
async def silent_smtp() -> AsyncIterator[SilentSmtp]:
    async with SilentSmtp() as server:
        yield server


async def test_dead_telegram_and_a_hung_mail_server_do_not_slow_the_answer(
    open_site: OpenSite, silent_smtp: SilentSmtp
) -> None:
    site = await open_site(smtp_port=silent_smtp.port)
    await site.agent("Alice", "+14155550001", chat_id=1001)
    await site.bot_api.stop()
    # The mail sender waits 30 s for a silent server: every answer comes well before that.
    async with asyncio.timeout(10):
        bodies = [await site.lead(phone="+14155550100", message="lead 0")]
        await silent_smtp.connected.wait()  # the first lead's mail is now stuck on the server
        bodies += [await site.lead(phone=f"+1415555{100 + i:04d}", message=f"lead {i}") for i in range(1, 5)]
    assert [r.status for r in await site.outbox("mail")] == ["pending"] * 5  # none got through meanwhile
    assert all(b["assigned_agent_id"] is not None for b in bodies)
    assert len(await site.leads()) == 5
    await site.bot_api.start()
    texts = [(await site.bot_api.next_message(1001, timeout=10)).plain_text for _ in range(5)]
    assert [t.splitlines()[0] for t in texts] == [
        f"📝 New lead from the web form: lead {i}" for i in range(5)
    ]
