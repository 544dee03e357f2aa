"""The Bot API methods a bot calls to send and edit messages, answer callbacks and set commands."""

from __future__ import annotations

import mimetypes
import time
from typing import Any

from tests.fakes.bot_api.core import Core
from tests.fakes.bot_api.markdown import format_text, inline_keyboard
from tests.fakes.bot_api.model import (
    _CHAT_ACTIONS,
    _COMMAND_NAME,
    _MEDIA_KIND,
    MAX_CAPTION,
    MAX_TEXT,
    MAX_UPLOAD,
    NOT_MODIFIED,
    BotApiError,
    Json,
    SentFile,
    SentMessage,
    _bad,
)


class Methods(Core):
    """sendMessage, the media sends, edits, answerCallbackQuery, sendChatAction, the commands."""

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
