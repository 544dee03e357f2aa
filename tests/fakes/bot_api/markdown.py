"""Telegram's MarkdownV2 and legacy Markdown parse modes, ``format_text`` (which picks the parse
mode) and the inline keyboards of a reply markup."""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.bot_api.html import _byte_offset, _entity, _Open, _Text, _utf16_len, parse_html
from tests.fakes.bot_api.model import _BUTTON_KINDS, MAX_CALLBACK_DATA, BotApiError, Json, _bad

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
