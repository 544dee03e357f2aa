"""The clients' side of the bot: anyone who is not an agent is a client. Their messages go to
their agent; a "share my phone" button joins them to the client who already has that number."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import CommandStart
from aiogram.types import KeyboardButton, Message, ReplyKeyboardMarkup, ReplyKeyboardRemove

from bots import MESSENGER
from bots.context import UnitOfWork
from crm.domain.errors import CrmError, InvalidPhone
from crm.service import Crm

SHARE = "📱 Share my phone number"
GREETING = (
    "Hello! Write your question here and one of our team will answer in this chat. "
    "If you have called us before, share your phone number so that we know who you are."
)
THANKS_FIRST = "Thank you! Your message reached our team; the answer will come here."
NOT_YOURS = (
    "That is not your own contact, so I cannot take it: to tell us who you are, share your own "
    "number with the button below."
)
TEXT_ONLY = "I can pass on text messages only: please write your question."


def share_keyboard() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[[KeyboardButton(text=SHARE, request_contact=True)]],
        resize_keyboard=True,
        one_time_keyboard=True,
    )


def _who(message: Message) -> tuple[str, str, str | None]:
    """The writer's account id, a name to file them under, and their @handle."""
    user = message.from_user
    if user is None:  # channel posts have no user; private chats always do
        return str(message.chat.id), message.chat.full_name or "Telegram user", None
    return (
        str(user.id),
        user.full_name or (f"@{user.username}" if user.username else f"Telegram user {user.id}"),
        (f"@{user.username}" if user.username else None),
    )


async def on_hello(message: Message) -> None:
    await message.answer(GREETING, reply_markup=share_keyboard())


async def on_contact(message: Message, uow: UnitOfWork, crm: Crm) -> None:
    """A shared contact: their own number joins them to the client who has it. Only their own:
    a contact card anyone can make (a landline's has no `user_id`) would take over that client."""
    contact = message.contact
    assert contact is not None
    account, name, _ = _who(message)
    if contact.user_id is None or str(contact.user_id) != account:  # someone else's card, or a landline's
        await message.answer(NOT_YOURS, reply_markup=share_keyboard())
        return
    try:
        async with uow.write() as s:
            await crm.conversations.shared_phone(
                s, MESSENGER, account, name=name, phone=contact.phone_number, region=crm.region
            )
    except InvalidPhone:
        await message.answer("Sorry, I could not read that number.", reply_markup=ReplyKeyboardRemove())
        return
    await message.answer("Thank you, we know who you are now.", reply_markup=ReplyKeyboardRemove())


async def on_text(message: Message, uow: UnitOfWork, crm: Crm) -> None:
    account, name, handle = _who(message)
    try:
        async with uow.write() as s:
            incoming = await crm.conversations.incoming(
                s, MESSENGER, account, name=name, text=message.text or "", handle=handle
            )
    except CrmError:
        await message.answer("Sorry, your message could not be taken; please try again.")
        return
    if incoming.client_created:
        await message.answer(THANKS_FIRST, reply_markup=share_keyboard())


async def on_other(message: Message) -> None:
    await message.answer(TEXT_ONLY)


def build_router() -> Router:
    """Handlers for chats no agent is bound to; tried after the agents' ones."""
    router = Router(name="clients")
    router.message.filter(F.chat.type == "private")
    router.message.register(on_hello, CommandStart())
    router.message.register(on_contact, F.contact)
    router.message.register(on_hello, F.text.startswith("/"))  # agents' commands mean nothing here
    router.message.register(on_text, F.text)
    router.message.register(on_other)
    return router
