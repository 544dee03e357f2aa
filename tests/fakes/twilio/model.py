"""What the fake Twilio shares between its parts: constants, SIDs and timestamps, and the records of
requests, dial targets, recordings and call legs."""

from __future__ import annotations

import math
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, Literal

Json = dict[str, Any]
Params = dict[str, str]

API_VERSION = "2010-04-01"
DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TWIML_CONTENT_TYPES = frozenset({"text/xml", "application/xml"})
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
# Final SIP codes Twilio reports as SipResponseCode (487: "the Timeout value was reached before the call
# connected"; 404: "a number that was unreachable").
_SIP_CODES = {"completed": "200", "no-answer": "487", "canceled": "487", "busy": "486", "failed": "404"}
_PURE_VERBS = frozenset({"Say", "Play", "Pause"})
_NOUNS: dict[str, Literal["number", "sip", "client"]] = {"Number": "number", "Sip": "sip", "Client": "client"}
# Requests whose answers Twilio does not need to go on with the call, plus the TwiML requests made in the
# middle of a call: hold_callbacks() collects all of them. The first TwiML fetch of a call is never held.
HOLDABLE = frozenset({"leg-status", "status", "screen", "dial-action", "record-action", "recording-status"})

Purpose = Literal[
    "voice",
    "outbound-url",
    "redirect",
    "leg-status",
    "status",
    "screen",
    "dial-action",
    "record-action",
    "recording-status",
    "manual",
]


def new_sid(prefix: str) -> str:
    """A Twilio SID: two letters and 32 hex digits (``CA…`` calls, ``RE…`` recordings)."""
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    """Twilio's timestamp format, e.g. ``Mon, 02 Mar 2026 15:30:00 +0000``."""
    return format_datetime(moment.astimezone(UTC))


def _minutes(seconds: int) -> str:
    return str(math.ceil(seconds / 60))


# ---------------------------------------------------------------------------------------------- records


@dataclass(frozen=True)
class HttpAnswer:
    """How the gateway answered one request."""

    status: int
    text: str
    content_type: str
    url: str


@dataclass
class PendingRequest:
    """A request Twilio has decided to send (held by :meth:`TwilioSimulator.hold_callbacks`)."""

    url: str
    params: Params
    purpose: str
    method: str = "POST"
    call_sid: str = ""
    token: str = field(default_factory=lambda: str(uuid.uuid4()))
    on_response: Callable[[HttpAnswer], None] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class SentRequest:
    """One request sent to the gateway: what, where, how it was signed and how it was answered."""

    url: str
    params: Params
    purpose: str
    method: str
    signature: str | None
    token: str
    status: int
    text: str
    call_sid: str = ""


@dataclass(frozen=True)
class DialTarget:
    """One noun of a ``<Dial>``: who Twilio rings and which URLs it was told to call for that leg.

    ``value`` is the noun's text (``+14155550002``, ``sip:bob@pbx``, ``bob``); ``to`` is the ``To`` Twilio
    reports on the leg (``client:bob`` for a ``<Client>``). URLs are absolute (resolved against the document).
    """

    kind: Literal["number", "sip", "client"]
    value: str
    to: str
    url: str | None = None
    method: str = "POST"
    status_callback: str | None = None
    status_callback_method: str = "POST"
    events: tuple[str, ...] = ()


@dataclass(frozen=True)
class Recording:
    """A recording Twilio made during a call."""

    sid: str
    url: str
    duration: int
    channels: int
    source: str
    started_at: datetime


@dataclass
class _Leg:
    """One call leg: the caller's call or a child leg created by ``<Dial>``."""

    sid: str
    from_: str
    to: str
    direction: str
    parent_sid: str | None = None
    status_callback: str | None = None
    status_method: str = "POST"
    events: frozenset[str] = frozenset()
    extra: Params = field(default_factory=dict)
    target: DialTarget | None = None


def _split_events(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [event for item in items for event in re.split(r"[\s,]+", item) if event]
