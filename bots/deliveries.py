"""Outbox messages of the chat's channel (`crm.services.notices.CHANNEL`) → what to send to which chat.

The domain enqueues facts (`{"agent_id": 3, "client_id": 8, "call_id": 12}`); the card is rendered
here at delivery time, from the store as it is then, so a card that waited out an outage is
current when it arrives.

Cards first (see `crm.services.notices`): what clients wrote and voicemails travel in lanes of their own,
and when several messages wait for the same chat's turn, cards and notices go before them
(`BEHIND_CARDS`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from sqlalchemy.ext.asyncio import AsyncSession

from bots import render
from crm.delivery.outbox import Delivery
from crm.domain.models import Agent, Client, Lead, Task
from crm.service import Crm
from crm.services import notices


@dataclass(frozen=True, slots=True)
class Audio:
    """A recording to attach, fetched from the telephony provider at delivery time."""

    url: str


@dataclass(slots=True)
class Outgoing:
    """One Bot API message to send (with `audio`, the text is its caption), and what to remember
    about it once sent."""

    chat_id: int
    text: str
    reply_markup: InlineKeyboardMarkup | None = None
    remember: dict[str, Any] = field(default_factory=dict)  # kind, client_id, call_id, task_id, agent_id
    audio: Audio | None = None


class Undeliverable(Exception):
    """This message can never be sent (its recipient has no chat): give up, with the reason."""


class MediaUnavailable(Exception):
    """A recording could not be fetched (yet): try again later."""


class NoLongerNeeded(Exception):
    """This message no longer matters (the task was done meanwhile): skip it, with the reason."""


class NotYet(Exception):
    """This message must let others go first (a voicemail, the missed call's card): try again
    shortly, without counting it as a failed attempt."""


# Kinds that give way to cards and notices waiting for the same chat.
BEHIND_CARDS = frozenset({"client_message", "relay_paused", "voicemail"})


Renderer = Callable[[AsyncSession, Crm, Delivery, bool], Awaitable[Outgoing]]  # bool: Call back offered
RENDERERS: dict[str, Renderer] = {}


def renders(kind: str) -> Callable[[Renderer], Renderer]:
    def register(fn: Renderer) -> Renderer:
        RENDERERS[kind] = fn
        return fn

    return register


async def render_delivery(
    s: AsyncSession, crm: Crm, delivery: Delivery, *, call_back: bool = False
) -> Outgoing:
    renderer = RENDERERS.get(delivery.kind)
    if renderer is None:
        raise Undeliverable(f"no renderer for telegram messages of kind {delivery.kind!r}")
    return await renderer(s, crm, delivery, call_back)


async def agent_chat(s: AsyncSession, agent_id: int) -> tuple[Agent, int]:
    agent = await s.get(Agent, agent_id)
    if agent is None or agent.removed_at is not None:
        raise Undeliverable(f"agent {agent_id} has left")
    if agent.chat_id is None:
        raise Undeliverable(f"agent {agent.id} ({agent.name}) has not bound a Telegram chat")
    return agent, agent.chat_id


@renders("card")
async def card(s: AsyncSession, crm: Crm, d: Delivery, call_back: bool) -> Outgoing:
    """A client card; with `call_id`, the call's card with outcome buttons."""
    agent, chat_id = await agent_chat(s, int(d.payload["agent_id"]))
    client_id = int(d.payload["client_id"])
    built = await crm.cards.build(s, client_id)
    if built is None:
        raise NoLongerNeeded(f"client {client_id} no longer exists")
    call_id = d.payload.get("call_id")
    remember = {"kind": "card", "client_id": client_id, "call_id": call_id, "agent_id": agent.id}
    if call_id is not None:
        rendered = render.call_card(built, await crm.call_log.get(s, int(call_id)), call_back=call_back)
        return Outgoing(chat_id, rendered.text, rendered.reply_markup, remember)
    lead_id = d.payload.get("lead_id")
    lead = await s.get(Lead, int(lead_id)) if lead_id is not None else None
    if lead is not None:
        rendered = render.lead_card(built, lead, call_back=call_back)
        return Outgoing(chat_id, rendered.text, rendered.reply_markup, remember)
    headline = d.payload.get("headline")
    text = render.card_text(built, headline=f"<b>{escape(str(headline))}</b>" if headline else None)
    return Outgoing(chat_id, text, render.card_keyboard(client_id, call_back=call_back), remember)


@renders("reminder")
async def reminder(s: AsyncSession, crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    task = await s.get(Task, int(d.payload["task_id"]))
    if task is None:
        raise NoLongerNeeded("the task was deleted")
    if task.done:
        raise NoLongerNeeded("the task was done before its reminder went out")
    agent, chat_id = await agent_chat(s, int(task.agent_id or d.payload["agent_id"]))
    built = await crm.cards.build(s, task.client_id)
    if built is None:
        raise NoLongerNeeded(f"client {task.client_id} no longer exists")
    rendered = render.reminder(built, task)
    remember = {"kind": "reminder", "client_id": task.client_id, "task_id": task.id, "agent_id": agent.id}
    return Outgoing(chat_id, rendered.text, rendered.reply_markup, remember)


@renders("text")
async def text(s: AsyncSession, _crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    """A plain notice to an agent ("Bob took the call from Ada"); the text is escaped here."""
    agent, chat_id = await agent_chat(s, int(d.payload["agent_id"]))
    client_id = d.payload.get("client_id")
    remember = {"kind": "notice", "client_id": client_id, "agent_id": agent.id} if client_id else {}
    return Outgoing(chat_id, escape(str(d.payload["text"]), quote=False), None, remember)


@renders("farewell")
async def farewell(_s: AsyncSession, _crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    """To the chat of an agent who has left (so not through `agent_chat`)."""
    return Outgoing(int(d.payload["chat_id"]), escape(str(d.payload["text"]), quote=False))


RELAY_LIMIT = 3800  # leaves room for the name and the hint within Telegram's 4096


@renders("client_message")
async def client_message(s: AsyncSession, _crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    """What a client wrote; the agent answers with Telegram's Reply, and it goes back to them."""
    agent, chat_id = await agent_chat(s, int(d.payload["agent_id"]))
    client_id = int(d.payload["client_id"])
    client = await s.get(Client, client_id)
    if client is None:
        raise NoLongerNeeded(f"client {client_id} no longer exists")
    said = escape(str(d.payload["text"])[:RELAY_LIMIT], quote=False)
    text = f"💬 <b>{render.cut(client.name, 80)}</b>:\n{said}\n\n<i>Reply to this message to answer them.</i>"
    remember = {"kind": "client_message", "client_id": client_id, "agent_id": agent.id}
    return Outgoing(chat_id, text, None, remember)


@renders("to_client")
async def to_client(_s: AsyncSession, _crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    """An agent's answer to a client, in the client's own chat (a private chat's id is the
    user's id)."""
    return Outgoing(int(d.payload["account"]), escape(str(d.payload["text"]), quote=False))


@renders("relay_paused")
async def relay_paused(s: AsyncSession, _crm: Crm, d: Delivery, _call_back: bool) -> Outgoing:
    """A client writes faster than we pass on (`crm.services.conversations`): what they write next is on
    their record; replying here still answers them."""
    agent, chat_id = await agent_chat(s, int(d.payload["agent_id"]))
    client_id = int(d.payload["client_id"])
    client = await s.get(Client, client_id)
    if client is None:
        raise NoLongerNeeded(f"client {client_id} no longer exists")
    name = render.cut(client.name, 80)
    text = (
        f"✋ <b>{name}</b> is writing more than {int(d.payload['per_minute'])} messages a minute. "
        f"Until they slow down, what they write is kept on their record without coming here: "
        f"<code>/find {name}</code> shows it.\n\n<i>Reply to this message to answer them.</i>"
    )
    remember = {"kind": "client_message", "client_id": client_id, "agent_id": agent.id}
    return Outgoing(chat_id, text, None, remember)


@renders("voicemail")
async def voicemail(s: AsyncSession, _crm: Crm, d: Delivery, call_back: bool) -> Outgoing:
    """The voicemail a caller left, as audio, for whoever follows the missed call up; after the
    cards written before it (the missed call's own card among them)."""
    agent, chat_id = await agent_chat(s, int(d.payload["agent_id"]))
    if await notices.earlier_pending(s, agent.id, d.id):
        raise NotYet("waits for the cards written before it")
    seconds = d.payload.get("duration_s")
    length = f", {render.duration(int(seconds))}" if seconds else ""
    caption = f"🎙 <b>Voicemail from {render.cut(str(d.payload.get('caller', 'a caller')), 80)}</b>{length}"
    client_id = d.payload.get("client_id")
    remember = {
        "kind": "voicemail",
        "client_id": client_id,
        "call_id": d.payload.get("call_id"),
        "agent_id": agent.id,
    }
    keyboard = render.card_keyboard(int(client_id), call_back=call_back) if client_id else None
    return Outgoing(
        chat_id, caption, keyboard, remember if client_id else {}, audio=Audio(str(d.payload["url"]))
    )


def without_audio(message: Outgoing, audio: Audio, reason: str) -> None:
    """The recording could not be fetched in time: the text goes alone, saying why (the reason is
    whatever the fetch raised, so it is escaped like any text from outside) and where to listen."""
    url = escape(audio.url)
    # The reason's start says enough for an agent; its rest may be a library's repr of the request.
    message.text += f"\n\n(the recording could not be attached: {render.cut(reason, 160)}; listen at {url})"
    message.audio = None
