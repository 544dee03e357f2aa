"""Telegram's HTML parse mode: text and entities (UTF-16 offsets) from a bot's HTML, refusing what
Telegram refuses (``can't parse entities``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from tests.fakes.bot_api.model import BotApiError, Json, _bad


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
