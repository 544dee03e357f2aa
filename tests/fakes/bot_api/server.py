"""The fake Bot API server: start and stop it on loopback, then look at what the bot did and make
the next calls fail."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from tests.fakes.bot_api.methods import Methods
from tests.fakes.bot_api.model import _RETRY_AFTER, MAX_UPLOAD, BotApiError, Json, SentMessage, _Failure
from tests.fakes.bot_api.updates import Updates


class BotApiServer(Methods, Updates):
    """The fake Bot API. Start it, point the bot at :attr:`url`, then look at what the bot did."""

    # ---------------------------------------------------------------------------------------- lifecycle

    _client_max_size = MAX_UPLOAD + 1024 * 1024

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port after a stop)."""
        self._stopping = False
        await super().start()

    def _before_stop(self) -> None:
        """Pending long polls are answered first; all recorded state is kept."""
        self._stopping = True
        self._changes.notify()

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

    # ------------------------------------------------------------------------------------------ commands

    def my_commands(self, scope: Json | None = None, language_code: str = "") -> list[Json] | None:
        """The commands setMyCommands set for a scope and language (``None`` if never set)."""
        return self._commands.get((self._scope_key(scope), language_code))


async def running_bot_api(**kwargs: Any) -> AsyncIterator[BotApiServer]:
    """Fixture body: ``@pytest.fixture async def bot_api(): async for s in running_bot_api(): yield s``."""
    server = BotApiServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
