"""The new-lead mail for the sales mailbox: the client card's facts and the lead itself, as plain
text and as HTML (everything the sender typed escaped), with `Reply-To` the lead's address, so
that answering the mail answers the client.

A form is a public door: when the lead's phone or address is not the matched client's (someone
typed a client's number with their own address, say), the mail shows the form's details and not
the client's, and has no `Reply-To`, so that a quick reply does not tell a stranger about a client.

Rendered at delivery time from the store, like the Telegram card: a mail that waited out an SMTP
outage shows the client as they are when it leaves.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from html import escape
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import Agent, Lead
from crm.services.cards import Card, Cards

SUBJECT_NAME = 80
CAUTION = (
    "the form's phone or e-mail is not on this client's record, so whoever sent it may not be the "
    "client; the client's own details are left out of this mail. Check in the CRM before answering."
)


class LeadGone(Exception):
    """The lead is no longer in the store: nothing to mail."""


@dataclass(frozen=True, slots=True)
class Fact:
    label: str
    value: str


async def lead_mail(s: AsyncSession, lead_id: int, *, to: str, sender: str, cards: Cards) -> EmailMessage:
    """The mail about lead `lead_id`, addressed to `to` from `sender`."""
    lead = await s.get(Lead, lead_id)
    if lead is None:
        raise LeadGone(f"lead {lead_id} no longer exists")
    card = await cards.build(s, lead.client_id) if lead.client_id is not None else None
    assigned = await s.get(Agent, lead.assigned_agent_id) if lead.assigned_agent_id is not None else None

    message = EmailMessage()
    message["Subject"] = subject(lead, card)
    message["From"] = sender
    message["To"] = to
    if lead.email and not unsure(lead):
        message["Reply-To"] = lead.email
    message["Date"] = format_datetime(lead.created_at)
    message["Message-ID"] = make_msgid(f"lead-{lead.id}", domain=sender.rpartition("@")[2] or None)
    facts = client_facts(lead, card, assigned)
    message.set_content(text_body(lead, facts))
    message.add_alternative(html_body(lead, facts), subtype="html")
    return message


def _one_line(text: str, limit: int) -> str:
    plain = " ".join(text.split())
    return plain if len(plain) <= limit else plain[: limit - 1] + "…"


def subject(lead: Lead, card: Card | None) -> str:
    who = card.name if card is not None else (lead.name or lead.email or lead.phone or "someone")
    where = f" from {_one_line(lead.source, 60)}" if lead.source else ""
    return f"New lead{where}: {_one_line(who, SUBJECT_NAME)}"


def unsure(lead: Lead) -> bool:
    """The form's details are not all the matched client's: the sender may be someone else."""
    return bool(lead.unapplied)


def client_facts(lead: Lead, card: Card | None, assigned: Agent | None) -> list[Fact]:
    """What the card says of the client, then who got the lead and where it came from."""
    facts: list[Fact] = []
    if card is not None and unsure(lead):
        facts.append(Fact("Matched client", card.name))
        facts.append(Fact("Caution", CAUTION))
        given = (("Phone (form)", lead.phone), ("E-mail (form)", lead.email))
        facts += [Fact(label, value) for label, value in given if value]
    elif card is not None:
        facts.append(Fact("Name", card.name))
        if card.phones:
            facts.append(Fact("Phones", ", ".join(p.display for p in card.phones)))
        if card.emails:
            facts.append(Fact("E-mails", ", ".join(card.emails)))
        if card.company:
            facts.append(Fact("Company", card.company.name))
        facts.append(Fact("Owner", card.owner.name if card.owner else "nobody yet"))
    else:
        facts += [
            Fact(label, value) for label, value in (("Name", lead.name), ("Phone", lead.phone)) if value
        ]
    facts.append(Fact("Assigned to", assigned.name if assigned else "nobody (no agents)"))
    facts.append(Fact("Source", lead.source or "the web form"))
    if lead.utm:
        facts.append(Fact("UTM", ", ".join(f"{k}={v}" for k, v in sorted(lead.utm.items()))))
    facts += [Fact(key, _value(value)) for key, value in (lead.extra or {}).items()]
    facts.append(Fact("Received", lead.created_at.strftime("%-d %b %Y %H:%M UTC")))
    reference = f"lead {lead.id}" + (f", client {lead.client_id}" if lead.client_id is not None else "")
    facts.append(Fact("In the CRM", reference))
    return facts


def _value(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_value(v) for v in value)
    return value if isinstance(value, str) else str(value)


def _reply_line(lead: Lead) -> str:
    if not lead.email:
        return "The client left no e-mail address."
    if unsure(lead):
        return "This mail has no Reply-To: the form's address may not be the client's."
    return "Reply to this mail to answer the client."


def text_body(lead: Lead, facts: list[Fact]) -> str:
    width = max(len(f.label) for f in facts) + 2
    lines = [f"{(f.label + ':').ljust(width)}{f.value}" for f in facts]
    message = lead.message or "(no message)"
    reply = _reply_line(lead)
    return "\n".join(["A new lead came in.", "", *lines, "", "Message:", message, "", reply, ""])


def html_body(lead: Lead, facts: list[Fact]) -> str:
    rows = "\n".join(
        f'<tr><th align="left" valign="top" style="padding:2px 12px 2px 0">{escape(f.label)}</th>'
        f"<td>{escape(f.value)}</td></tr>"
        for f in facts
    )
    message = escape(lead.message) if lead.message else "<i>(no message)</i>"
    reply = _reply_line(lead)
    return (
        '<!doctype html>\n<html><body style="font-family:sans-serif">\n'
        "<p>A new lead came in.</p>\n"
        f"<table>\n{rows}\n</table>\n"
        "<h3>Message</h3>\n"
        f'<div style="white-space:pre-wrap">{message}</div>\n'
        f"<p><small>{reply}</small></p>\n"
        "</body></html>\n"
    )
