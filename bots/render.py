"""Everything the bot shows, as Telegram HTML: one card renderer for call pops, /find, reminders
and leads. User text is escaped; a long history is cut to fit Telegram's 4096-character limit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from html import escape

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from bots.callbacks import CallBackButton, LeadDetailButton, OutcomeButton, TaskDoneButton
from crm.domain.models import Call, Lead, Task
from crm.domain.phones import format_international, is_anonymous
from crm.services.calls import OUTCOME_LABELS, OUTCOMES
from crm.services.cards import Card
from crm.services.intake import lead_headline
from crm.services.lead_details import DETAILS, LABELS

LIMIT = 4096
FIELD = 200  # longest piece of user text shown on one line
OUTCOME_EMOJI = {
    "interested": "👍",
    "callback": "🔁",
    "not_interested": "👎",
    "won": "🏆",
    "wrong_number": "❌",
}
KIND_EMOJI = {"call": "📞", "message": "💬", "lead": "📝", "note": "🗒", "email": "✉️"}
STATUS_TEXT = {
    "ringing": "ringing",
    "in_progress": "in progress",
    "completed": "completed",
    "missed": "missed",
    "busy": "busy",
    "failed": "failed",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    reply_markup: InlineKeyboardMarkup | None = None


def cut(text: str | None, limit: int = FIELD) -> str:
    """User text made safe for HTML and short enough for one line."""
    plain = " ".join((text or "").split())
    if len(plain) > limit:
        plain = plain[: limit - 1] + "…"
    return escape(plain, quote=False)


def when(at: datetime) -> str:
    return at.strftime("%-d %b %H:%M UTC")


def duration(seconds: int | None) -> str:
    if not seconds:
        return "0s"
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02}s" if minutes else f"{secs}s"


def card_text(card: Card, *, headline: str | None = None, call: Call | None = None) -> str:
    """The client card; `headline` (already HTML) goes on top, e.g. "Incoming call"."""
    head: list[str] = []
    if headline:
        head.append(headline)
    title = f"<b>{cut(card.name)}</b>"
    if card.company:
        title += f" · {cut(card.company.name)}"
    head.append(title)
    if card.phones:
        head.append("📞 " + ", ".join(cut(p.display, 40) for p in card.phones))
    if card.emails:
        head.append("✉️ " + ", ".join(cut(e, 80) for e in card.emails))
    if card.tags:
        head.append("🏷 " + cut(", ".join(card.tags)))
    head.append("👤 Owner: " + (cut(card.owner.name) if card.owner else "nobody yet"))
    if card.local_time is not None:
        head.append(f"🕒 Their time: {card.local_time.strftime('%a %H:%M')}")
    if call is not None:
        line = f"☎️ Call: {STATUS_TEXT.get(call.status, call.status)}"
        if call.duration_s:
            line += f", {duration(call.duration_s)}"
        if call.outcome:
            line += f" · Outcome: <b>{OUTCOME_LABELS.get(call.outcome, call.outcome)}</b>"
        head.append(line)
    body: list[str] = []
    if card.open_deals:
        body.append("<b>Deals</b>")
        for d in card.open_deals:
            amount = f" · {d.amount}" if d.amount is not None else ""
            body.append(f"• {cut(d.title, 80)} — {cut(d.stage, 40)}{amount}")
    if card.open_tasks:
        body.append("<b>Tasks</b>")
        body += [f"• {cut(t.title, 80)} — due {when(t.due_at)}" for t in card.open_tasks]
    history: list[str] = []
    if card.recent_interactions:
        history.append("<b>Recent</b>")
        for i in card.recent_interactions:
            who = f" ({cut(i.agent.name, 40)})" if i.agent else ""
            history.append(f"{KIND_EMOJI.get(i.kind, '•')} {when(i.at)}: {cut(i.summary, 160)}{who}")
    return fit(head, body, history)


def fit(head: list[str], body: list[str], history: list[str]) -> str:
    """Join the sections, dropping the oldest history lines (then body lines) until it fits."""
    while True:
        text = "\n".join([*head, *([""] if body else []), *body, *([""] if history else []), *history])
        if len(text) <= LIMIT:
            return text
        if len(history) > 1:
            history.pop()
        elif history:
            history.clear()
        elif len(body) > 1:
            body.pop()
        else:
            return text[: LIMIT - 1] + "…"


CALL_BACK = "📞 Call back"


def card_keyboard(
    client_id: int, *, call_id: int | None = None, chosen: str | None = None, call_back: bool = False
) -> InlineKeyboardMarkup | None:
    """A call's outcome buttons (the chosen one ticked), two to a row, and, when calls can be
    placed, Call back. Built directly: aiogram's keyboard builder deep-copies every button, which
    cost more than the rest of a card."""
    buttons: list[InlineKeyboardButton] = []
    if call_id is not None:
        for outcome in OUTCOMES:
            label = f"{OUTCOME_EMOJI[outcome]} {OUTCOME_LABELS[outcome]}"
            if outcome == chosen:
                label = "✅ " + OUTCOME_LABELS[outcome]
            data = OutcomeButton(call_id=call_id, outcome=outcome).pack()
            buttons.append(InlineKeyboardButton(text=label, callback_data=data))
    rows = [buttons[i : i + 2] for i in range(0, len(buttons), 2)]
    if call_back:
        data = CallBackButton(client_id=client_id).pack()
        rows.append([InlineKeyboardButton(text=CALL_BACK, callback_data=data)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def number(raw: str | None) -> str:
    """A number as people read it (`+1 415-555-0100`), or as it came when it is not E.164."""
    if not raw:
        return "a withheld number"
    if raw.startswith("+") and not is_anonymous(raw):
        try:
            return format_international(raw)
        except Exception:  # phonenumbers cannot read it: show it as it came
            return raw
    return "a withheld number" if is_anonymous(raw) else raw


def call_headline(call: Call) -> str:
    if call.direction == "outbound":
        return f"📞 <b>Call to {cut(number(call.to_number), 40)}</b>"
    return f"📞 <b>Call from {cut(number(call.from_number), 40)}</b>"


def call_card(card: Card, call: Call, *, call_back: bool = False) -> Rendered:
    """The card an agent gets for a call, with the outcome buttons (the chosen one ticked)."""
    keyboard = card_keyboard(card.id, call_id=call.id, chosen=call.outcome, call_back=call_back)
    return Rendered(card_text(card, headline=call_headline(call), call=call), keyboard)


def lead_card(card: Card, lead: Lead, *, call_back: bool = False) -> Rendered:
    """The card an agent gets for a lead. What the form gave that the client does not have is
    shown apart, with a button each to add it: the form's sender may not be this client."""
    head = [f"<b>{escape(lead_headline(lead.source, lead.message), quote=False)}</b>"]
    unapplied = lead.unapplied or {}
    buttons: list[list[InlineKeyboardButton]] = []
    for detail in DETAILS:
        value = unapplied.get(detail)
        if value is None:
            continue
        shown = number(value) if detail == "phone" else value
        head.append(f"⚠️ The form also gave the {LABELS[detail]} {cut(shown, 80)}: not added to this client.")
        data = LeadDetailButton(lead_id=lead.id, detail=detail).pack()
        label = f"➕ Add {LABELS[detail]} {shown}"
        buttons.append([InlineKeyboardButton(text=label[:60], callback_data=data)])
    keyboard = card_keyboard(card.id, call_back=call_back)
    rows = buttons + (keyboard.inline_keyboard if keyboard else [])
    markup = InlineKeyboardMarkup(inline_keyboard=rows) if rows else None
    return Rendered(card_text(card, headline="\n".join(head)), markup)


def task_line(task: Task, client_name: str) -> str:
    return f"• <b>{cut(client_name, 80)}</b>: {cut(task.title, 120)} — due {when(task.due_at)}"


def task_done_keyboard(tasks: list[Task]) -> InlineKeyboardMarkup | None:
    if not tasks:
        return None
    kb = InlineKeyboardBuilder()
    for task in tasks:
        kb.button(text=f"✔️ Done: {task.title[:40]}", callback_data=TaskDoneButton(task_id=task.id))
    kb.adjust(1)
    return kb.as_markup()


def reminder(card: Card, task: Task) -> Rendered:
    headline = f"⏰ <b>Time to call {cut(card.name, 80)}</b>: {cut(task.title, 120)}"
    return Rendered(card_text(card, headline=headline), task_done_keyboard([task]))
