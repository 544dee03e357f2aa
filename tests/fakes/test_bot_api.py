"""The fake Bot API, checked with the real aiogram client.

What aiogram sends, the fake records; what the fake answers, aiogram parses; the fake's errors become
aiogram's exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiogram import Bot, Dispatcher, F
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandStart
from aiogram.methods import SendMessage
from aiogram.types import (
    BotCommand,
    BufferedInputFile,
    CallbackQuery,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyParameters,
    Update,
)
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from tests.fakes.bot_api import BotApiServer, SentFile, running_bot_api

CHAT = 501
OTHER = 502


class FastSession(AiohttpSession):
    """aiogram's session without the 250 ms grace sleep on close (loopback, no TLS to drain)."""

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def make_bot(server: BotApiServer, token: str | None = None) -> Bot:
    session = FastSession(api=TelegramAPIServer.from_base(server.url))
    return Bot(token or server.token, session=session)


@pytest.fixture
async def api() -> AsyncIterator[BotApiServer]:
    async for server in running_bot_api():
        yield server


@pytest.fixture
async def bot(api: BotApiServer) -> AsyncIterator[Bot]:
    bot = make_bot(api)
    yield bot
    await bot.session.close()


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text=text, callback_data=data)] for text, data in pairs]
    )


async def test_get_me_is_the_bot_user(api: BotApiServer, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, api.bot_user["username"])


