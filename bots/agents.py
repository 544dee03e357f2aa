"""The agents' side of the bot: binding, duty, finding clients, tasks, outcomes and notes."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.types import BotCommand, CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bots import clients
from bots.callbacks import CallBackButton, HandoverButton, LeadDetailButton, OutcomeButton, TaskDoneButton
from bots.context import ClickToCall, IsAgent, UnitOfWork
from bots.render import (
    call_card,
    card_keyboard,
    card_text,
    cut,
    lead_card,
    number,
    task_done_keyboard,
    task_line,
)
from crm.domain.errors import CrmError
from crm.domain.models import Agent, Client, Lead
from crm.domain.paging import parse_id
from crm.service import Crm
from crm.services import notices
from crm.services.agents import BindingRefused
from crm.services.calls import OUTCOME_LABELS
from crm.services.lead_details import DETAILS, Detail

FIND_LIMIT = 5
TASKS_LIMIT = 20

COMMANDS = [
    BotCommand(command="find", description="find a client by name, phone or e-mail"),
    BotCommand(command="tasks", description="your open tasks"),
    BotCommand(command="clients", description="the clients you own"),
    BotCommand(command="duty", description="on or off duty: /duty on, /duty off"),
    BotCommand(command="help", description="what this bot does"),
]

HELP = (
    "<b>Client cards come here.</b> When you answer a call you get the caller's card; press an "
    "outcome button when you hang up. <b>Reply</b> to a card to save a note on that client.\n\n"
    "/find <i>name, phone or e-mail</i> — look a client up\n"
    "/tasks — your open tasks, with a Done button\n"
    "/clients — the clients you own\n"
    "/duty on · /duty off — whether calls and leads come to you\n"
    "/help — this text"
)
ADMIN_HELP = (
    "\n\n<b>Admins</b>\n/agents — the team and who is on duty\n"
    "/handover <i>FROM_ID TO_ID</i> — an agent leaves: their clients and open work go to another"
)
CLIENTS_LIMIT = 30


async def on_start(
    message: Message, command: CommandObject, agent: Agent | None, uow: UnitOfWork, crm: Crm
) -> None:
    """`/start CODE` binds this chat to the agent whose invite it is."""
    code = (command.args or "").strip()
    if not code:
        if agent is None:
            await clients.on_hello(message)
        else:
            await message.answer(f"You are set up, {cut(agent.name)}.\n\n{HELP}")
        return
    user_id = message.from_user.id if message.from_user else None
    try:
        async with uow.write() as s:
            bound = await crm.agents.bind_chat(s, code, chat_id=message.chat.id, user_id=user_id)
    except BindingRefused as exc:
        await message.answer(f"Sorry, {cut(exc.detail)}.")
        return
    duty = "on duty" if bound.on_duty else "off duty"
    await message.answer(f"Welcome, {cut(bound.name)}! This chat is yours now; you are {duty}.\n\n{HELP}")


async def on_help(message: Message, agent: Agent) -> None:
    await message.answer(HELP + (ADMIN_HELP if agent.role == "admin" else ""))


async def on_duty(message: Message, command: CommandObject, agent: Agent, uow: UnitOfWork, crm: Crm) -> None:
    wanted = (command.args or "").strip().lower()
    if wanted not in ("on", "off"):
        state = "on duty" if agent.on_duty else "off duty"
        await message.answer(f"You are {state}. Send /duty on or /duty off.")
        return
    async with uow.write() as s:
        changed = await crm.agents.set_duty(s, agent.id, wanted == "on")
    if changed.on_duty:
        await message.answer("You are on duty: calls, leads and messages come to you.")
    else:
        await message.answer("You are off duty: nothing new is routed to you. Send /duty on to come back.")


async def on_find(
    message: Message, command: CommandObject, uow: UnitOfWork, crm: Crm, click_to_call: ClickToCall | None
) -> None:
    text = (command.args or "").strip()
    if not text:
        await message.answer(
            "Send /find with a name, a phone number or an e-mail, e.g. <code>/find Ada</code>."
        )
        return
    async with uow.read() as s:
        page = await crm.clients.search(s, q=text, limit=FIND_LIMIT + 1)
        cards = await crm.cards.build_many(s, page.items[:FIND_LIMIT])
    if not cards:
        await message.answer(f"No client matches “{cut(text, 80)}”.")
        return
    for card in cards:
        keyboard = card_keyboard(card.id, call_back=click_to_call is not None)
        sent = await message.answer(card_text(card), reply_markup=keyboard)
        async with uow.write() as s:
            await crm.sent_messages.remember(
                s, notices.CHANNEL, str(sent.chat.id), str(sent.message_id), "card", client_id=card.id
            )
    if len(page.items) > FIND_LIMIT:
        await message.answer(f"Showing the first {FIND_LIMIT}; add more words to narrow it down.")


async def on_tasks(message: Message, agent: Agent, uow: UnitOfWork, crm: Crm) -> None:
    async with uow.read() as s:
        page = await crm.tasks.search(s, agent_id=agent.id, open_only=True, limit=TASKS_LIMIT)
        names = await crm.clients.names(s, {t.client_id for t in page.items})
    if not page.items:
        await message.answer("No open tasks. 🎉")
        return
    ordered = sorted(page.items, key=lambda t: t.due_at)
    lines = ["<b>Your open tasks</b>", *(task_line(t, names.get(t.client_id, "?")) for t in ordered)]
    await message.answer("\n".join(lines), reply_markup=task_done_keyboard(ordered))


async def on_outcome(
    query: CallbackQuery,
    callback_data: OutcomeButton,
    agent: Agent,
    uow: UnitOfWork,
    crm: Crm,
    click_to_call: ClickToCall | None,
) -> None:
    try:
        async with uow.write() as s:
            call = await crm.call_log.set_outcome(
                s, callback_data.call_id, callback_data.outcome, agent=agent
            )
            card = await crm.cards.build(s, call.client_id) if call.client_id else None
    except CrmError as exc:
        await query.answer(exc.sentence(), show_alert=True)
        return
    await query.answer(f"Saved: {OUTCOME_LABELS[callback_data.outcome]}")
    if card is not None and isinstance(query.message, Message):
        rendered = call_card(card, call, call_back=click_to_call is not None)
        await query.message.edit_text(text=rendered.text, reply_markup=rendered.reply_markup)


async def on_task_done(
    query: CallbackQuery, callback_data: TaskDoneButton, agent: Agent, uow: UnitOfWork, crm: Crm
) -> None:
    try:
        async with uow.write() as s:
            task = await crm.tasks.get(s, callback_data.task_id)
            if task.agent_id not in (agent.id, None) and agent.role != "admin":
                await query.answer("This task is someone else's.", show_alert=True)
                return
            await crm.tasks.update(s, task.id, done=True)
            title = task.title
    except CrmError as exc:
        await query.answer(exc.sentence(), show_alert=True)
        return
    await query.answer(f"Done: {title}")
    if isinstance(query.message, Message) and query.message.reply_markup:
        keep = [
            row
            for row in query.message.reply_markup.inline_keyboard
            if not any(b.callback_data == callback_data.pack() for b in row)
        ]
        await query.message.edit_reply_markup(reply_markup=_markup(keep))


async def on_lead_detail(
    query: CallbackQuery,
    callback_data: LeadDetailButton,
    agent: Agent,
    uow: UnitOfWork,
    crm: Crm,
    click_to_call: ClickToCall | None,
) -> None:
    """➕ on a lead's card: the agent adds the form's phone or e-mail to the client."""
    if callback_data.detail not in DETAILS:
        await query.answer("This button is out of date.", show_alert=True)
        return
    detail: Detail = "phone" if callback_data.detail == "phone" else "email"
    try:
        async with uow.write() as s:
            applied = await crm.lead_details.apply(s, callback_data.lead_id, detail, agent=agent)
            lead = await s.get(Lead, applied.lead_id)
            card = await crm.cards.build(s, applied.client_id)
    except CrmError as exc:
        await query.answer(exc.sentence(), show_alert=True)
        return
    shown = number(applied.value) if detail == "phone" else applied.value
    await query.answer(f"Added to {applied.client_name}: {shown}")
    if card is not None and lead is not None and isinstance(query.message, Message):
        rendered = lead_card(card, lead, call_back=click_to_call is not None)
        await query.message.edit_text(text=rendered.text, reply_markup=rendered.reply_markup)


async def on_call_back(
    query: CallbackQuery,
    callback_data: CallBackButton,
    agent: Agent,
    uow: UnitOfWork,
    crm: Crm,
    click_to_call: ClickToCall | None,
) -> None:
    """Click-to-call: the agent's phone rings first, then the client's."""
    if click_to_call is None:
        await query.answer("Calls cannot be placed from here: click-to-call is off.", show_alert=True)
        return
    try:
        async with uow.write() as s:
            await crm.calls.place_outbound(
                s,
                client_id=callback_data.client_id,
                agent_id=agent.id,
                provider=click_to_call.provider,
                caller_id=click_to_call.caller_id,
            )
    except CrmError as exc:
        await query.answer(exc.sentence(), show_alert=True)
        return
    await query.answer("Calling you now: pick up, and we connect the client.")


async def on_clients(message: Message, agent: Agent, uow: UnitOfWork, crm: Crm) -> None:
    """The clients this agent owns (say, after a colleague's hand-over)."""
    async with uow.read() as s:
        owned = await crm.clients.owned_by(s, agent.id, limit=CLIENTS_LIMIT + 1)
    if not owned:
        await message.answer("You own no clients yet.")
        return
    lines = [
        f"<b>Your clients</b> ({len(owned) if len(owned) <= CLIENTS_LIMIT else f'first {CLIENTS_LIMIT}'})"
    ]
    lines += [f"• {cut(name, 80)}" for _, name in owned[:CLIENTS_LIMIT]]
    lines.append("\nSend /find with a name for a client's card.")
    await message.answer("\n".join(lines))


async def on_agents(message: Message, agent: Agent, uow: UnitOfWork, crm: Crm) -> None:
    """The team for admins: who is on duty, who has bound the bot."""
    if agent.role != "admin":
        await message.answer("Only admins can see the team list.")
        return
    async with uow.read() as s:
        team = await crm.agents.active(s)
    lines = ["<b>The team</b>"]
    for a in team:
        duty = "🟢 on duty" if a.on_duty else "⚪️ off duty"
        bound = "" if a.chat_id else " · not in the bot yet"
        lines.append(f"{a.id}. {cut(a.name, 60)} ({a.role}) — {duty}{bound}")
    await message.answer("\n".join(lines))


async def on_handover(
    message: Message, command: CommandObject, agent: Agent, uow: UnitOfWork, crm: Crm
) -> None:
    """`/handover FROM TO`: shows what would move, with a confirm button."""
    if agent.role != "admin":
        await message.answer("Only admins can hand an agent's work over.")
        return
    words = (command.args or "").split()
    ids = [i for i in map(parse_id, words) if i is not None]  # "²", 30 digits: no id
    if len(words) != 2 or len(ids) != 2:
        await message.answer("Send <code>/handover FROM_ID TO_ID</code>; /agents shows the ids.")
        return
    leaving_id, taking_id = ids
    try:
        async with uow.read() as s:
            leaving, taking = await crm.handover.check(s, leaving_id, taking_id)
            owns = await crm.handover.holdings(s, leaving_id)
    except CrmError as exc:
        await message.answer("Cannot do that: " + cut(exc.sentence(), 300))
        return
    kb = InlineKeyboardBuilder()
    kb.button(
        text="✅ Hand over",
        callback_data=HandoverButton(agent_id=leaving_id, to_agent_id=taking_id, confirm=True),
    )
    kb.button(
        text="Cancel", callback_data=HandoverButton(agent_id=leaving_id, to_agent_id=taking_id, confirm=False)
    )
    await message.answer(
        f"Remove <b>{cut(leaving.name, 60)}</b> and give {cut(taking.name, 60)} their "
        f"{owns.clients} clients, {owns.deals} open deals and {owns.tasks} open tasks?",
        reply_markup=kb.as_markup(),
    )


async def on_handover_button(
    query: CallbackQuery, callback_data: HandoverButton, agent: Agent, uow: UnitOfWork, crm: Crm
) -> None:
    if agent.role != "admin":
        await query.answer("Only admins can hand an agent's work over.", show_alert=True)
        return
    if not callback_data.confirm:
        await query.answer("Cancelled")
        if isinstance(query.message, Message):
            await query.message.edit_text("Hand-over cancelled.")
        return
    try:
        async with uow.write() as s:
            moved = await crm.handover.perform(s, callback_data.agent_id, callback_data.to_agent_id)
    except CrmError as exc:
        await query.answer(exc.sentence(), show_alert=True)
        return
    await query.answer("Done")
    if isinstance(query.message, Message):
        await query.message.edit_text(
            f"Done: {moved.clients} clients, {moved.deals} open deals and {moved.tasks} open tasks moved."
        )


def _markup(rows: list[list[InlineKeyboardButton]]) -> InlineKeyboardMarkup | None:
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


async def on_reply(message: Message, agent: Agent, uow: UnitOfWork, crm: Crm) -> None:
    """A reply to a client's message goes back to the client; a reply to a client card is a note on
    that client (and on the call the card was about)."""
    replied = message.reply_to_message
    assert replied is not None
    text = message.text or ""
    answer = "I can't tell which client that is about. Reply to a client card to add a note."
    async with uow.write() as s:
        about = await crm.sent_messages.about(
            s, notices.CHANNEL, str(message.chat.id), str(replied.message_id)
        )
        client = await s.get(Client, about.client_id) if about is not None and about.client_id else None
        if about is not None and client is not None:
            if about.kind == "client_message":
                await crm.conversations.reply(s, agent, client.id, text)
                answer = f"✉️ Sent to {cut(client.name, 80)}."
            else:
                try:
                    await crm.notes.add(
                        s, client.id, text, agent_id=agent.id, call_id=about.call_id, by=agent
                    )
                    answer = f"🗒 Note saved on {cut(client.name, 80)}."
                except CrmError as exc:
                    answer = f"Not saved: {cut(exc.sentence(), 300)}."
    await message.reply(answer)


async def on_anything_else(message: Message) -> None:
    await message.answer("Reply to a client card to add a note, or send /help.")


def build_router() -> Router:
    """The agents' handlers, in the order they are tried. Built per bot: an aiogram router
    belongs to one dispatcher."""
    root = Router(name="bot")
    root.message.register(on_start, CommandStart())

    agents = Router(name="agents")
    agents.message.filter(IsAgent())
    agents.callback_query.filter(IsAgent())
    agents.message.register(on_help, Command("help"))
    agents.message.register(on_duty, Command("duty"))
    agents.message.register(on_find, Command("find"))
    agents.message.register(on_tasks, Command("tasks"))
    agents.message.register(on_clients, Command("clients"))
    agents.message.register(on_agents, Command("agents"))
    agents.message.register(on_handover, Command("handover"))
    agents.callback_query.register(on_handover_button, HandoverButton.filter())
    agents.callback_query.register(on_outcome, OutcomeButton.filter())
    agents.callback_query.register(on_task_done, TaskDoneButton.filter())
    agents.callback_query.register(on_call_back, CallBackButton.filter())
    agents.callback_query.register(on_lead_detail, LeadDetailButton.filter())
    agents.message.register(on_reply, F.reply_to_message, F.text)
    agents.message.register(on_anything_else)

    root.include_routers(agents, clients.build_router())
    return root
