"""A fake Telegram Bot API server on loopback, for tests that run the real aiogram bot against it.

It speaks the Bot API's HTTP protocol (``POST {url}/bot{token}/{method}`` with a query string, a form,
a multipart body or JSON) and answers with Bot API JSON: ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code": N, "description": "...", "parameters": {...}}`` with the HTTP status Telegram
uses. It checks what the real server checks where a bot most often gets it wrong: HTML / MarkdownV2 /
Markdown entity parsing (``can't parse entities``), empty or too long texts and captions, callback data over
64 bytes, replies to unknown messages, "message is not modified" edits, editing text without ``reply_markup``
(Telegram then removes the inline keyboard), callback queries answered twice, getUpdates while a webhook is
set or from two pollers at once (409), and, when ``enforce_limits`` is on, the flood limits (429; a
send with ``allow_paid_broadcast`` is held to 1000 a second overall instead of 30).

It does not detect URLs, mentions or hashtags in texts, does not deliver updates to the webhook by itself
(tests call :meth:`BotApiServer.post_to_webhook`) and serves no file downloads.

The package, by concern: ``model`` (what it keeps: messages, calls, errors), ``html`` and ``markdown``
(parse modes and keyboards), ``core`` (state, HTTP, shared helpers), ``methods`` (sending and editing),
``updates`` (user updates, getUpdates, the webhook), ``server`` (lifecycle and what tests look at).
"""

from tests.fakes.bot_api.model import ApiCall, BotApiError, SentFile, SentMessage
from tests.fakes.bot_api.server import BotApiServer, running_bot_api

__all__ = ["ApiCall", "BotApiError", "BotApiServer", "SentFile", "SentMessage", "running_bot_api"]