async def test_send_message_with_html_and_keyboard_round_trips(api: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(
        CHAT, "<b>New lead</b>: Ada &amp; Co", parse_mode="HTML", reply_markup=keyboard(("Take", "take:1"))
    )

    assert sent.text == "New lead: Ada & Co"
    assert sent.entities is not None and sent.entities[0].type == "bold" and sent.entities[0].length == 8
    assert sent.reply_markup is not None
    assert sent.reply_markup.model_dump() == keyboard(("Take", "take:1")).model_dump()
    assert sent.from_user is not None and sent.from_user.id == api.bot_user["id"]
    (recorded,) = api.messages(CHAT)
    assert recorded.message_id == sent.message_id
    assert (recorded.text, recorded.parse_mode, recorded.method) == (
        "<b>New lead</b>: Ada &amp; Co",
        "HTML",
        "sendMessage",
    )
    assert recorded.reply_markup == {"inline_keyboard": [[{"text": "Take", "callback_data": "take:1"}]]}
    assert recorded.button_data("Take") == "take:1"
    assert api.calls("sendMessage")[0]["chat_id"] == CHAT


async def test_message_ids_increase_per_chat(api: BotApiServer, bot: Bot) -> None:
    first = await bot.send_message(CHAT, "one")
    second = await bot.send_message(CHAT, "two")
    other = await bot.send_message(OTHER, "elsewhere")
    assert second.message_id == first.message_id + 1
    assert other.message_id == 1
    assert [m.text for m in api.messages(CHAT)] == ["one", "two"]


async def test_reply_keyboard_is_recorded_but_not_echoed(api: BotApiServer, bot: Bot) -> None:
    markup = ReplyKeyboardMarkup(keyboard=[[KeyboardButton(text="Share", request_contact=True)]])
    sent = await bot.send_message(CHAT, "Your phone?", reply_markup=markup)
    assert sent.reply_markup is None
    assert api.messages(CHAT)[0].reply_markup == {"keyboard": [[{"text": "Share", "request_contact": True}]]}


async def test_telegram_validation_errors(api: BotApiServer, bot: Bot) -> None:
    with pytest.raises(TelegramBadRequest, match='Unsupported start tag "" at byte offset 2'):
        await bot.send_message(CHAT, "a < b", parse_mode="HTML")
    with pytest.raises(TelegramBadRequest, match=r"Character '\.' is reserved"):
        await bot.send_message(CHAT, "Done.", parse_mode="MarkdownV2")
    with pytest.raises(TelegramBadRequest, match="message text is empty"):
        await bot.send_message(CHAT, "   ")
    with pytest.raises(TelegramBadRequest, match="message is too long"):
        await bot.send_message(CHAT, "x" * 4097)
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(CHAT, "hi", reply_markup=keyboard(("Long", "x" * 65)))
    with pytest.raises(TelegramBadRequest, match="message to be replied not found"):
        await bot.send_message(CHAT, "hi", reply_parameters=ReplyParameters(message_id=99))
    assert api.messages(CHAT) == []
    assert len(api.calls("sendMessage")) == 6


async def test_edit_message_text_updates_the_message(api: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Lead #1", reply_markup=keyboard(("Take", "take:1")))

    edited = await bot.edit_message_text(
        text="Lead #1 — <i>taken</i>",
        chat_id=CHAT,
        message_id=sent.message_id,
        parse_mode="HTML",
        reply_markup=keyboard(("Release", "release:1")),
    )

    assert isinstance(edited, Message)
    assert edited.text == "Lead #1 — taken" and edited.edit_date is not None
    (recorded,) = api.messages(CHAT)
    assert recorded.text == "Lead #1"
    assert recorded.edits == ["Lead #1 — <i>taken</i>"]
    assert recorded.current_text == "Lead #1 — <i>taken</i>"
    assert recorded.button_data("Release") == "release:1"

    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_text(
            text="Lead #1 — <i>taken</i>",
            chat_id=CHAT,
            message_id=sent.message_id,
            parse_mode="HTML",
            reply_markup=keyboard(("Release", "release:1")),
        )
    # Like Telegram, editing the text without reply_markup drops the inline keyboard.
    await bot.edit_message_text(text="Lead #1 closed", chat_id=CHAT, message_id=sent.message_id)
    assert recorded.reply_markup is None and recorded.buttons == []
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text(text="x", chat_id=CHAT, message_id=999)


async def test_edit_reply_markup(api: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Lead", reply_markup=keyboard(("Take", "take:1")))
    edited = await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id, reply_markup=None)
    assert isinstance(edited, Message) and edited.reply_markup is None
    assert api.messages(CHAT)[0].reply_markup is None
    assert api.messages(CHAT)[0].edits == []
    with pytest.raises(TelegramBadRequest, match="message is not modified"):
        await bot.edit_message_reply_markup(chat_id=CHAT, message_id=sent.message_id)


async def test_fail_next_429_raises_retry_after_then_recovers(api: BotApiServer, bot: Bot) -> None:
    api.fail_next("sendMessage", 1, status=429, description="Too Many Requests: retry after 2", retry_after=2)
    with pytest.raises(TelegramRetryAfter) as caught:
        await bot.send_message(CHAT, "hi")
    assert caught.value.retry_after == 2
    await bot.send_message(CHAT, "hi")
    assert [m.text for m in api.messages(CHAT)] == ["hi"]
    assert len(api.calls("sendMessage")) == 2
    assert [c.status for c in api.history] == [429, 200]


async def test_fail_next_500_counts_down(api: BotApiServer, bot: Bot) -> None:
    api.fail_next("sendMessage", 2, status=500, description="Internal Server Error")
    for _ in range(2):
        with pytest.raises(TelegramServerError):
            await bot.send_message(CHAT, "hi")
    await bot.send_message(CHAT, "hi")
    assert len(api.messages(CHAT)) == 1


async def test_forbidden_and_chat_not_found(api: BotApiServer, bot: Bot) -> None:
    api.fail_next("sendMessage", 1, status=403, description="Forbidden: bot was blocked by the user")
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(CHAT, "hi")

    api.fail_next("sendMessage", 1, status=400, description="Bad Request: chat not found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message(CHAT, "hi")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.send_message("@nobody", "hi")


async def test_fail_chat_is_permanent_for_that_chat_only(api: BotApiServer, bot: Bot) -> None:
    api.fail_chat(CHAT, status=403, description="Forbidden: bot was blocked by the user")
    for _ in range(3):
        with pytest.raises(TelegramForbiddenError):
            await bot.send_message(CHAT, "hi")
    with pytest.raises(TelegramForbiddenError):
        await bot.send_chat_action(CHAT, "typing")
    await bot.send_message(OTHER, "fine")
    api.heal_chat(CHAT)
    await bot.send_message(CHAT, "back")
    assert [m.text for m in api.messages(CHAT)] == ["back"]


async def test_fail_next_scoped_to_a_chat(api: BotApiServer, bot: Bot) -> None:
    api.fail_next("sendMessage", 1, status=400, description="Bad Request: chat not found", chat_id=CHAT)
    await bot.send_message(OTHER, "unaffected")
    with pytest.raises(TelegramBadRequest):
        await bot.send_message(CHAT, "hi")


async def test_get_updates_returns_pushed_updates_and_honours_offset(api: BotApiServer, bot: Bot) -> None:
    api.push_update(api.user_message(chat_id=CHAT, text="/start"))
    api.push_update(api.user_message(chat_id=CHAT, text="hello"))

    updates = await bot.get_updates(timeout=0)
    assert [u.message.text for u in updates if u.message] == ["/start", "hello"]
    first = updates[0].message
    assert first is not None and first.entities is not None
    assert (first.entities[0].type, first.entities[0].length) == ("bot_command", 6)

    again = await bot.get_updates(offset=updates[0].update_id + 1, timeout=0)
    assert [u.update_id for u in again] == [updates[1].update_id]
    assert await bot.get_updates(offset=updates[1].update_id + 1, timeout=0) == []
    assert api.pending_updates() == []


async def test_get_updates_long_polls(api: BotApiServer, bot: Bot) -> None:
    empty = asyncio.create_task(bot.get_updates(timeout=2))
    await api.next_call("getUpdates")
    await bot.get_me()  # the server answers other calls meanwhile
    assert not empty.done()  # while the poll is held
    assert await asyncio.wait_for(empty, 10) == []  # until its timeout, with nothing

    waiting = asyncio.create_task(bot.get_updates(timeout=30))
    await api.next_call("getUpdates")
    api.push_update(api.user_message(chat_id=CHAT, text="hi"))
    updates = await asyncio.wait_for(waiting, 10)  # answered by the update, long before its 30 s
    assert [u.message.text for u in updates if u.message] == ["hi"]


async def test_second_poller_terminates_the_first(api: BotApiServer, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=5))
    await api.next_call("getUpdates")
    second = asyncio.create_task(bot.get_updates(timeout=0))
    with pytest.raises(TelegramConflictError, match="terminated by other getUpdates request"):
        await first
    assert await second == []


async def test_dispatcher_polling_end_to_end(api: BotApiServer, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message(CommandStart())
    async def start(message: Message) -> None:
        await message.answer(
            f"Hi, {message.from_user.first_name if message.from_user else '?'}",
            reply_markup=keyboard(("Leads", "leads")),
        )

    @dp.callback_query(F.data == "leads")
    async def leads(query: CallbackQuery) -> None:
        assert isinstance(query.message, Message)
        await query.message.edit_text("No leads")
        await query.answer("ok")

    polling = asyncio.create_task(
        dp.start_polling(bot, polling_timeout=1, handle_signals=False, close_bot_session=False)
    )
    try:
        api.push_update(api.user_message(chat_id=CHAT, text="/start", first_name="Grace"))
        greeting = await api.next_message(CHAT)
        assert greeting.text == "Hi, Grace"
        api.push_update(api.callback(chat_id=CHAT, message=greeting, data=greeting.button_data("Leads")))
        assert (await api.next_call("answerCallbackQuery"))["text"] == "ok"
        assert greeting.edits == ["No leads"] and greeting.buttons == []
        assert api.allowed_updates == ["callback_query", "message"]
        await api.no_message(CHAT, within=0.1)
    finally:
        await dp.stop_polling()
        await polling


async def test_callback_answers(api: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Lead", reply_markup=keyboard(("Take", "take:1")))
    update = api.callback(chat_id=CHAT, message=api.messages(CHAT)[0], data="take:1")
    parsed = Update.model_validate(update)
    assert parsed.callback_query is not None and parsed.callback_query.data == "take:1"
    assert isinstance(parsed.callback_query.message, Message)
    assert parsed.callback_query.message.message_id == sent.message_id

    assert await bot.answer_callback_query(update["callback_query"]["id"], text="Taken")
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(update["callback_query"]["id"])
    with pytest.raises(AssertionError, match="no button with callback_data 'nope'"):
        api.callback(chat_id=CHAT, message=api.messages(CHAT)[0], data="nope")


async def test_user_message_with_reply_and_contact_parses(api: BotApiServer, bot: Bot) -> None:
    sent = await bot.send_message(CHAT, "Your phone?")
    update = api.user_message(
        chat_id=CHAT,
        text="",
        reply_to=api.messages(CHAT)[0],
        contact={"phone_number": "+15550100", "user_id": CHAT},
    )
    parsed = Update.model_validate(update)
    assert parsed.message is not None and parsed.message.contact is not None
    assert parsed.message.contact.phone_number == "+15550100"
    assert parsed.message.reply_to_message is not None
    assert parsed.message.reply_to_message.message_id == sent.message_id
    assert parsed.message.message_id == sent.message_id + 1

    reply = await bot.send_message(
        CHAT, "Thanks", reply_parameters=ReplyParameters(message_id=parsed.message.message_id)
    )
    assert reply.reply_to_message is not None and reply.reply_to_message.contact is not None
    assert api.messages(CHAT)[1].reply_to_message_id == parsed.message.message_id


async def test_send_audio_records_the_upload(api: BotApiServer, bot: Bot) -> None:
    data = bytes(range(256)) * 40
    sent = await bot.send_audio(
        CHAT, BufferedInputFile(data, filename="call-17.mp3"), caption="Call <b>17</b>", parse_mode="HTML"
    )

    assert sent.audio is not None and sent.audio.file_size == len(data)
    assert sent.audio.file_name == "call-17.mp3" and sent.audio.mime_type == "audio/mpeg"
    assert sent.caption == "Call 17"
    (recorded,) = api.messages(CHAT)
    assert recorded.method == "sendAudio" and recorded.text is None
    assert recorded.file == SentFile("call-17.mp3", data)
    name, body = recorded.file
    assert (name, body, recorded.file.size) == ("call-17.mp3", data, len(data))
    assert recorded.caption == "Call <b>17</b>"
    assert api.calls("sendAudio")[0]["audio"] == recorded.file

    again = await bot.send_audio(OTHER, sent.audio.file_id)
    assert again.audio is not None and again.audio.file_id == sent.audio.file_id
    assert api.messages(OTHER)[0].file == recorded.file


async def test_send_voice_and_document(api: BotApiServer, bot: Bot) -> None:
    voice = await bot.send_voice(CHAT, BufferedInputFile(b"OggS-voice", filename="note.ogg"), duration=3)
    document = await bot.send_document(CHAT, BufferedInputFile(b"a,b\n1,2\n", filename="leads.csv"))
    assert voice.voice is not None and voice.voice.duration == 3
    assert document.document is not None and document.document.file_name == "leads.csv"
    assert [(m.method, m.file) for m in api.messages(CHAT)] == [
        ("sendVoice", SentFile("note.ogg", b"OggS-voice")),
        ("sendDocument", SentFile("leads.csv", b"a,b\n1,2\n")),
    ]
    with pytest.raises(TelegramBadRequest, match="file must be non-empty"):
        await bot.send_document(CHAT, BufferedInputFile(b"", filename="empty.txt"))


async def test_chat_action_and_commands(api: BotApiServer, bot: Bot) -> None:
    assert await bot.send_chat_action(CHAT, "typing")
    assert api.calls("sendChatAction") == [{"chat_id": CHAT, "action": "typing"}]
    assert api.messages(CHAT) == []

    await bot.set_my_commands(
        [
            BotCommand(command="start", description="Start"),
            BotCommand(command="leads", description="My leads"),
        ]
    )
    assert [c.command for c in await bot.get_my_commands()] == ["start", "leads"]
    assert api.my_commands() == [
        {"command": "start", "description": "Start"},
        {"command": "leads", "description": "My leads"},
    ]
    with pytest.raises(TelegramBadRequest, match="BOT_COMMAND_INVALID"):
        await bot.set_my_commands([BotCommand(command="Leads", description="x")])


async def test_wrong_token_unknown_method_and_raw_protocol(api: BotApiServer, bot: Bot) -> None:
    stranger = make_bot(api, token="654321:WRONG")
    try:
        with pytest.raises(TelegramUnauthorizedError, match="Unauthorized"):
            await stranger.get_me()
    finally:
        await stranger.session.close()

    async with aiohttp.ClientSession() as http:
        async with http.post(f"{api.url}/bot{api.token}/frobnicate") as response:
            assert response.status == 404
            assert await response.json() == {
                "ok": False,
                "error_code": 404,
                "description": "Not Found: method not found",
            }
        # Telegram also takes JSON bodies and query strings.
        async with http.post(
            f"{api.url}/bot{api.token}/sendMessage", json={"chat_id": CHAT, "text": "json"}
        ) as response:
            assert (await response.json())["result"]["text"] == "json"
        async with http.get(f"{api.url}/bot{api.token}/sendMessage?chat_id={CHAT}&text=query") as response:
            assert (await response.json())["result"]["text"] == "query"
    assert [m.text for m in api.messages(CHAT)] == ["json", "query"]


async def test_stop_and_start_on_the_same_port(api: BotApiServer, bot: Bot) -> None:
    await bot.send_message(CHAT, "before")
    url = api.url
    await api.stop()
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(CHAT, "while down")
    await api.start()
    assert api.url == url
    await bot.send_message(CHAT, "after")
    assert [m.text for m in api.messages(CHAT)] == ["before", "after"]


async def test_stop_answers_a_pending_long_poll(api: BotApiServer, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await api.next_call("getUpdates")
    await asyncio.wait_for(api.stop(), 2)
    assert await asyncio.wait_for(poll, 2) == []


async def test_next_message_and_no_message(api: BotApiServer, bot: Bot) -> None:
    async def send_later() -> None:
        await asyncio.sleep(0.05)
        await bot.send_message(CHAT, "later")

    task = asyncio.create_task(send_later())
    assert (await api.next_message(CHAT, timeout=2)).text == "later"
    await task
    await api.no_message(CHAT, within=0.05)

    await bot.send_message(OTHER, "wrong chat")
    api.fail_next("sendMessage", 1, status=403, description="Forbidden: bot was blocked by the user")
    with contextlib.suppress(TelegramForbiddenError):
        await bot.send_message(CHAT, "blocked")
    with pytest.raises(AssertionError) as caught:
        await api.next_message(CHAT, timeout=0.05)
    report = str(caught.value)
    assert "#1 sendMessage: 'later'" in report
    assert f"other chats with messages: [{OTHER}]" in report
    assert "403 Forbidden: bot was blocked by the user" in report

    await bot.send_message(CHAT, "surprise")
    with pytest.raises(AssertionError, match="surprise"):
        await api.no_message(CHAT, within=0.05)


async def test_enforced_flood_limits() -> None:
    async for api in running_bot_api(enforce_limits=True, chat_interval=0.3, per_second=3):
        bot = make_bot(api)
        try:
            await bot.send_message(CHAT, "one")
            with pytest.raises(TelegramRetryAfter) as caught:
                await bot.send_message(CHAT, "too soon")
            assert caught.value.retry_after == 1
            await asyncio.sleep(0.3)
            await bot.send_message(CHAT, "two")
            times = api.send_times(CHAT)
            assert len(times) == 2 and times[1] - times[0] >= 0.3
            await bot.send_message(OTHER, "third send within a second")
            with pytest.raises(TelegramRetryAfter):
                await bot.send_message(OTHER + 1, "fourth send within a second")
            assert [m.text for m in api.messages(CHAT)] == ["one", "two"]
        finally:
            await bot.session.close()


async def test_webhook_set_info_delete_and_conflict(api: BotApiServer, bot: Bot) -> None:
    assert (await bot.get_webhook_info()).url == ""
    await bot.set_webhook(
        "https://crm.example/telegram", secret_token="s3cret_-X", allowed_updates=["message"]
    )
    assert api.webhook is not None
    assert api.webhook["url"] == "https://crm.example/telegram"
    assert api.webhook["secret_token"] == "s3cret_-X"
    assert api.webhook["allowed_updates"] == ["message"]
    info = await bot.get_webhook_info()
    assert info.url == "https://crm.example/telegram" and info.allowed_updates == ["message"]
    with pytest.raises(TelegramConflictError, match="webhook is active"):
        await bot.get_updates(timeout=0)
    with pytest.raises(TelegramBadRequest, match="secret token"):
        await bot.set_webhook("https://crm.example/telegram", secret_token="not base64=")
    assert await bot.delete_webhook()
    assert api.webhook is None


async def _serve(handler: Any) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/telegram", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site.port}/telegram"


async def test_post_to_webhook_sends_the_secret_header(api: BotApiServer, bot: Bot) -> None:
    seen: list[tuple[str | None, dict[str, Any]]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.json_response({})

    runner, url = await _serve(receive)
    try:
        await bot.set_webhook(url, secret_token="s3cret")
        update = api.user_message(chat_id=CHAT, text="hi")
        assert await api.post_to_webhook(update, secret="s3cret") == 200
        assert await api.post_to_webhook(update, secret=None) == 200
        assert seen == [("s3cret", update), (None, update)]
    finally:
        await runner.cleanup()


async def test_webhook_reply_method_is_executed(api: BotApiServer, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> SendMessage:
        return message.answer(f"echo: {message.text}")

    app = web.Application()
    SimpleRequestHandler(dp, bot, secret_token="s3cret", handle_in_background=False).register(
        app, path="/telegram"
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        await bot.set_webhook(f"http://127.0.0.1:{site.port}/telegram", secret_token="s3cret")
        assert await api.post_to_webhook(api.user_message(chat_id=CHAT, text="ping"), secret="wrong") == 401
        assert await api.post_to_webhook(api.user_message(chat_id=CHAT, text="ping"), secret="s3cret") == 200
        reply = await api.next_message(CHAT, timeout=1)
        assert reply.text == "echo: ping"
        assert api.history[-1].via_webhook_reply
    finally:
        await runner.cleanup()


async def test_post_to_webhook_respects_allowed_updates(api: BotApiServer, bot: Bot) -> None:
    await bot.set_webhook("https://crm.example/telegram", allowed_updates=["message"])
    sent = await bot.send_message(CHAT, "Lead", reply_markup=keyboard(("Take", "take:1")))
    update = api.callback(chat_id=CHAT, message=api.message(CHAT, sent.message_id), data="take:1")
    with pytest.raises(AssertionError, match="would not deliver a 'callback_query'"):
        await api.post_to_webhook(update, secret=None)
