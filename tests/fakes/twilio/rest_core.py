"""The REST stand-in's core: its state, its address and Twilio's error body, shared by the Calls resource
and the recordings it serves."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.fakes.loopback import LoopbackServer
from tests.fakes.twilio.model import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, Json, Params


def _twilio_error(status: int, code: int, message: str) -> Json:
    """Twilio's REST error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class _ForcedFailure:
    status: int
    body: Json
    remaining: int


class RestCore(LoopbackServer):
    """What api.twilio.com keeps: created calls and their resources, listings, recordings, forced failures."""

    def __init__(
        self, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN, *, port: int = 0
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.calls: list[Json] = []
        self.listings: list[Params] = []
        # Seconds Twilio takes to answer a creation, after the call exists (and is listed).
        self.answer_delay = 0.0
        self.recording_fetches: list[str] = []
        self.unauthorized: list[str] = []
        self._recordings: dict[str, dict[str, tuple[bytes, str]]] = {}
        self._resources: dict[str, Json] = {}
        self._failures: list[_ForcedFailure] = []
        self._cursor = 0
        super().__init__(port)
        self._changed = asyncio.Event()
