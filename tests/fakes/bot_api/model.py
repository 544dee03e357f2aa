"""What the fake Bot API keeps and answers with: its limits, the messages bots sent, the calls
it received, its errors, and the event that wakes whoever waits for a change."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

Json = dict[str, Any]

DEFAULT_TOKEN = "123456:TEST-TOKEN"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
MAX_UPLOAD = 50 * 1024 * 1024

METHODS = (
    "getMe",
    "sendMessage",
    "editMessageText",
    "editMessageReplyMarkup",
    "answerCallbackQuery",
    "setWebhook",
    "deleteWebhook",
    "getWebhookInfo",
    "setMyCommands",
    "getMyCommands",
    "getUpdates",
    "sendAudio",
    "sendVoice",
    "sendDocument",
    "sendChatAction",
)
_CANONICAL = {name.lower(): name for name in METHODS}
SEND_METHODS = frozenset({"sendMessage", "sendAudio", "sendVoice", "sendDocument"})
_MEDIA_KIND = {"sendAudio": "audio", "sendVoice": "voice", "sendDocument": "document"}

# Parameters whose values aiogram sends JSON-encoded (everything that is not a plain string).
_JSON_PARAMS = frozenset(
    {
        "chat_id",
        "message_id",
        "message_thread_id",
        "reply_to_message_id",
        "offset",
        "limit",
        "timeout",
        "duration",
        "max_connections",
        "cache_time",
        "disable_notification",
        "protect_content",
        "allow_paid_broadcast",
        "allow_sending_without_reply",
        "disable_web_page_preview",
        "disable_content_type_detection",
        "drop_pending_updates",
        "show_alert",
        "reply_markup",
        "reply_parameters",
        "link_preview_options",
        "entities",
        "caption_entities",
        "show_caption_above_media",
        "commands",
        "scope",
        "allowed_updates",
    }
)
_FILE_PARAMS = frozenset({"audio", "voice", "document", "thumbnail", "certificate"})
_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)
# Update types Telegram delivers when allowed_updates is unset or empty.
_NOT_BY_DEFAULT = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
_BUTTON_KINDS = frozenset(
    {
        "url",
        "callback_data",
        "web_app",
        "login_url",
        "switch_inline_query",
        "switch_inline_query_current_chat",
        "switch_inline_query_chosen_chat",
        "copy_text",
        "callback_game",
        "pay",
    }
)
_PATH = re.compile(r"^/bot(?P<token>[^/]+)/(?P<method>[^/]*)$")
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_BOT_COMMAND = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?")
_RETRY_AFTER = re.compile(r"retry after (\d+)")
NOT_MODIFIED = (
    "message is not modified: specified new message content and reply markup are exactly the same "
    "as a current content and reply markup of the message"
)


class SentFile(NamedTuple):
    """An uploaded file: unpacks as ``(name, data)``."""

    name: str
    data: bytes

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def __repr__(self) -> str:
        return f"SentFile(name={self.name!r}, size={self.size})"


@dataclass(eq=False)
class SentMessage:
    """A message the bot sent, kept up to date by later edits.

    ``text``/``caption`` are exactly as sent (markup included); ``plain_text`` and ``entities`` are what
    Telegram shows after parsing ``parse_mode`` (for the current version). ``edits`` holds the texts of
    later ``editMessageText`` calls, oldest first. ``reply_markup`` is the *current* markup as sent by the
    last call that set it (``None`` once an edit dropped it).
    """

    message_id: int
    chat_id: int
    text: str | None
    parse_mode: str | None
    reply_markup: Json | None
    reply_to_message_id: int | None
    method: str
    file: SentFile | None = None
    caption: str | None = None
    edits: list[str] = field(default_factory=list)
    plain_text: str = ""
    entities: list[Json] = field(default_factory=list)
    date: int = 0
    edit_date: int | None = None
    file_id: str | None = None
    media: Json | None = field(default=None, repr=False)
    paid: bool = False  # sent with allow_paid_broadcast (past the free 30 a second)

    @property
    def current_text(self) -> str | None:
        """The text as last set (the latest edit, else the original)."""
        return self.edits[-1] if self.edits else self.text

    @property
    def buttons(self) -> list[Json]:
        """The inline keyboard buttons of the current markup, row by row."""
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or []
        return [button for row in rows for button in row]

    def button_data(self, text: str) -> str:
        """The ``callback_data`` of the inline button labelled ``text``."""
        for button in self.buttons:
            if button.get("text") == text and "callback_data" in button:
                return str(button["callback_data"])
        labels = [b.get("text") for b in self.buttons]
        raise AssertionError(f"message {self.message_id} has no callback button {text!r}; buttons: {labels}")


@dataclass
class ApiCall:
    """One request the server received, with its parsed parameters and how it was answered."""

    method: str
    params: Json
    status: int = 0
    description: str | None = None
    via_webhook_reply: bool = False
    at: float = field(default_factory=time.monotonic)  # when it arrived (``time.monotonic()``)


class BotApiError(Exception):
    """An error answer: ``{"ok": false, "error_code": status, "description": ...}``."""

    def __init__(self, status: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def body(self) -> Json:
        """The JSON Telegram answers with."""
        body: Json = {"ok": False, "error_code": self.status, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(description: str) -> BotApiError:
    return BotApiError(400, f"Bad Request: {description}")


PAID_PER_SECOND = 1000  # Telegram's cap for paid broadcasts (allow_paid_broadcast)


def _too_many(retry_after: int) -> BotApiError:
    return BotApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


@dataclass
class _Described:
    result: Any
    description: str


@dataclass
class _Failure:
    status: int
    description: str
    retry_after: int | None
    remaining: int
    chat_id: int | None


class _Changes:
    """Wakes everyone waiting for the server's state to change."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool], seconds: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._event.wait(), remaining)
        return True
