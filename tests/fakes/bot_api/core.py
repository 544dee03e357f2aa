"""The fake Bot API's core: its state, the HTTP side and the shared helpers."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import re
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from tests.fakes.bot_api.markdown import inline_keyboard
from tests.fakes.bot_api.model import (
    _CANONICAL,
    _FILE_PARAMS,
    _JSON_PARAMS,
    _MEDIA_KIND,
    _NOT_BY_DEFAULT,
    _PATH,
    DEFAULT_TOKEN,
    PAID_PER_SECOND,
    ApiCall,
    BotApiError,
    Json,
    SentFile,
    SentMessage,
    _bad,
    _Changes,
    _Described,
    _Failure,
    _too_many,
)
from tests.fakes.loopback import LoopbackServer


class Core(LoopbackServer):
    """The server's state, its HTTP handling (one request, one method call) and the helpers all
    methods share; the methods, updates and test-facing parts are mixed in on top of it."""

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
        super().__init__(port)
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
