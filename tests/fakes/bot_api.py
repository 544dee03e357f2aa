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
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import mimetypes
import re
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Self

import aiohttp
from aiohttp import web

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


# --------------------------------------------------------------------------------------------- entities


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


class _Text:
    """Parsed text being built, with the current offset in UTF-16 code units (as entities count)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0

    def add(self, chunk: str) -> None:
        self.parts.append(chunk)
        self.pos += _utf16_len(chunk)

    def value(self) -> str:
        return "".join(self.parts)


@dataclass
class _Open:
    kind: str
    tag: str
    offset: int
    byte_offset: int
    extra: Json = field(default_factory=dict)


def _byte_offset(text: str, index: int) -> int:
    return len(text[:index].encode())


def _entity(kind: str, offset: int, end: int, extra: Json | None = None) -> Json | None:
    if end <= offset:
        return None
    entity: Json = {"type": kind, "offset": offset, "length": end - offset}
    entity.update(extra or {})
    return entity


_HTML_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "span": "spoiler",
    "tg-spoiler": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_HTML_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_HTML_CHAR_REF = re.compile(r"&(?:#([0-9]{1,8})|#[xX]([0-9a-fA-F]{1,8})|([a-zA-Z]*));?")


def _html_entity(text: str, i: int) -> tuple[str, int] | None:
    """Decode an HTML entity at ``text[i] == "&"`` the way Telegram does (only lt, gt, amp, quot, &#N;)."""
    match = _HTML_CHAR_REF.match(text, i)
    if match is None:
        return None
    decimal, hexadecimal, name = match.groups()
    if decimal or hexadecimal:
        code = int(decimal) if decimal else int(hexadecimal, 16)
        if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
            return None
        return chr(code), match.end()
    if name in _HTML_NAMED:
        return _HTML_NAMED[name], match.end()
    return None


def _decode_html_entities(text: str) -> str:
    parts: list[str] = []
    i = 0
    while (amp := text.find("&", i)) >= 0:
        parts.append(text[i:amp])
        decoded = _html_entity(text, amp)
        parts.append(decoded[0] if decoded else "&")
        i = decoded[1] if decoded else amp + 1
    parts.append(text[i:])
    return "".join(parts)


def parse_html(text: str) -> tuple[str, list[Json]]:
    """Telegram's HTML parse mode: the plain text and its entities, or 400 ``can't parse entities``."""
    out = _Text()
    stack: list[_Open] = []
    entities: list[Json] = []
    i, n = 0, len(text)

    def fail(message: str) -> BotApiError:
        return _bad(f"can't parse entities: {message}")

    while i < n:
        c = text[i]
        if c == "&":
            decoded = _html_entity(text, i)
            if decoded is None:
                out.add("&")
                i += 1
            else:
                out.add(decoded[0])
                i = decoded[1]
            continue
        if c != "<":
            j = i
            while j < n and text[j] not in "<&":
                j += 1
            out.add(text[i:j])
            i = j
            continue
        begin = i
        byte_offset = _byte_offset(text, begin)
        i += 1
        if i < n and text[i] == "/":
            i += 1
            j = i
            while j < n and not text[j].isspace() and text[j] != ">":
                j += 1
            end_name = text[i:j].lower()
            while j < n and text[j].isspace():
                j += 1
            if j >= n or text[j] != ">":
                raise fail(f"Unclosed end tag at byte offset {byte_offset}")
            i = j + 1
            if not stack:
                raise fail(f"Unexpected end tag at byte offset {byte_offset}")
            opened = stack.pop()
            if end_name != opened.tag:
                raise fail(
                    f'Unmatched end tag at byte offset {byte_offset}, expected "</{opened.tag}>", '
                    f'found "</{end_name}>"'
                )
            _close_html(opened, out.pos, stack, entities)
            continue
        j = i
        while j < n and not text[j].isspace() and text[j] != ">":
            j += 1
        tag = text[i:j].lower()
        if tag not in _HTML_TAGS:
            raise fail(f'Unsupported start tag "{tag}" at byte offset {byte_offset}')
        attributes: dict[str, str] = {}
        i = j
        while True:
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise fail(f"Unclosed start tag at byte offset {byte_offset}")
            if text[i] == ">":
                i += 1
                break
            j = i
            while j < n and not text[j].isspace() and text[j] not in "=>":
                j += 1
            name = text[i:j].lower()
            if not name:
                raise fail(f'Empty attribute name in the tag "{tag}" at byte offset {byte_offset}')
            i = j
            while i < n and text[i].isspace():
                i += 1
            if i >= n or text[i] != "=":
                attributes[name] = ""
                continue
            i += 1
            while i < n and text[i].isspace():
                i += 1
            if i >= n:
                raise fail(f"Unclosed start tag at byte offset {byte_offset}")
            if text[i] in "\"'":
                quote = text[i]
                end = text.find(quote, i + 1)
                if end < 0:
                    raise fail(f"Unclosed start tag at byte offset {byte_offset}")
                raw_value = text[i + 1 : end]
                i = end + 1
            else:
                j = i
                while j < n and (text[j].isalnum() or text[j] in ".-_"):
                    j += 1
                raw_value = text[i:j]
                i = j
            attributes[name] = _decode_html_entities(raw_value)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {byte_offset}')
        stack.append(_Open(_HTML_TAGS[tag], tag, out.pos, byte_offset, dict(attributes)))
    if stack:
        raise fail(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return out.value(), entities


def _close_html(opened: _Open, end: int, stack: list[_Open], entities: list[Json]) -> None:
    attrs = opened.extra
    extra: Json = {}
    kind = opened.kind
    if kind == "text_link":
        url = attrs.get("href", "")
        if not url:
            return
        user = re.fullmatch(r"tg://user\?id=(\d+)", url)
        if user:
            kind = "text_mention"
            extra["user"] = {"id": int(user.group(1)), "is_bot": False, "first_name": ""}
        else:
            extra["url"] = url
    elif kind == "custom_emoji":
        extra["custom_emoji_id"] = attrs.get("emoji-id", "")
    elif kind == "blockquote" and "expandable" in attrs:
        kind = "expandable_blockquote"
    elif kind == "code" and (pre := next((o for o in reversed(stack) if o.kind == "pre"), None)):
        language = attrs.get("class", "")
        if language.startswith("language-"):
            pre.extra["language"] = language.removeprefix("language-")
        return
    elif kind == "pre" and attrs.get("language"):
        extra["language"] = attrs["language"]
    entity = _entity(kind, opened.offset, end, extra)
    if entity:
        entities.append(entity)


_MDV2_RESERVED = frozenset("_*[]()~`>#+-=|{}.!")
_MDV2_NAMES = {
    "bold": "Bold",
    "italic": "Italic",
    "underline": "Underline",
    "strikethrough": "Strikethrough",
    "spoiler": "Spoiler",
    "code": "Code",
    "pre": "Pre",
    "text_link": "TextUrl",
    "custom_emoji": "CustomEmoji",
}


def parse_markdown_v2(text: str) -> tuple[str, list[Json]]:
    """Telegram's MarkdownV2 parse mode (blockquotes only as whole ``>`` lines)."""
    out = _Text()
    stack: list[_Open] = []
    entities: list[Json] = []
    quote: int | None = None
    i, n = 0, len(text)

    def fail(message: str) -> BotApiError:
        return _bad(f"can't parse entities: {message}")

    def reserved(char: str) -> BotApiError:
        return fail(f"Character '{char}' is reserved and must be escaped with the preceding '\\'")

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        top = stack[-1] if stack else None
        if c == "\\" and nxt and 0 < ord(nxt) <= 126:
            out.add(nxt)
            i += 2
            continue
        in_code = top is not None and top.kind in ("code", "pre")
        at_line_start = i == 0 or text[i - 1] == "\n"
        if not in_code and at_line_start:
            if c == ">":
                if quote is None:
                    quote = out.pos
                i += 1
                continue
            if quote is not None:
                entity = _entity("blockquote", quote, out.pos - 1)
                if entity:
                    entities.append(entity)
                quote = None
        if c not in _MDV2_RESERVED or (in_code and c != "`"):
            out.add(c)
            i += 1
            continue
        ends = top is not None and (
            (top.kind == "bold" and c == "*")
            or (top.kind == "italic" and c == "_" and nxt != "_")
            or (top.kind == "underline" and c == "_" and nxt == "_")
            or (top.kind == "strikethrough" and c == "~")
            or (top.kind == "spoiler" and c == "|" and nxt == "|")
            or (top.kind == "code" and c == "`")
            or (top.kind == "pre" and text.startswith("```", i))
            or (top.kind in ("text_link", "custom_emoji") and c == "]")
        )
        if ends and top is not None:
            stack.pop()
            i += {"underline": 2, "spoiler": 2, "pre": 3}.get(top.kind, 1)
            extra = dict(top.extra)
            if top.kind in ("text_link", "custom_emoji"):
                if i < n and text[i] == "(":
                    url_chars: list[str] = []
                    i += 1
                    while i < n and text[i] != ")":
                        if text[i] == "\\" and i + 1 < n:
                            i += 1
                        url_chars.append(text[i])
                        i += 1
                    if i >= n:
                        raise fail(f"Can't find end of a url at byte offset {_byte_offset(text, i)}")
                    i += 1
                    url = "".join(url_chars)
                else:
                    url = ""
                if not url:
                    continue
                if top.kind == "custom_emoji":
                    extra["custom_emoji_id"] = url.rsplit("id=", 1)[-1]
                else:
                    extra["url"] = url
            entity = _entity(top.kind, top.offset, out.pos, extra)
            if entity:
                entities.append(entity)
            continue
        begin = i
        extra = {}
        if c == "_":
            kind, i = ("underline", i + 2) if nxt == "_" else ("italic", i + 1)
        elif c == "*":
            kind, i = "bold", i + 1
        elif c == "~":
            kind, i = "strikethrough", i + 1
        elif c == "|" and nxt == "|":
            kind, i = "spoiler", i + 2
        elif c == "[":
            kind, i = "text_link", i + 1
        elif c == "!" and nxt == "[":
            kind, i = "custom_emoji", i + 2
        elif c == "`" and text.startswith("```", i):
            kind, i = "pre", i + 3
            newline = text.find("\n", i)
            if newline >= 0:
                language = text[i:newline]
                if language and not any(ch.isspace() for ch in language):
                    extra["language"] = language
                i = newline + 1 if language == "" or "language" in extra else i
        elif c == "`" and not in_code:
            kind, i = "code", i + 1
        else:
            raise reserved(c)
        stack.append(_Open(kind, kind, out.pos, _byte_offset(text, begin), extra))
    if stack:
        opened = stack[-1]
        raise fail(f"Can't find end of {_MDV2_NAMES[opened.kind]} entity at byte offset {opened.byte_offset}")
    if quote is not None:
        entity = _entity("blockquote", quote, out.pos)
        if entity:
            entities.append(entity)
    return out.value(), entities


def parse_markdown(text: str) -> tuple[str, list[Json]]:
    """Telegram's legacy Markdown parse mode: *bold*, _italic_, `code`, ```pre```, [text](url)."""
    out = _Text()
    entities: list[Json] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.add(text[i + 1])
            i += 2
            continue
        if c not in "_*`[":
            out.add(c)
            i += 1
            continue
        begin = i
        problem = _bad(
            f"can't parse entities: Can't find end of the entity starting at byte offset "
            f"{_byte_offset(text, begin)}"
        )
        start = out.pos
        if c == "[":
            close = text.find("]", i + 1)
            if close < 0 or not text.startswith("(", close + 1) or text.find(")", close + 2) < 0:
                raise problem
            end_url = text.find(")", close + 2)
            out.add(text[i + 1 : close])
            entity = _entity("text_link", start, out.pos, {"url": text[close + 2 : end_url]})
            i = end_url + 1
        elif text.startswith("```", i):
            close = text.find("```", i + 3)
            if close < 0:
                raise problem
            body = text[i + 3 : close]
            extra: Json = {}
            first, sep, rest = body.partition("\n")
            if sep and first and not any(ch.isspace() for ch in first):
                extra["language"], body = first, rest
            out.add(body)
            entity = _entity("pre", start, out.pos, extra)
            i = close + 3
        else:
            close = text.find(c, i + 1)
            if close < 0:
                raise problem
            out.add(text[i + 1 : close])
            entity = _entity({"*": "bold", "_": "italic", "`": "code"}[c], start, out.pos)
            i = close + 1
        if entity:
            entities.append(entity)
    return out.value(), entities


def format_text(text: str, parse_mode: str | None, entities: list[Json] | None) -> tuple[str, list[Json]]:
    """What Telegram makes of a text: parsed, stripped of surrounding whitespace, entities sorted."""
    if entities is not None:
        plain, found = text, [dict(e) for e in entities]
    elif not parse_mode:
        plain, found = text, []
    else:
        mode = parse_mode.lower()
        if mode == "html":
            plain, found = parse_html(text)
        elif mode == "markdownv2":
            plain, found = parse_markdown_v2(text)
        elif mode == "markdown":
            plain, found = parse_markdown(text)
        else:
            raise _bad("unsupported parse_mode")
    stripped = plain.strip()
    if stripped != plain:
        lead = _utf16_len(plain[: len(plain) - len(plain.lstrip())])
        size = _utf16_len(stripped)
        kept = []
        for entity in found:
            start = max(entity["offset"] - lead, 0)
            end = min(entity["offset"] + entity["length"] - lead, size)
            if end > start:
                kept.append({**entity, "offset": start, "length": end - start})
        plain, found = stripped, kept
    found.sort(key=lambda e: (e["offset"], -e["length"]))
    return plain, found


def inline_keyboard(markup: Any) -> Json | None:
    """The markup as Telegram echoes it in a Message: only non-empty inline keyboards; 400 when invalid."""
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise _bad("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" not in markup:
        return None
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad("can't parse inline keyboard button: InlineKeyboardButton must be an Object")
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
            if not _BUTTON_KINDS & button.keys():
                raise _bad(
                    "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and len(str(data).encode()) > MAX_CALLBACK_DATA:
                raise _bad("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and not re.match(r"^((https?|tg)://)?[^\s/:]+\S*$", str(url)):
                raise _bad(f"inline keyboard button URL '{url}' is invalid: Wrong HTTP URL")
    kept = [row for row in rows if row]
    return {"inline_keyboard": kept} if kept else None


def _update_type(update: Json) -> str | None:
    return next((key for key in update if key != "update_id"), None)


# ------------------------------------------------------------------------------------------------ server


class BotApiServer:
    """The fake Bot API. Start it, point the bot at :attr:`url`, then look at what the bot did."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        username: str = "crm_test_bot",
        first_name: str = "CRM Test Bot",
        enforce_limits: bool = False,
        chat_interval: float = 1.0,
        per_second: int = 30,
        port: int = 0,
    ) -> None:
        self.token = token
        self.bot_user: Json = {
            "id": int(token.split(":", 1)[0]),
            "is_bot": True,
            "first_name": first_name,
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        self.enforce_limits = enforce_limits
        self.chat_interval = chat_interval
        self.per_second = per_second
        self.webhook: Json | None = None
        self.allowed_updates: list[str] | None = None
        self.history: list[ApiCall] = []
        self._port = port
        self._runner: web.AppRunner | None = None
        self._stopping = False
        self._changes = _Changes()
        self._chats: dict[int, list[SentMessage]] = defaultdict(list)
        self._by_id: dict[tuple[int, int], SentMessage] = {}
        self._user_messages: dict[tuple[int, int], Json] = {}
        self._last_message_id: dict[int, int] = defaultdict(int)
        self._names: dict[int, str] = {}
        self._cursors: dict[int, int] = defaultdict(int)
        self._call_cursors: dict[str, int] = defaultdict(int)
        self._updates: list[Json] = []
        self._last_update_id = 0
        self._poll_generation = 0
        self._poll_abort = ""
        self._callbacks_open: set[str] = set()
        self._callbacks_seen: set[str] = set()
        self._callback_ids = itertools.count(4_382_000_000_000_000_001)
        self._failures: dict[str, list[_Failure]] = defaultdict(list)
        self._failed_chats: dict[int, BotApiError] = {}
        self._send_times: dict[int, list[float]] = defaultdict(list)
        self._recent_sends: deque[float] = deque()  # free sends of the last second
        self._recent_all: deque[float] = deque()  # every send of the last second, paid or not
        self._files: dict[str, tuple[SentFile, Json]] = {}
        self._file_numbers = itertools.count(1)
        self._commands: dict[tuple[str, str], list[Json]] = {}

    # ---------------------------------------------------------------------------------------- lifecycle

    @property
    def url(self) -> str:
        """Base URL for ``TelegramAPIServer.from_base`` / ``CRM_TELEGRAM_API_URL``."""
        if not self._port:
            raise RuntimeError("BotApiServer was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        """The TCP port (0 before the first start)."""
        return self._port

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port after a stop)."""
        if self._runner is not None:
            return
        self._stopping = False
        app = web.Application(client_max_size=MAX_UPLOAD + 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self._port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._port = site.port
        self._runner = runner

    async def stop(self) -> None:
        """Stop listening (pending long polls are answered first); all recorded state is kept."""
        if self._runner is None:
            return
        self._stopping = True
        self._changes.notify()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ----------------------------------------------------------------------------------------- messages

    def messages(self, chat_id: int) -> list[SentMessage]:
        """Everything the bot sent to a chat, in order (edits update the messages in place)."""
        return list(self._chats.get(chat_id, []))

    def message(self, chat_id: int, message_id: int) -> SentMessage:
        """One sent message by id."""
        try:
            return self._by_id[(chat_id, message_id)]
        except KeyError:
            raise AssertionError(f"the bot sent no message {message_id} to chat {chat_id}") from None

    async def next_message(self, chat_id: int, timeout: float = 5.0) -> SentMessage:
        """The next message to the chat not returned yet (waiting up to ``timeout`` seconds)."""
        arrived = await self._changes.wait_until(
            lambda: len(self._chats.get(chat_id, [])) > self._cursors[chat_id], timeout
        )
        if not arrived:
            raise AssertionError(
                f"no new message to chat {chat_id} within {timeout}s\n{self.describe(chat_id)}"
            )
        message = self._chats[chat_id][self._cursors[chat_id]]
        self._cursors[chat_id] += 1
        return message

    async def no_message(self, chat_id: int, within: float = 0.5) -> None:
        """Assert the chat gets no message beyond those already returned by :meth:`next_message`."""
        arrived = await self._changes.wait_until(
            lambda: len(self._chats.get(chat_id, [])) > self._cursors[chat_id], within
        )
        if arrived:
            extra = self._chats[chat_id][self._cursors[chat_id] :]
            raise AssertionError(f"unexpected message(s) to chat {chat_id}: {extra}")

    def send_times(self, chat_id: int) -> list[float]:
        """``time.monotonic()`` of every accepted send to the chat."""
        return list(self._send_times.get(chat_id, []))

    def describe(self, chat_id: int | None = None) -> str:
        """A readable summary of a chat and of recent failed calls, for assertion messages."""
        lines: list[str] = []
        if chat_id is not None:
            sent = self._chats.get(chat_id, [])
            lines.append(
                f"chat {chat_id} has {len(sent)} message(s), {self._cursors[chat_id]} already taken:"
            )
            lines.extend(
                f"  #{m.message_id} {m.method}: {(m.current_text or m.caption or '')[:120]!r}" for m in sent
            )
        others = sorted(c for c, sent in self._chats.items() if sent and c != chat_id)
        if others:
            lines.append(f"other chats with messages: {others}")
        failed = [c for c in self.history if c.status not in (0, 200)][-10:]
        if failed:
            lines.append("recent failed calls:")
            lines.extend(
                f"  {c.method} chat_id={c.params.get('chat_id')!r} -> {c.status} {c.description}"
                for c in failed
            )
        return "\n".join(lines)

    # ------------------------------------------------------------------------------------------- calls

    def calls(self, method: str) -> list[Json]:
        """Parameters of every request of a method (case-insensitive), failed ones included."""
        return [c.params for c in self.history if c.method.lower() == method.lower()]

    async def next_call(self, method: str, timeout: float = 5.0) -> Json:
        """The next request of a method not returned yet (a cursor per method)."""
        key = method.lower()
        arrived = await self._changes.wait_until(
            lambda: len(self.calls(key)) > self._call_cursors[key], timeout
        )
        if not arrived:
            raise AssertionError(f"no {method} call within {timeout}s\n{self.describe()}")
        params = self.calls(key)[self._call_cursors[key]]
        self._call_cursors[key] += 1
        return params

    # --------------------------------------------------------------------------------- failure injection

    def fail_next(
        self,
        method: str,
        times: int,
        *,
        status: int,
        description: str,
        retry_after: int | None = None,
        chat_id: int | None = None,
    ) -> None:
        """Answer the next ``times`` requests of ``method`` (to ``chat_id`` if given) with this error."""
        if retry_after is None and status == 429 and (match := _RETRY_AFTER.search(description)):
            retry_after = int(match.group(1))
        self._failures[method.lower()].append(_Failure(status, description, retry_after, times, chat_id))

    def fail_chat(self, chat_id: int, *, status: int, description: str) -> None:
        """Answer every request for this chat with this error until :meth:`heal_chat`."""
        self._failed_chats[chat_id] = BotApiError(status, description)

    def heal_chat(self, chat_id: int) -> None:
        """Undo :meth:`fail_chat`."""
        self._failed_chats.pop(chat_id, None)

    # ------------------------------------------------------------------------------------------ updates

    def push_update(self, update: Json) -> None:
        """Queue an update for getUpdates (``update_id`` assigned if missing)."""
        self._ingest(update)
        self._updates.append(update)
        self._updates.sort(key=lambda u: int(u["update_id"]))
        self._changes.notify()

    def pending_updates(self) -> list[Json]:
        """Updates queued and not yet confirmed by an offset."""
        return list(self._updates)

    def user_message(
        self,
        *,
        chat_id: int,
        text: str,
        user_id: int | None = None,
        first_name: str = "Ada",
        reply_to: SentMessage | None = None,
        contact: Json | None = None,
    ) -> Json:
        """An Update with a message from a user in a private chat, as Telegram sends it."""
        self._names[chat_id] = first_name
        user = self._user(chat_id, user_id, first_name)
        message: Json = {
            "message_id": self._next_message_id(chat_id),
            "from": user,
            "chat": self._chat_json(chat_id),
            "date": int(time.time()),
        }
        if reply_to is not None:
            message["reply_to_message"] = self._message_json(
                self.message(reply_to.chat_id, reply_to.message_id)
            )
        if text:
            message["text"] = text
            commands = [
                {
                    "type": "bot_command",
                    "offset": _utf16_len(text[: m.start()]),
                    "length": _utf16_len(m.group()),
                }
                for m in _BOT_COMMAND.finditer(text)
            ]
            if commands:
                message["entities"] = commands
        if contact is not None:
            message["contact"] = {"first_name": first_name, **contact}
        self._user_messages[(chat_id, message["message_id"])] = message
        return {"update_id": self._next_update_id(), "message": message}

    def callback(
        self,
        *,
        chat_id: int,
        message: SentMessage,
        data: str,
        user_id: int | None = None,
        require_button: bool = True,
    ) -> Json:
        """An Update with a callback query: the user pressed a button of a bot message (its current state).

        Unless ``require_button=False``, ``data`` must be the callback_data of a button the message has now.
        """
        current = self.message(message.chat_id, message.message_id)
        if require_button and data not in [b.get("callback_data") for b in current.buttons]:
            raise AssertionError(
                f"message {current.message_id} in chat {chat_id} has no button with callback_data {data!r}; "
                f"buttons: {current.buttons}"
            )
        query_id = str(next(self._callback_ids))
        self._callbacks_open.add(query_id)
        self._callbacks_seen.add(query_id)
        query: Json = {
            "id": query_id,
            "from": self._user(chat_id, user_id, self._names.get(chat_id, "Ada")),
            "message": self._message_json(current),
            "chat_instance": str(-7_000_000_000_000_000 - chat_id),
            "data": data,
        }
        return {"update_id": self._next_update_id(), "callback_query": query}

    async def post_to_webhook(self, update: Json, *, secret: str | None) -> int:
        """POST an update to the webhook as Telegram does (running a method the bot answers with).

        Returns the HTTP status the bot's webhook answered with.
        """
        if self.webhook is None:
            raise AssertionError("the bot has not set a webhook")
        self._ingest(update)
        kind = _update_type(update)
        if kind is not None and not self._allowed(kind):
            raise AssertionError(
                f"Telegram would not deliver a {kind!r} update: allowed_updates={self.allowed_updates}"
            )
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.webhook["url"], data=json.dumps(update), headers=headers) as response,
        ):
            if 200 <= response.status < 300:
                await self._run_webhook_reply(response)
            return response.status

    async def _run_webhook_reply(self, response: aiohttp.ClientResponse) -> None:
        raw: Json = {}
        files: dict[str, SentFile] = {}
        if response.content_type == "application/json":
            body = await response.json()
            if isinstance(body, dict):
                raw = body
        elif response.content_type.startswith("multipart/"):
            reader = aiohttp.MultipartReader(response.headers, response.content)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or part.name is None:
                    continue
                if part.filename is not None:
                    files[part.name] = SentFile(part.filename, bytes(await part.read(decode=True)))
                else:
                    raw[part.name] = await part.text()
        method = raw.pop("method", None)
        if isinstance(method, str):
            await self._call(method, raw, files, via_webhook_reply=True)

    # ------------------------------------------------------------------------------------------ commands

    def my_commands(self, scope: Json | None = None, language_code: str = "") -> list[Json] | None:
        """The commands setMyCommands set for a scope and language (``None`` if never set)."""
        return self._commands.get((self._scope_key(scope), language_code))

    # -------------------------------------------------------------------------------------------- HTTP

    async def _handle(self, request: web.Request) -> web.Response:
        match = _PATH.match(request.path)
        if match is None:
            return web.json_response(BotApiError(404, "Not Found").body(), status=404)
        if match["token"] != self.token:
            return web.json_response(BotApiError(401, "Unauthorized").body(), status=401)
        try:
            raw, files = await self._read_params(request)
        except BotApiError as error:
            return web.json_response(error.body(), status=error.status)
        status, body = await self._call(match["method"], raw, files)
        return web.json_response(body, status=status)

    async def _read_params(self, request: web.Request) -> tuple[Json, dict[str, SentFile]]:
        raw: Json = dict(request.query)
        files: dict[str, SentFile] = {}
        if not request.can_read_body:
            return raw, files
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise _bad("can't parse JSON object") from None
            if isinstance(body, dict):
                raw.update(body)
            return raw, files
        try:
            form = await request.post()
        except web.HTTPRequestEntityTooLarge:
            raise BotApiError(413, "Request Entity Too Large") from None
        for key, value in form.items():
            if isinstance(value, web.FileField):
                files[key] = SentFile(value.filename, value.file.read())
            elif isinstance(value, bytes | bytearray):
                raw[key] = bytes(value).decode()
            else:
                raw[key] = value
        return raw, files

    async def _call(
        self, method: str, raw: Json, files: dict[str, SentFile], *, via_webhook_reply: bool = False
    ) -> tuple[int, Json]:
        canonical = _CANONICAL.get(method.lower())
        params = self._decode(raw, files)
        call = ApiCall(canonical or method, params, via_webhook_reply=via_webhook_reply)
        self.history.append(call)
        try:
            if canonical is None:
                raise BotApiError(404, "Not Found: method not found")
            self._inject_failure(canonical, params)
            handler: Callable[[Json], Any] = getattr(self, f"_m_{canonical}")
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except BotApiError as error:
            call.status, call.description = error.status, error.description
            self._changes.notify()
            return error.status, error.body()
        call.status = 200
        self._changes.notify()
        if isinstance(result, _Described):
            return 200, {"ok": True, "result": result.result, "description": result.description}
        return 200, {"ok": True, "result": result}

    @staticmethod
    def _decode(raw: Json, files: dict[str, SentFile]) -> Json:
        params: Json = {}
        for key, value in raw.items():
            if key in _JSON_PARAMS and isinstance(value, str):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    params[key] = value
            else:
                params[key] = value
        used: set[str] = set()
        for key in _FILE_PARAMS:
            value = params.get(key)
            if isinstance(value, str) and value.startswith("attach://") and value[9:] in files:
                params[key] = files[value[9:]]
                used.add(value[9:])
        for key, file in files.items():
            if key not in used:
                params[key] = file
        return params

    def _inject_failure(self, method: str, params: Json) -> None:
        chat_id = params.get("chat_id")
        for failure in self._failures.get(method.lower(), []):
            if failure.remaining > 0 and failure.chat_id in (None, chat_id):
                failure.remaining -= 1
                raise BotApiError(failure.status, failure.description, retry_after=failure.retry_after)
        if isinstance(chat_id, int) and chat_id in self._failed_chats:
            raise self._failed_chats[chat_id]

    # -------------------------------------------------------------------------------------- the methods

    def _m_getMe(self, params: Json) -> Json:
        return dict(self.bot_user)

    def _m_sendMessage(self, params: Json) -> Json:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _bad("message text is empty")
        plain, entities = format_text(text, params.get("parse_mode"), self._entities(params, "entities"))
        if not plain:
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        markup = params.get("reply_markup")
        inline_keyboard(markup)
        reply_to = self._reply_to(chat_id, params)
        paid = self._admit_send(chat_id, params)
        sent = SentMessage(
            message_id=self._next_message_id(chat_id),
            chat_id=chat_id,
            text=text,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
            reply_to_message_id=reply_to,
            method="sendMessage",
            plain_text=plain,
            entities=entities,
            date=int(time.time()),
            paid=paid,
        )
        return self._record(sent)

    def _m_sendAudio(self, params: Json) -> Json:
        return self._send_media("sendAudio", params)

    def _m_sendVoice(self, params: Json) -> Json:
        return self._send_media("sendVoice", params)

    def _m_sendDocument(self, params: Json) -> Json:
        return self._send_media("sendDocument", params)

    def _send_media(self, method: str, params: Json) -> Json:
        kind = _MEDIA_KIND[method]
        chat_id = self._chat_id(params)
        file, media = self._resolve_file(kind, params.get(kind))
        caption = params.get("caption")
        plain: str = ""
        entities: list[Json] = []
        if isinstance(caption, str) and caption:
            plain, entities = format_text(
                caption, params.get("parse_mode"), self._entities(params, "caption_entities")
            )
            if len(plain) > MAX_CAPTION:
                raise _bad("message caption is too long")
        markup = params.get("reply_markup")
        inline_keyboard(markup)
        reply_to = self._reply_to(chat_id, params)
        if kind in ("audio", "voice"):
            media["duration"] = int(params.get("duration") or media.get("duration") or 0)
        for key in ("performer", "title"):
            if kind == "audio" and isinstance(params.get(key), str):
                media[key] = params[key]
        paid = self._admit_send(chat_id, params)
        sent = SentMessage(
            message_id=self._next_message_id(chat_id),
            chat_id=chat_id,
            text=None,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
            reply_to_message_id=reply_to,
            method=method,
            file=file,
            caption=caption if isinstance(caption, str) else None,
            plain_text=plain,
            entities=entities,
            date=int(time.time()),
            file_id=media["file_id"],
            media=media,
            paid=paid,
        )
        return self._record(sent)

    def _resolve_file(self, kind: str, value: Any) -> tuple[SentFile | None, Json]:
        if isinstance(value, SentFile):
            if not value.data:
                raise _bad("file must be non-empty")
            if value.size > MAX_UPLOAD:
                raise BotApiError(413, "Request Entity Too Large")
            number = next(self._file_numbers)
            media: Json = {
                "file_id": f"BQACAgIAAxkDAAI{number:06d}{kind.upper()}",
                "file_unique_id": f"AgAD{number:06d}",
                "file_size": value.size,
            }
            if kind != "voice":
                media["file_name"] = value.name
            guessed = mimetypes.guess_type(value.name)[0]
            media["mime_type"] = guessed or ("audio/ogg" if kind == "voice" else "application/octet-stream")
            self._files[media["file_id"]] = (value, media)
            return value, dict(media)
        if isinstance(value, str) and value:
            if value in self._files:
                known_file, known_media = self._files[value]
                return known_file, dict(known_media)
            if value.startswith(("http://", "https://")):
                number = next(self._file_numbers)
                return None, {
                    "file_id": f"BQACAgIAAxkBAAI{number:06d}URL",
                    "file_unique_id": f"AgAE{number:06d}",
                }
            raise _bad("wrong file identifier/HTTP URL specified")
        raise _bad(f"there is no {kind} in the request")

    def _m_editMessageText(self, params: Json) -> Json | bool:
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _bad("message text is empty")
        plain, entities = format_text(text, params.get("parse_mode"), self._entities(params, "entities"))
        if not plain:
            raise _bad("message text is empty")
        if len(plain) > MAX_TEXT:
            raise _bad("message is too long")
        markup = params.get("reply_markup")
        echoed = inline_keyboard(markup)
        if params.get("inline_message_id"):
            return True
        sent = self._editable(params)
        if sent.method != "sendMessage":
            raise _bad("there is no text in the message to edit")
        if (plain, entities, echoed) == (sent.plain_text, sent.entities, inline_keyboard(sent.reply_markup)):
            raise _bad(NOT_MODIFIED)
        sent.edits.append(text)
        sent.plain_text, sent.entities, sent.reply_markup = plain, entities, markup
        sent.edit_date = int(time.time())
        return self._message_json(sent)

    def _m_editMessageReplyMarkup(self, params: Json) -> Json | bool:
        markup = params.get("reply_markup")
        echoed = inline_keyboard(markup)
        if params.get("inline_message_id"):
            return True
        sent = self._editable(params)
        if echoed == inline_keyboard(sent.reply_markup):
            raise _bad(NOT_MODIFIED)
        sent.reply_markup = markup
        sent.edit_date = int(time.time())
        return self._message_json(sent)

    def _editable(self, params: Json) -> SentMessage:
        chat_id = self._chat_id(params)
        message_id = params.get("message_id")
        if not isinstance(message_id, int):
            raise _bad("message identifier is not specified")
        sent = self._by_id.get((chat_id, message_id))
        if sent is None:
            raise _bad("message to edit not found")
        return sent

    def _m_answerCallbackQuery(self, params: Json) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callbacks_open:
            raise _bad("query is too old and response timeout expired or query ID is invalid")
        self._callbacks_open.discard(query_id)
        return True

    def _m_sendChatAction(self, params: Json) -> bool:
        self._chat_id(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True

    def _m_setMyCommands(self, params: Json) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", "")).strip()) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = [{"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _m_getMyCommands(self, params: Json) -> list[Json]:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return list(self._commands.get(key, []))

    def _m_setWebhook(self, params: Json) -> _Described:
        url = params.get("url")
        if not isinstance(url, str) or not url:
            return self._m_deleteWebhook(params)
        if not url.startswith(("https://", "http://")):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.match(str(secret)):
            raise _bad("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if "allowed_updates" in params:
            self._set_allowed(params["allowed_updates"])
        webhook: Json = {k: v for k, v in params.items() if k != "certificate"}
        webhook["has_custom_certificate"] = "certificate" in params
        already = self.webhook is not None and self.webhook == webhook
        self.webhook = webhook
        self._abort_polls("Conflict: terminated by setWebhook request")
        return _Described(True, "Webhook is already set" if already else "Webhook was set")

    def _m_deleteWebhook(self, params: Json) -> _Described:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        was_set, self.webhook = self.webhook is not None, None
        return _Described(True, "Webhook was deleted" if was_set else "Webhook is already deleted")

    def _m_getWebhookInfo(self, params: Json) -> Json:
        info: Json = {
            "url": self.webhook["url"] if self.webhook else "",
            "has_custom_certificate": bool(self.webhook and self.webhook["has_custom_certificate"]),
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = int(self.webhook.get("max_connections") or 40)
            if self.webhook.get("ip_address"):
                info["ip_address"] = self.webhook["ip_address"]
        if self.allowed_updates:
            info["allowed_updates"] = list(self.allowed_updates)
        return info

    async def _m_getUpdates(self, params: Json) -> list[Json]:
        if self.webhook is not None:
            raise BotApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = max(float(params.get("timeout") or 0), 0.0)
        if "allowed_updates" in params:
            self._set_allowed(params["allowed_updates"])
        if offset > 0:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._abort_polls(
            "Conflict: terminated by other getUpdates request; "
            "make sure that only one bot instance is running"
        )
        generation = self._poll_generation

        def ready() -> bool:
            self._updates = [u for u in self._updates if self._allowed(_update_type(u))]
            return bool(self._updates) or self._stopping or generation != self._poll_generation

        await self._changes.wait_until(ready, timeout)
        if generation != self._poll_generation:
            raise BotApiError(409, self._poll_abort)
        return self._updates[:limit]

    # ----------------------------------------------------------------------------------------- helpers

    def _abort_polls(self, reason: str) -> None:
        self._poll_generation += 1
        self._poll_abort = reason
        self._changes.notify()

    def _set_allowed(self, value: Any) -> None:
        self.allowed_updates = [str(v) for v in value] if isinstance(value, list) and value else None

    def _allowed(self, kind: str | None) -> bool:
        if kind is None:
            return False
        if self.allowed_updates:
            return kind in self.allowed_updates
        return kind not in _NOT_BY_DEFAULT

    @staticmethod
    def _scope_key(scope: Any) -> str:
        if not scope or scope == {"type": "default"}:
            return "default"
        return json.dumps(scope, sort_keys=True) if not isinstance(scope, str) else scope

    @staticmethod
    def _entities(params: Json, key: str) -> list[Json] | None:
        value = params.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
            raise _bad(f"can't parse {key} JSON object")
        return value

    def _chat_id(self, params: Json) -> int:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if isinstance(chat_id, str) and re.fullmatch(r"-?\d{1,20}", chat_id):
            return int(chat_id)
        if isinstance(chat_id, bool) or not isinstance(chat_id, int):
            raise _bad("chat not found")
        return chat_id

    def _reply_to(self, chat_id: int, params: Json) -> int | None:
        reply = params.get("reply_parameters")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        message_id: Any = params.get("reply_to_message_id")
        if isinstance(reply, dict):
            message_id = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
            if reply.get("chat_id") not in (None, chat_id):
                raise _bad("replying to messages in other chats is not supported by this fake")
        if message_id is None:
            return None
        known = (chat_id, message_id) in self._by_id or (chat_id, message_id) in self._user_messages
        if known:
            return int(message_id)
        if allow_missing:
            return None
        raise _bad("message to be replied not found")

    def _admit_send(self, chat_id: int, params: Json) -> bool:
        """Count a send against the limits (429 past them when enforced); True when it is a
        paid broadcast, which is not held to the 30 a second but to 1000 (all sends)."""
        paid = bool(params.get("allow_paid_broadcast"))
        now = time.monotonic()
        for recent in (self._recent_sends, self._recent_all):
            while recent and now - recent[0] >= 1.0:
                recent.popleft()
        if self.enforce_limits:
            times = self._send_times.get(chat_id)
            if times and now - times[-1] < self.chat_interval:
                raise _too_many(max(1, math.ceil(self.chat_interval - (now - times[-1]))))
            recent, limit = (
                (self._recent_all, PAID_PER_SECOND) if paid else (self._recent_sends, self.per_second)
            )
            if len(recent) >= limit:
                raise _too_many(max(1, math.ceil(1.0 - (now - recent[0]))))
        self._send_times[chat_id].append(now)
        if not paid:
            self._recent_sends.append(now)
        self._recent_all.append(now)
        return paid

    def _record(self, sent: SentMessage) -> Json:
        self._chats[sent.chat_id].append(sent)
        self._by_id[(sent.chat_id, sent.message_id)] = sent
        return self._message_json(sent)

    def _next_message_id(self, chat_id: int) -> int:
        self._last_message_id[chat_id] += 1
        return self._last_message_id[chat_id]

    def _next_update_id(self) -> int:
        self._last_update_id += 1
        return self._last_update_id

    def _ingest(self, update: Json) -> None:
        """Learn ids from an update built by hand, so replies and callback answers to it work."""
        if "update_id" not in update:
            update["update_id"] = self._next_update_id()
        self._last_update_id = max(self._last_update_id, int(update["update_id"]))
        for message in _messages_in(update):
            chat = message.get("chat") or {}
            chat_id, message_id = chat.get("id"), message.get("message_id")
            if isinstance(chat_id, int) and isinstance(message_id, int):
                self._last_message_id[chat_id] = max(self._last_message_id[chat_id], message_id)
                if (chat_id, message_id) not in self._by_id:
                    self._user_messages.setdefault((chat_id, message_id), message)
        query = update.get("callback_query")
        if isinstance(query, dict) and "id" in query and str(query["id"]) not in self._callbacks_seen:
            self._callbacks_seen.add(str(query["id"]))
            self._callbacks_open.add(str(query["id"]))

    def _user(self, chat_id: int, user_id: int | None, first_name: str) -> Json:
        return {
            "id": user_id if user_id is not None else chat_id,
            "is_bot": False,
            "first_name": first_name,
            "language_code": "en",
        }

    def _chat_json(self, chat_id: int) -> Json:
        if chat_id < 0:
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "title": f"Group {chat_id}", "type": kind}
        return {"id": chat_id, "first_name": self._names.get(chat_id, "Ada"), "type": "private"}

    def _bot_from(self) -> Json:
        return {k: self.bot_user[k] for k in ("id", "is_bot", "first_name", "username")}

    def _message_json(self, sent: SentMessage, *, with_reply: bool = True) -> Json:
        message: Json = {
            "message_id": sent.message_id,
            "from": self._bot_from(),
            "chat": self._chat_json(sent.chat_id),
            "date": sent.date,
        }
        if sent.edit_date is not None:
            message["edit_date"] = sent.edit_date
        if with_reply and sent.reply_to_message_id is not None:
            key = (sent.chat_id, sent.reply_to_message_id)
            if key in self._by_id:
                message["reply_to_message"] = self._message_json(self._by_id[key], with_reply=False)
            elif key in self._user_messages:
                replied = dict(self._user_messages[key])
                replied.pop("reply_to_message", None)
                message["reply_to_message"] = replied
        if sent.method == "sendMessage":
            message["text"] = sent.plain_text
            if sent.entities:
                message["entities"] = sent.entities
        else:
            message[_MEDIA_KIND[sent.method]] = dict(sent.media or {})
            if sent.plain_text:
                message["caption"] = sent.plain_text
                if sent.entities:
                    message["caption_entities"] = sent.entities
        keyboard = inline_keyboard(sent.reply_markup)
        if keyboard:
            message["reply_markup"] = keyboard
        return message


def _messages_in(update: Json) -> Iterable[Json]:
    for key in ("message", "edited_message", "channel_post", "edited_channel_post", "business_message"):
        if isinstance(update.get(key), dict):
            yield update[key]
    query = update.get("callback_query")
    if isinstance(query, dict) and isinstance(query.get("message"), dict):
        yield query["message"]


async def running_bot_api(**kwargs: Any) -> AsyncIterator[BotApiServer]:
    """Fixture body: ``@pytest.fixture async def bot_api(): async for s in running_bot_api(): yield s``."""
    server = BotApiServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
