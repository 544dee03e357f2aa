"""Updates: the ones a test makes (user messages, button presses), getUpdates long polls, the
webhook methods and posting to a bot's webhook."""

from __future__ import annotations

import json
import time

import aiohttp

from tests.fakes.bot_api.core import Core
from tests.fakes.bot_api.html import _utf16_len
from tests.fakes.bot_api.markdown import _update_type
from tests.fakes.bot_api.model import (
    _BOT_COMMAND,
    _SECRET_TOKEN,
    BotApiError,
    Json,
    SentFile,
    SentMessage,
    _bad,
    _Described,
)


class Updates(Core):
    """What users do, and how the bot hears of it: long polls or its webhook."""

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
