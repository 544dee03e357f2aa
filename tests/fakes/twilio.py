"""Twilio, played by the tests: a Programmable Voice simulator and a local stand-in for api.twilio.com.

:class:`TwilioSimulator` acts as Twilio towards the gateway over real HTTP. It signs every request with
``X-Twilio-Signature`` (``RequestValidator(auth_token).compute_signature(url, params)`` over the exact URL it
requests, query string included) and follows the TwiML the gateway answers, one step at a time, as the test
drives the call: ``call = await twilio.inbound(from_=...)`` only fetches the voice URL; ``await
call.answer(by=...)``, ``no_answer()``, ``busy()``, ``fail()``, ``caller_hangs_up()`` and
``leave_voicemail()`` then produce the callbacks Twilio would send, in the order Twilio fires them.

What it follows (Twilio's TwiML and webhook reference):

* ``<Dial>`` rings every ``<Number>``/``<Sip>``/``<Client>`` at once ("The first call to pick up is
  connected to the current call and the rest are hung up"). Each child leg has its own ``CallSid``,
  ``ParentCallSid`` = the caller's call and ``Direction=outbound-dial``; its ``statusCallback`` receives
  the events listed in ``statusCallbackEvent`` (``initiated ringing answered completed``; only
  ``completed`` when a callback is given without events), each with ``Timestamp`` (RFC 2822),
  ``CallbackSource=call-progress-events`` and a per-call ``SequenceNumber`` starting at 0. ``answered`` is
  reported with ``CallStatus=in-progress``; ``completed`` carries the final status (``completed``, ``busy``,
  ``failed``, ``no-answer``, ``canceled``), ``CallDuration`` (seconds), ``Duration`` (minutes, rounded up)
  and, when ``<Dial record>`` recorded, ``RecordingUrl``/``RecordingSid``/``RecordingDuration``.
* A noun's ``url`` is requested on the answering leg "after they answer, but before the parties are
  connected"; ``<Say>``, ``<Play>`` and ``<Pause>`` there are heard by the callee only, ``<Hangup>``
  declines the call.
* The ``<Dial action>`` is requested when the dialed call ends with ``DialCallStatus``, ``DialCallSid``,
  ``DialCallDuration``, ``DialBridged`` and the recording parameters; the TwiML it answers takes over the
  call. Without ``action`` Twilio goes on with the verbs after ``<Dial>``; at the end of a document it
  hangs up.
* ``<Record>`` posts its ``action`` (default: the current document's URL) with ``RecordingUrl``,
  ``RecordingSid``, ``RecordingDuration`` and ``Digits`` (``hangup`` when the caller hung up); its
  ``recordingStatusCallback`` gets ``RecordingStatus=completed`` and ``RecordingSource=RecordVerb`` when the
  file is ready. A ``RecordingUrl`` serves WAV, and MP3 with ``.mp3`` appended, with HTTP basic auth.
* When the call ends, the number's "call status changes" webhook (or the REST call's ``StatusCallback``)
  gets ``CallStatus=completed`` with ``CallDuration``.

Every request also carries ``I-Twilio-Idempotency-Token`` (kept on a retry, see :meth:`replay_last`).

Where Twilio's documentation is silent the simulator picks one behaviour and says so: losing legs of a
simultaneous ring end ``canceled`` (the ``<Client>`` reference says the other attempts "are canceled"); a
callee who declines in the screening TwiML ends the dial as ``no-answer`` with ``DialBridged=false``; a caller
who hangs up while the agents ring cancels the legs and the ``<Dial action>`` is still requested (its
TwiML is not run) with ``DialCallStatus=canceled``. Each is a parameter tests can change.

:class:`TwilioRestServer` serves the REST API parts the gateway uses: ``POST .../Calls.json`` (basic auth,
Twilio's JSON errors), ``GET .../Calls.json`` (the Calls list with its filters, see
:meth:`TwilioRestServer.list_calls`) and recording media. A call the simulator drives
(:meth:`TwilioSimulator.outbound_from_rest`) moves its resource on as Twilio would: ``status``,
``start_time`` (set once the call is dialled), ``end_time`` and ``duration``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import io
import math
import random
import re
import secrets
import uuid
import wave
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Literal, Self
from urllib.parse import urlencode, urljoin

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator
from yarl import URL

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


def silent_wav(seconds: float = 0.25, rate: int = 8000) -> bytes:
    """A short, valid mono 16-bit PCM WAV file of silence (what a ``RecordingUrl`` serves by default)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(rate * seconds))
    return buffer.getvalue()


# One silent MPEG-1 Layer III frame: 128 kbit/s, 44.1 kHz, mono, no CRC; 144 * 128000 / 44100 = 417 bytes.
_MP3_FRAME = bytes([0xFF, 0xFB, 0x90, 0xC0]) + bytes(417 - 4)


def silent_mp3(frames: int = 8) -> bytes:
    """A few silent MP3 frames (what ``{RecordingUrl}.mp3`` serves)."""
    return _MP3_FRAME * frames


def _minutes(seconds: int) -> str:
    return str(math.ceil(seconds / 60))


def _twilio_error(status: int, code: int, message: str) -> Json:
    """Twilio's REST error body."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


_FINAL_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})


def _time_matches(value: str | None, wanted: str | None, op: str) -> bool:
    """Whether a resource's RFC 2822 ``value`` passes the Calls list's ``StartTime{op}``/``EndTime{op}``."""
    if wanted is None:
        return True
    if value is None:
        return False
    moment = parsedate_to_datetime(value)
    if "T" in wanted:  # a moment: twilio-python's `iso8601_datetime`
        bound = datetime.strptime(wanted, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        return {"": moment == bound, "<": moment <= bound, ">": moment >= bound}[op]
    day = date.fromisoformat(wanted)
    on = moment.astimezone(UTC).date()
    return {"": on == day, "<": on <= day, ">": on >= day}[op]


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


Matcher = str | Callable[[DialTarget], bool] | object


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def _sip_core(value: str) -> str:
    return re.split(r"[;?]", value.strip(), maxsplit=1)[0].lower()


def _same_endpoint(target: DialTarget, wanted: str) -> bool:
    wanted = wanted.strip()
    if not wanted:
        return False
    if target.kind == "client":
        identity = wanted.removeprefix("client:")
        return identity == target.value
    if target.kind == "sip":
        core = _sip_core(wanted)
        return core == _sip_core(target.value) or f"sip:{core}" == _sip_core(target.value)
    mine, theirs = _digits(target.value), _digits(wanted)
    if not mine or not theirs or wanted.lower().startswith(("sip:", "client:")):
        return False
    return mine == theirs or (len(mine) >= 10 and len(theirs) >= 10 and mine[-10:] == theirs[-10:])


_AGENT_ATTRIBUTES = ("sip_uri", "sip", "client_identity", "client", "identity", "phone", "phone_number")


def _matches(target: DialTarget, by: Matcher) -> bool:
    if isinstance(by, str):
        return _same_endpoint(target, by)
    if callable(by):
        return bool(by(target))
    # An agent-like object (``call.answer(by=bob)``): any of its endpoints rung by this noun.
    for name in _AGENT_ATTRIBUTES:
        value = getattr(by, name, None)
        if isinstance(value, str) and _same_endpoint(target, value):
            return True
    return False


def _split_events(value: str | Iterable[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [event for item in items for event in re.split(r"[\s,]+", item) if event]


# -------------------------------------------------------------------------------------------------- calls


class SimulatedCall:
    """A call Twilio is handling: the TwiML it is following and the legs it created.

    ``twiml`` is the current TwiML document (``<Response>``), ``doc_url`` the URL it came from (relative URLs
    in it resolve against that), ``state`` one of ``running`` (between verbs), ``dial`` (waiting at a
    ``<Dial>``), ``record`` (waiting at a ``<Record>``), ``awaiting`` (its next TwiML is in a held request)
    or ``ended``. ``heard`` lists what the caller was told (``<Say>`` texts, ``<Play>`` URLs).
    """

    def __init__(self, sim: TwilioSimulator, leg: _Leg) -> None:
        self.sim = sim
        self._leg = leg
        self.twiml: ET.Element = ET.Element("Response")
        self.doc_url: str | None = None
        self.last_response: HttpAnswer | None = None
        self.state: Literal["running", "dial", "record", "awaiting", "ended"] = "running"
        self.status: str | None = None
        self.heard: list[str] = []
        self.callee_heard: list[str] = []
        self.child_sids: list[str] = []
        self.recordings: list[Recording] = []
        self._pc = 0
        self._elapsed = 0
        self._started = sim.clock()
        self._answered_at: int | None = None

    # --------------------------------------------------------------------------------------- reading

    @property
    def sid(self) -> str:
        """The call's ``CallSid``."""
        return self._leg.sid

    @property
    def ended(self) -> bool:
        return self.state == "ended"

    @property
    def elapsed(self) -> int:
        """Seconds since the call started, on the simulator's virtual clock."""
        return self._elapsed

    def current_verb(self) -> ET.Element | None:
        """The verb Twilio is at (``None`` past the end of the document)."""
        verbs = list(self.twiml)
        return verbs[self._pc] if self._pc < len(verbs) else None

    def dial_targets(self) -> list[DialTarget]:
        """The ``<Number>``/``<Sip>``/``<Client>`` nouns of the ``<Dial>`` Twilio is waiting at."""
        return self._targets(self._require("dial"))

    def __repr__(self) -> str:
        verb = self.current_verb()
        return f"<{type(self).__name__} {self.sid} {self.state} at {verb.tag if verb is not None else 'end'}>"

    # ------------------------------------------------------------------------------------- driving

    async def proceed(self) -> None:
        """Let Twilio go on with the TwiML until it waits (``<Dial>``, ``<Record>``) or hangs up."""
        await self._run()

    async def answer(
        self,
        by: Matcher,
        *,
        talk_seconds: int = 30,
        record: bool = True,
        ring_seconds: int = 4,
        losing_status: str = "canceled",
        screen_rejected_status: str = "no-answer",
    ) -> None:
        """Every dialed leg rings; the one matching ``by`` picks up, talks ``talk_seconds`` and hangs up.

        ``by`` is an endpoint (``"+14155550002"``, ``"sip:bob@pbx"``, ``"client:bob"``/``"bob"``), a
        predicate on :class:`DialTarget`, or an agent-like object whose ``phone``/``sip``/``sip_uri``/
        ``client``/``client_identity`` is rung. With ``record=False`` no recording is made even if
        ``<Dial record>`` asked.
        """
        await self._run()
        dial = self._require("dial")
        targets = self._targets(dial)
        winner_index = next((i for i, t in enumerate(targets) if _matches(t, by)), None)
        if winner_index is None:
            listed = ", ".join(f"{t.kind}:{t.value}" for t in targets)
            raise AssertionError(f"no dialed endpoint matches {by!r}; Twilio rang: {listed}")
        legs = await self._ring(dial, targets, ringing=True)
        winner = legs[winner_index]
        self._elapsed += ring_seconds
        winner_answered_at = self._elapsed
        await self._leg_event(winner, "answered", "in-progress")
        for leg in legs:
            if leg is not winner:
                await self._leg_final(leg, losing_status, 0)

        declined = False
        if winner.target is not None and winner.target.url:
            declined = await self._screen(winner, winner.target)
        if declined:
            self._elapsed += 2
            await self._leg_final(winner, "completed", self._elapsed - winner_answered_at)
            await self._dial_ended(dial, screen_rejected_status, winner.sid, 0, bridged=False)
            return

        if self._answered_at is None:  # answerOnBridge: the caller's call is answered when bridged
            self._answered_at = self._elapsed
        recording = None
        mode = (dial.get("record") or "do-not-record").lower()
        if record and mode not in ("false", "do-not-record"):
            seconds = talk_seconds + (ring_seconds if "ringing" in mode else 0)
            started = self._started + timedelta(seconds=winner_answered_at)
            recording = self.sim._new_recording(
                seconds, channels=2 if mode.endswith("dual") else 1, source="DialVerb", started_at=started
            )
            self.recordings.append(recording)
            await self._recording_event(dial, recording, "in-progress")
        self._elapsed += talk_seconds
        await self._leg_final(winner, "completed", talk_seconds, recording=recording)
        await self._dial_ended(dial, "completed", winner.sid, talk_seconds, bridged=True, recording=recording)
        if recording is not None:
            await self._recording_event(dial, recording, "completed")

    async def no_answer(self) -> None:
        """Every leg rings until the ``<Dial timeout>`` and ends ``no-answer``, as does the dial."""
        await self._unanswered("no-answer")

    async def busy(self) -> None:
        """Every leg gets a busy signal; the dial ends ``busy``."""
        await self._unanswered("busy")

    async def fail(self) -> None:
        """No leg can be routed; the dial ends ``failed``."""
        await self._unanswered("failed")

    async def caller_hangs_up(
        self, *, ring_seconds: int = 6, dial_call_status: str = "canceled", leg_status: str = "canceled"
    ) -> None:
        """The caller gives up while the agents' phones ring.

        The legs end ``leg_status``; the ``<Dial action>`` (if any) is still requested, with the caller's
        ``CallStatus=completed`` and ``DialCallStatus=dial_call_status``, and its TwiML is not run; then the
        call's status callback reports the end.
        """
        await self._run()
        dial = self._require("dial")
        legs = await self._ring(dial, self._targets(dial), ringing=True)
        self._elapsed += ring_seconds
        for leg in legs:
            await self._leg_final(leg, leg_status, 0)
        await self._dial_ended(dial, dial_call_status, legs[-1].sid, 0, bridged=False, caller_gone=True)

    async def leave_voicemail(self, seconds: int = 12, *, digits: str = "hangup") -> Recording:
        """At a ``<Record>``: the caller speaks ``seconds`` seconds, then hangs up (or presses ``digits``).

        Twilio posts the ``<Record action>`` (``RecordingUrl``, ``RecordingSid``, ``RecordingDuration``,
        ``Digits``) and, when the file is ready, the ``recordingStatusCallback``. After a hang-up the call
        ends (the action's TwiML is not run); after a key press the action's TwiML takes over.
        """
        await self._run()
        verb = self._require("record")
        max_length = int(verb.get("maxLength") or 3600)
        duration = max(1, min(seconds, max_length))
        started = self._started + timedelta(seconds=self._elapsed)
        recording = self.sim._new_recording(duration, channels=1, source="RecordVerb", started_at=started)
        self.recordings.append(recording)
        await self._recording_event(verb, recording, "in-progress")
        self._elapsed += duration
        caller_gone = digits == "hangup"
        params = self._params(self._leg, "completed" if caller_gone else "in-progress")
        params.update(
            RecordingUrl=recording.url,
            RecordingSid=recording.sid,
            RecordingDuration=str(recording.duration),
            Digits=digits,
        )
        action = self._resolve(verb.get("action") or self.doc_url or "")
        answer = await self.sim._send(
            action,
            params,
            purpose="record-action",
            method=verb.get("method") or "POST",
            call_sid=self.sid,
            on_response=self._adopt_held(action),
        )
        if caller_gone:
            await self._end()
        elif answer is None:
            self.state = "awaiting"
        else:
            self.last_response = answer
            self._adopt(self.sim._twiml_of(answer, "the <Record> action"), action)
            await self._run()
        await self._recording_event(verb, recording, "completed")
        return recording

    # ---------------------------------------------------------------------------------- internals

    def _require(self, state: Literal["dial", "record"]) -> ET.Element:
        verb = self.current_verb()
        if self.state != state or verb is None:
            where = verb.tag if verb is not None else "the end of the document"
            raise AssertionError(
                f"call {self.sid} is not waiting at a <{state.capitalize()}> (state {self.state},"
                f" at {where}); TwiML from {self.doc_url}:\n{ET.tostring(self.twiml, encoding='unicode')}"
            )
        return verb

    def _resolve(self, ref: str) -> str:
        ref = ref.strip()
        if not ref:
            raise AssertionError(f"empty URL in TwiML from {self.doc_url}")
        if self.doc_url is None:
            if not ref.startswith(("http://", "https://")):
                raise AssertionError(
                    f"relative URL {ref!r} in inline TwiML (Twilio needs absolute URLs there)"
                )
            return ref
        return urljoin(self.doc_url, ref)

    def _targets(self, dial: ET.Element) -> list[DialTarget]:
        if (dial.get("sequential") or "").lower() == "true":
            raise AssertionError("<Dial sequential='true'> is not simulated")
        targets: list[DialTarget] = []
        text = (dial.text or "").strip()
        if text:
            targets.append(DialTarget(kind="number", value=text, to=text))
        for noun in dial:
            kind = _NOUNS.get(noun.tag)
            if kind is None:
                raise AssertionError(f"<Dial> noun <{noun.tag}> is not supported by the Twilio simulator")
            value = (noun.text or "").strip()
            if kind == "client" and not value:
                identity = noun.find("Identity")
                value = (identity.text or "").strip() if identity is not None else ""
            if not value:
                raise AssertionError(f"<{noun.tag}> without a value in TwiML from {self.doc_url}")
            callback = noun.get("statusCallback")
            events = tuple(_split_events(noun.get("statusCallbackEvent"))) if callback else ()
            for event in events:
                if event not in CALL_EVENTS:
                    raise AssertionError(f"unknown statusCallbackEvent {event!r} on <{noun.tag}>")
            targets.append(
                DialTarget(
                    kind=kind,
                    value=value,
                    to=f"client:{value}" if kind == "client" else value,
                    url=self._resolve(noun.get("url") or "") if noun.get("url") else None,
                    method=(noun.get("method") or "POST").upper(),
                    status_callback=self._resolve(callback) if callback else None,
                    status_callback_method=(noun.get("statusCallbackMethod") or "POST").upper(),
                    events=(events or ("completed",)) if callback else (),
                )
            )
        if not targets:
            raise AssertionError(f"<Dial> with nothing to dial in TwiML from {self.doc_url}")
        if len(targets) > 10:
            raise AssertionError("Twilio rings at most ten nouns in one <Dial>")
        return targets

    def _adopt(self, twiml: ET.Element, url: str | None) -> None:
        self.twiml, self.doc_url, self._pc = twiml, url, 0
        self.state = "running"

    def _adopt_held(self, url: str) -> Callable[[HttpAnswer], None]:
        def adopt(answer: HttpAnswer) -> None:
            if self.state != "awaiting":
                return
            self.last_response = answer
            self._adopt(self.sim._twiml_of(answer, f"held request to {url}"), url)
            self._advance_pure()

        return adopt

    def _mark_answered(self) -> None:
        if self._answered_at is None:
            self._answered_at = self._elapsed

    def _advance_pure(self) -> None:
        """Run the verbs that need no request (``<Say>``, ``<Play>``, ``<Pause>``); stop at anything else."""
        while self.state == "running":
            verb = self.current_verb()
            if verb is None:
                return
            if verb.tag in _PURE_VERBS:
                self._mark_answered()
                if verb.tag == "Pause":
                    self._elapsed += int(verb.get("length") or 1)
                else:
                    self.heard.append((verb.text or "").strip())
                self._pc += 1
            elif verb.tag == "Dial":
                self._targets(verb)  # unknown nouns are reported as soon as Twilio reaches them
                if (verb.get("answerOnBridge") or "").lower() != "true":
                    self._mark_answered()
                self.state = "dial"
            elif verb.tag == "Record":
                self._mark_answered()
                self.state = "record"
            elif verb.tag in ("Hangup", "Redirect"):
                return
            else:
                raise AssertionError(
                    f"TwiML verb <{verb.tag}> is not supported by the Twilio simulator (from {self.doc_url})"
                )

    async def _run(self) -> None:
        while True:
            self._advance_pure()
            if self.state != "running":
                return
            verb = self.current_verb()
            if verb is None or verb.tag == "Hangup":
                await self._end()
                return
            # <Redirect>: fetch the new document and go on with it.
            url = self._resolve(verb.text or "")
            answer = await self.sim._send(
                url,
                self._params(self._leg, "in-progress"),
                purpose="redirect",
                method=(verb.get("method") or "POST").upper(),
                call_sid=self.sid,
            )
            assert answer is not None  # redirects are never held
            self.last_response = answer
            self._adopt(self.sim._twiml_of(answer, "the <Redirect>"), url)

    def _params(self, leg: _Leg, status: str) -> Params:
        params: Params = {
            "AccountSid": self.sim.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": leg.sid,
            "CallStatus": status,
            "Called": leg.to,
            "Caller": leg.from_,
            "Direction": leg.direction,
            "From": leg.from_,
            "To": leg.to,
        }
        if leg.parent_sid:
            params["ParentCallSid"] = leg.parent_sid
        params.update(leg.extra)
        return params

    async def _leg_event(self, leg: _Leg, event: str, status: str, extra: Params | None = None) -> None:
        if leg is self._leg and self.sim.rest is not None:
            duration = (extra or {}).get("CallDuration")
            moment = self._started + timedelta(seconds=self._elapsed)
            self.sim.rest.progress(leg.sid, status, at=moment, duration=duration)
        if leg.status_callback is None or event not in leg.events:
            return
        params = self._params(leg, status)
        params.update(
            Timestamp=rfc2822(self._started + timedelta(seconds=self._elapsed)),
            CallbackSource="call-progress-events",
            SequenceNumber=str(self.sim._next_sequence(leg.sid)),
        )
        params.update(extra or {})
        purpose: Purpose = "status" if leg is self._leg else "leg-status"
        await self.sim._send(
            leg.status_callback, params, purpose=purpose, method=leg.status_method, call_sid=self.sid
        )

    async def _leg_final(
        self, leg: _Leg, status: str, seconds: int, recording: Recording | None = None
    ) -> None:
        extra: Params = {
            "CallDuration": str(seconds),
            "Duration": _minutes(seconds),
            "SipResponseCode": _SIP_CODES.get(status, "200"),
        }
        if recording is not None:
            extra.update(
                RecordingUrl=recording.url,
                RecordingSid=recording.sid,
                RecordingDuration=str(recording.duration),
            )
        await self._leg_event(leg, "completed", status, extra)

    async def _ring(self, dial: ET.Element, targets: list[DialTarget], *, ringing: bool) -> list[_Leg]:
        caller_id = dial.get("callerId") or self._leg.from_
        legs = [
            _Leg(
                sid=new_sid("CA"),
                from_=caller_id,
                to=target.to,
                direction="outbound-dial",
                parent_sid=self.sid,
                status_callback=target.status_callback,
                status_method=target.status_callback_method,
                events=frozenset(target.events),
                target=target,
            )
            for target in targets
        ]
        self.child_sids.extend(leg.sid for leg in legs)
        for leg in legs:
            await self._leg_event(leg, "initiated", "initiated")
        if ringing:
            self._elapsed += 1
            for leg in legs:
                await self._leg_event(leg, "ringing", "ringing")
        return legs

    async def _screen(self, leg: _Leg, target: DialTarget) -> bool:
        """Run the noun's ``url`` TwiML on the answering leg; ``True`` when the callee declined."""
        assert target.url is not None
        answer = await self.sim._send(
            target.url,
            self._params(leg, "in-progress"),
            purpose="screen",
            method=target.method,
            call_sid=self.sid,
        )
        if answer is None:  # held: assume the callee accepted
            return False
        document = self.sim._twiml_of(answer, f"the screening URL of {target.to}")
        for verb in document:
            if verb.tag in _PURE_VERBS:
                self.callee_heard.append((verb.text or "").strip())
            elif verb.tag in ("Hangup", "Reject"):
                return True
            else:
                raise AssertionError(
                    f"TwiML verb <{verb.tag}> in screening TwiML is not supported by the Twilio simulator"
                    " (Twilio allows <Say>, <Play>, <Gather>, <Hangup> there; <Dial> never)"
                )
        return False

    async def _unanswered(self, outcome: str) -> None:
        await self._run()
        dial = self._require("dial")
        legs = await self._ring(dial, self._targets(dial), ringing=outcome == "no-answer")
        self._elapsed += int(dial.get("timeout") or 30) if outcome == "no-answer" else 1
        for leg in legs:
            await self._leg_final(leg, outcome, 0)
        await self._dial_ended(dial, outcome, legs[-1].sid, 0, bridged=False)

    async def _dial_ended(
        self,
        dial: ET.Element,
        outcome: str,
        dial_sid: str,
        seconds: int,
        *,
        bridged: bool,
        recording: Recording | None = None,
        caller_gone: bool = False,
    ) -> None:
        action = dial.get("action")
        if not action:
            if caller_gone:
                await self._end()
            else:
                self._pc += 1
                self.state = "running"
                await self._run()
            return
        url = self._resolve(action)
        params = self._params(self._leg, "completed" if caller_gone else "in-progress")
        params.update(
            DialCallStatus=outcome,
            DialCallSid=dial_sid,
            DialCallDuration=str(seconds),
            DialBridged="true" if bridged else "false",
        )
        if recording is not None:
            params.update(
                RecordingUrl=recording.url,
                RecordingSid=recording.sid,
                RecordingDuration=str(recording.duration),
            )
        answer = await self.sim._send(
            url,
            params,
            purpose="dial-action",
            method=(dial.get("method") or "POST").upper(),
            call_sid=self.sid,
            on_response=self._adopt_held(url),
        )
        if caller_gone:
            await self._end()
        elif answer is None:
            # Held: after a conversation the gateway almost always hangs up; otherwise wait for its TwiML.
            if bridged:
                await self._end()
            else:
                self.state = "awaiting"
        else:
            self.last_response = answer
            if answer.status >= 400 and not self.sim.fail_on_http_error:
                await self._end()  # Twilio: "An application error has occurred", then it hangs up
                return
            self._adopt(self.sim._twiml_of(answer, "the <Dial> action"), url)
            await self._run()

    async def _recording_event(self, verb: ET.Element, recording: Recording, event: str) -> None:
        callback = verb.get("recordingStatusCallback")
        events = _split_events(verb.get("recordingStatusCallbackEvent")) or ["completed"]
        if not callback or event not in events:
            return
        params: Params = {
            "AccountSid": self.sim.account_sid,
            "CallSid": self.sid,
            "RecordingSid": recording.sid,
            "RecordingUrl": recording.url,
            "RecordingStatus": event,
            "RecordingChannels": str(recording.channels),
            "RecordingSource": recording.source,
            "RecordingStartTime": rfc2822(recording.started_at),
        }
        if event == "completed":
            params["RecordingDuration"] = str(recording.duration)
        await self.sim._send(
            self._resolve(callback),
            params,
            purpose="recording-status",
            method=(verb.get("recordingStatusCallbackMethod") or "POST").upper(),
            call_sid=self.sid,
        )

    async def _end(self, status: str | None = None) -> None:
        if self.state == "ended":
            return
        self.state = "ended"
        answered = self._answered_at is not None
        self.status = status or ("completed" if answered else "no-answer")
        seconds = self._elapsed - self._answered_at if self._answered_at is not None else 0
        await self._leg_final(self._leg, self.status, seconds)


class InboundCall(SimulatedCall):
    """A call from a caller to the company's Twilio number."""


class OutboundCall(SimulatedCall):
    """A call created through the REST API (click-to-call): Twilio rang ``To`` (the agent) first."""

    async def answer_client(self, by: Matcher | None = None, **kwargs: Any) -> None:
        """The dialed client picks up (the first dialed endpoint unless ``by`` says which)."""
        await self.answer(by if by is not None else (lambda target: True), **kwargs)

    async def client_no_answer(self) -> None:
        """The dialed client does not pick up before the ``<Dial timeout>``."""
        await self.no_answer()


# ------------------------------------------------------------------------------------------- simulator


class TwilioSimulator:
    """Twilio, towards the gateway: places calls to its webhooks and follows the TwiML it answers."""

    def __init__(
        self,
        *,
        base_url: str,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        http: aiohttp.ClientSession | None = None,
        voice_path: str = "/webhooks/twilio/voice",
        status_path: str | None = "/webhooks/twilio/status",
        rest: TwilioRestServer | None = None,
        clock: Callable[[], datetime] | None = None,
        fail_on_http_error: bool = True,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.voice_url = self.base_url + voice_path
        self.status_url = self.base_url + status_path if status_path else None
        self.rest = rest
        self.clock = clock or (lambda: datetime.now(UTC))
        self.fail_on_http_error = fail_on_http_error
        self.validator = RequestValidator(auth_token)
        self.log: list[SentRequest] = []
        self.held: list[PendingRequest] = []
        self.calls: list[SimulatedCall] = []
        self._http = http
        self._own_http = http is None
        self._holding = False
        self._sequences: dict[str, int] = {}

    async def close(self) -> None:
        """Close the HTTP session the simulator opened itself."""
        if self._own_http and self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------- calls

    def inbound_params(
        self, *, from_: str, to: str = "+14155550000", call_sid: str | None = None, **extra: str
    ) -> Params:
        """The parameters Twilio posts to the voice URL when ``from_`` calls ``to``."""
        return {
            "AccountSid": self.account_sid,
            "ApiVersion": API_VERSION,
            "CallSid": call_sid or new_sid("CA"),
            "CallStatus": "ringing",
            "Called": to,
            "Caller": from_,
            "Direction": "inbound",
            "From": from_,
            "To": to,
            **extra,
        }

    async def inbound(self, *, from_: str, to: str = "+14155550000", **extra_params: str) -> InboundCall:
        """``from_`` calls the company's number ``to``: Twilio fetches the voice URL and reads its TwiML.

        Nothing else happens until the test says what the people on the line do.
        """
        params = self.inbound_params(from_=from_, to=to, **extra_params)
        leg = _Leg(
            sid=params["CallSid"],
            from_=from_,
            to=to,
            direction="inbound",
            status_callback=self.status_url,
            events=frozenset({"completed"}),  # a number's status callback reports the end of the call
            extra=dict(extra_params),
        )
        call = InboundCall(self, leg)
        self.calls.append(call)
        answer = await self._send(self.voice_url, params, purpose="voice", call_sid=leg.sid)
        assert answer is not None
        call.last_response = answer
        call._adopt(self._twiml_of(answer, "the voice URL"), self.voice_url)
        call._advance_pure()
        return call

    async def outbound_from_rest(
        self, rest_call: Mapping[str, Any], *, agent_answers: bool = True, ring_seconds: int = 3
    ) -> OutboundCall:
        """Act on a call created through ``Calls.json``: ring ``To``; on answer fetch ``Url`` (or ``Twiml``).

        ``rest_call`` is a record of :attr:`TwilioRestServer.calls`. The call's ``StatusCallback`` gets the
        ``StatusCallbackEvent`` events (default ``completed``) with ``Direction=outbound-api``.
        """
        sid = rest_call.get("sid")
        if not sid:
            raise AssertionError(f"that REST request created no call: {dict(rest_call)}")
        callback = rest_call.get("StatusCallback")
        events = _split_events(rest_call.get("StatusCallbackEvent")) or ["completed"]
        leg = _Leg(
            sid=str(sid),
            from_=str(rest_call["From"]),
            to=str(rest_call["To"]),
            direction="outbound-api",
            status_callback=str(callback) if callback else None,
            status_method=str(rest_call.get("StatusCallbackMethod") or "POST").upper(),
            events=frozenset(events) if callback else frozenset(),
        )
        call = OutboundCall(self, leg)
        self.calls.append(call)
        await call._leg_event(leg, "initiated", "initiated")
        call._elapsed += 1
        await call._leg_event(leg, "ringing", "ringing")
        if not agent_answers:
            call._elapsed += int(rest_call.get("Timeout") or 60)
            call.state = "ended"
            call.status = "no-answer"
            await call._leg_final(leg, "no-answer", 0)
            return call
        call._elapsed += ring_seconds
        call._mark_answered()
        await call._leg_event(leg, "answered", "in-progress")
        if rest_call.get("Url"):
            url = str(rest_call["Url"])
            answer = await self._send(
                url,
                call._params(leg, "in-progress"),
                purpose="outbound-url",
                method=str(rest_call.get("Method") or "POST").upper(),
                call_sid=leg.sid,
            )
            assert answer is not None
            call.last_response = answer
            call._adopt(self._twiml_of(answer, "the call's Url"), url)
        elif rest_call.get("Twiml"):
            call._adopt(self._parse_twiml(str(rest_call["Twiml"]), "the call's Twiml"), None)
        else:
            raise AssertionError("the REST call has neither Url nor Twiml")
        call._advance_pure()
        return call

    # ------------------------------------------------------------------------------- ordering

    def hold_callbacks(self) -> None:
        """From now on collect callbacks (and mid-call TwiML requests) in :attr:`held` instead of sending.

        While held, Twilio assumes a screening URL accepts the call, a ``<Dial action>`` after a
        conversation hangs up, and otherwise waits: the TwiML a held action answers is adopted when
        :meth:`release` sends it.
        """
        self._holding = True

    async def release(
        self,
        order: Literal["in_order", "reversed", "shuffled"] = "in_order",
        *,
        twice: bool = False,
        seed: int = 0,
    ) -> list[int]:
        """Send the held requests (each twice in a row if ``twice``), stop holding; return the statuses."""
        pending, self.held = self.held, []
        self._holding = False
        if order == "reversed":
            pending.reverse()
        elif order == "shuffled":
            random.Random(seed).shuffle(pending)
        statuses: list[int] = []
        for request in pending:
            first: HttpAnswer | None = None
            for _ in range(2 if twice else 1):
                answer = await self._deliver(request)
                statuses.append(answer.status)
                first = first or answer
            if request.on_response is not None and first is not None:
                request.on_response(first)
        return statuses

    async def replay_last(self) -> int:
        """Send the most recent request again, byte for byte (a Twilio retry: same signature and token)."""
        if not self.log:
            raise AssertionError("nothing was sent yet")
        last = self.log[-1]
        answer = await self._http_request(last.method, last.url, last.params, last.signature, last.token)
        self._record(
            last.url,
            last.params,
            last.purpose,
            last.method,
            last.signature,
            last.token,
            answer,
            last.call_sid,
        )
        return answer.status

    # ---------------------------------------------------------------------------------- HTTP

    def sign(self, url: str, params: Mapping[str, str]) -> str:
        """``X-Twilio-Signature`` for a request to exactly ``url`` with these form parameters."""
        return str(self.validator.compute_signature(url, dict(params)))

    async def post_signed(
        self, url: str, params: Mapping[str, str], *, signature: str | None = None, method: str = "POST"
    ) -> tuple[int, str]:
        """Send one request as Twilio would; ``signature`` overrides it (``""`` sends no signature header)."""
        target = url if url.startswith(("http://", "https://")) else self.base_url + url
        target, form = self._shape(method, target, dict(params))
        sig = self.sign(target, form) if signature is None else signature
        token = str(uuid.uuid4())
        answer = await self._http_request(method, target, form, sig or None, token)
        self._record(target, form, "manual", method, sig or None, token, answer, params.get("CallSid", ""))
        return answer.status, answer.text

    def sent(self, purpose: str | None = None, *, call_sid: str | None = None) -> list[SentRequest]:
        """The requests sent so far, optionally only those of one purpose and/or call."""
        return [
            entry
            for entry in self.log
            if (purpose is None or entry.purpose == purpose)
            and (call_sid is None or entry.call_sid == call_sid)
        ]

    def _next_sequence(self, call_sid: str) -> int:
        number = self._sequences.get(call_sid, 0)
        self._sequences[call_sid] = number + 1
        return number

    def _new_recording(self, seconds: int, *, channels: int, source: str, started_at: datetime) -> Recording:
        sid = new_sid("RE")
        if self.rest is not None:
            url = self.rest._store_recording(
                sid, {".wav": (silent_wav(), "audio/wav"), ".mp3": (silent_mp3(), "audio/mpeg")}
            )
        else:
            url = f"https://api.twilio.com/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{sid}"
        return Recording(
            sid=sid, url=url, duration=seconds, channels=channels, source=source, started_at=started_at
        )

    async def _send(
        self,
        url: str,
        params: Params,
        *,
        purpose: Purpose,
        method: str = "POST",
        call_sid: str = "",
        on_response: Callable[[HttpAnswer], None] | None = None,
    ) -> HttpAnswer | None:
        request = PendingRequest(
            url=url,
            params=params,
            purpose=purpose,
            method=method.upper(),
            call_sid=call_sid,
            on_response=on_response,
        )
        if self._holding and purpose in HOLDABLE:
            self.held.append(request)
            return None
        answer = await self._deliver(request)
        if answer.status >= 400 and self.fail_on_http_error:
            raise AssertionError(
                f"the gateway answered {purpose} request to {url} with HTTP {answer.status}:"
                f" {answer.text[:500]}"
            )
        return answer

    def _shape(self, method: str, url: str, params: Params) -> tuple[str, Params]:
        """GET requests carry the parameters in the query string (and are signed without a body)."""
        if method.upper() != "GET" or not params:
            return url, params
        return f"{url}{'&' if '?' in url else '?'}{urlencode(params)}", {}

    async def _deliver(self, request: PendingRequest) -> HttpAnswer:
        url, form = self._shape(request.method, request.url, request.params)
        signature = self.sign(url, form)
        answer = await self._http_request(request.method, url, form, signature, request.token)
        self._record(
            url, form, request.purpose, request.method, signature, request.token, answer, request.call_sid
        )
        return answer

    def _record(
        self,
        url: str,
        params: Params,
        purpose: str,
        method: str,
        signature: str | None,
        token: str,
        answer: HttpAnswer,
        call_sid: str,
    ) -> None:
        self.log.append(
            SentRequest(
                url=url,
                params=dict(params),
                purpose=purpose,
                method=method,
                signature=signature,
                token=token,
                status=answer.status,
                text=answer.text,
                call_sid=call_sid,
            )
        )

    async def _http_request(
        self, method: str, url: str, params: Params, signature: str | None, token: str
    ) -> HttpAnswer:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession()
            self._own_http = True
        headers = {
            "User-Agent": "TwilioProxy/1.1",
            "I-Twilio-Idempotency-Token": token,
            "X-Home-Region": "us1",
        }
        if signature:
            headers["X-Twilio-Signature"] = signature
        data = params if method.upper() == "POST" else None
        async with self._http.request(
            method.upper(), URL(url, encoded=True), data=data, headers=headers, allow_redirects=False
        ) as response:
            text = await response.text()
            return HttpAnswer(status=response.status, text=text, content_type=response.content_type, url=url)

    def _twiml_of(self, answer: HttpAnswer, what: str) -> ET.Element:
        if answer.status != 200:
            raise AssertionError(
                f"{what} ({answer.url}) answered HTTP {answer.status}, not TwiML: {answer.text[:500]}"
            )
        if answer.content_type not in TWIML_CONTENT_TYPES:
            raise AssertionError(
                f"{what} ({answer.url}) answered Content-Type {answer.content_type!r}; Twilio wants"
                f" text/xml or application/xml: {answer.text[:500]}"
            )
        return self._parse_twiml(answer.text, f"{what} ({answer.url})")

    @staticmethod
    def _parse_twiml(text: str, what: str) -> ET.Element:
        try:
            root = ET.fromstring(text)  # noqa: S314  # the gateway under test wrote it
        except ET.ParseError as error:
            raise AssertionError(f"{what} answered XML that does not parse ({error}): {text[:500]}") from None
        if root.tag != "Response":
            raise AssertionError(f"{what} answered <{root.tag}>, not a TwiML <Response>: {text[:500]}")
        return root


# ----------------------------------------------------------------------------------------- REST server


@dataclass
class _ForcedFailure:
    status: int
    body: Json
    remaining: int


_DEFAULT_FAILURES = {
    400: (21200, "Bad request to the Calls resource"),
    401: (20003, "Authenticate"),
    404: (20404, "The requested resource was not found"),
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    503: (20503, "Service Unavailable"),
}


class TwilioRestServer:
    """A local api.twilio.com: ``Calls.json`` creation and recording media, with Twilio's auth and errors.

    Give :attr:`url` to ``CRM_TWILIO_API_URL``. Every ``Calls.json`` creation that passed authentication is
    kept in :attr:`calls` as its form parameters (``StatusCallbackEvent`` as a list) plus ``sid`` (``None``
    when it was refused) and ``http_status``; every listing in :attr:`listings` as its query parameters.
    """

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
        self._port = port
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("TwilioRestServer was never started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def port(self) -> int:
        return self._port

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port the first time, the same port after a stop)."""
        if self._runner is not None:
            return
        app = web.Application()
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
        """Stop listening; everything recorded is kept."""
        if self._runner is None:
            return
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------------------------- control

    @property
    def created_calls(self) -> list[Json]:
        """The ``Calls.json`` requests that created a call."""
        return [call for call in self.calls if call.get("sid")]

    async def next_call(self, timeout: float = 5.0) -> Json:
        """The next created call not returned yet (waiting up to ``timeout`` seconds)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            created = self.created_calls
            if self._cursor < len(created):
                self._cursor += 1
                return created[self._cursor - 1]
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no call was created within {timeout}s; requests: {self.calls}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def fail_next(self, times: int, status: int, body: Json | None = None) -> None:
        """Answer the next ``times`` ``Calls.json`` creations with ``status`` and Twilio's error JSON."""
        if body is None:
            code, message = _DEFAULT_FAILURES.get(status, (20000 + status, "Error"))
            body = _twilio_error(status, code, message)
        self._failures.append(_ForcedFailure(status=status, body=body, remaining=times))

    def progress(self, sid: str, status: str, *, at: datetime, duration: str | None = None) -> None:
        """Move a created call's resource on: Twilio reports ``status`` at ``at`` (a call this server did
        not create, an inbound one, is not listed and is left alone)."""
        resource = self._resources.get(sid)
        if resource is None or status == "queued":
            return
        moment = rfc2822(at)
        resource["status"] = "queued" if status == "initiated" else status
        resource["date_updated"] = moment
        if resource["start_time"] is None:
            resource["start_time"] = moment  # "Empty if the call has not yet been dialed"
        if status in _FINAL_STATUSES:
            resource["end_time"] = moment
            resource["duration"] = duration or "0"

    def list_calls(self, query: Mapping[str, str]) -> list[Json]:
        """The created calls Twilio's Calls list returns for ``query``, newest first.

        ``To``, ``From``, ``ParentCallSid`` and ``Status`` match exactly. ``StartTime``/``EndTime`` take a
        date (``YYYY-MM-DD``, as Twilio documents) or a moment (``YYYY-MM-DDTHH:MM:SSZ``, what twilio-python
        sends for a ``datetime``); ``StartTime>`` is on or after it, ``StartTime<`` on or before it (for a
        date: that whole day), ``StartTime`` that day. A call that was not dialled yet has no start time,
        so no ``StartTime`` filter matches it (our reading of "empty if the call has not yet been dialed").
        """
        wanted = {key: query[key] for key in ("To", "From", "ParentCallSid", "Status") if key in query}
        field_of = {"To": "to", "From": "from", "ParentCallSid": "parent_call_sid", "Status": "status"}
        found = []
        for resource in reversed(list(self._resources.values())):
            if any(resource.get(field_of[key]) != value for key, value in wanted.items()):
                continue
            if all(
                _time_matches(resource.get(field), query.get(f"{name}{op}"), op)
                for name, field in (("StartTime", "start_time"), ("EndTime", "end_time"))
                for op in ("", "<", ">")
            ):
                found.append(resource)
        return found

    def recording_url(self, recording_sid: str) -> str:
        return f"{self.url}/{API_VERSION}/Accounts/{self.account_sid}/Recordings/{recording_sid}"

    def add_recording(self, recording_sid: str, data: bytes, *, content_type: str = "audio/mpeg") -> str:
        """Serve ``data`` at the recording's URL (plain, ``.mp3``, ``.wav``); returns the ``RecordingUrl``."""
        extension = ".wav" if "wav" in content_type else ".mp3"
        return self._store_recording(recording_sid, {extension: (data, content_type)})

    def _store_recording(self, recording_sid: str, media: dict[str, tuple[bytes, str]]) -> str:
        self._recordings[recording_sid] = dict(media)
        return self.recording_url(recording_sid)

    # ---------------------------------------------------------------------------------- serving

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            self.unauthorized.append(str(request.url))
            return web.json_response(
                _twilio_error(401, 20003, "Authenticate"),
                status=401,
                headers={"WWW-Authenticate": 'Basic realm="Twilio API"'},
            )
        prefix = f"/{API_VERSION}/Accounts/{self.account_sid}/"
        path = request.path
        if path.startswith(prefix):
            rest = path.removeprefix(prefix)
            if rest == "Calls.json" and request.method == "POST":
                return await self._create_call(request)
            if rest == "Calls.json" and request.method == "GET":
                return self._list_calls(request)
            if rest.startswith("Calls/") and rest.endswith(".json") and request.method == "GET":
                resource = self._resources.get(rest.removeprefix("Calls/").removesuffix(".json"))
                if resource is not None:
                    return web.json_response(resource)
            if rest.startswith("Recordings/") and request.method in ("GET", "HEAD"):
                return self._recording(request, rest.removeprefix("Recordings/"))
        if path.startswith(f"/{API_VERSION}/Accounts/") and not path.startswith(prefix):
            return web.json_response(_twilio_error(401, 20003, "Authenticate"), status=401)
        return web.json_response(
            _twilio_error(404, 20404, f"The requested resource {path} was not found"), status=404
        )

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            login, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return secrets.compare_digest(login, self.account_sid) and secrets.compare_digest(
            password, self.auth_token
        )

    async def _create_call(self, request: web.Request) -> web.Response:
        form = await request.post()
        params: Json = {}
        for key in form:
            values = [str(v) for v in form.getall(key)]
            params[key] = values if len(values) > 1 else values[0]
        for key in ("StatusCallbackEvent", "RecordingStatusCallbackEvent"):
            if key in params:
                params[key] = _split_events(params[key])
        record: Json = {**params, "sid": None, "http_status": 0}
        self.calls.append(record)
        try:
            status, body = self._answer_creation(params)
        finally:
            self._changed.set()
        record["http_status"] = status
        if status == 201:
            record["sid"] = body["sid"]
            self._resources[body["sid"]] = body
        self._changed.set()
        if self.answer_delay:
            await asyncio.sleep(self.answer_delay)
        return web.json_response(body, status=status)

    def _answer_creation(self, params: Json) -> tuple[int, Json]:
        for failure in self._failures:
            if failure.remaining > 0:
                failure.remaining -= 1
                return failure.status, failure.body
        if not params.get("To"):
            return 400, _twilio_error(400, 21201, "No 'To' number is specified")
        if not params.get("From"):
            return 400, _twilio_error(400, 21213, "No 'From' number is specified")
        if not (params.get("Url") or params.get("Twiml") or params.get("ApplicationSid")):
            return 400, _twilio_error(400, 21205, "Url parameter is required")
        url = params.get("Url")
        if url and not str(url).startswith(("http://", "https://")):
            return 400, _twilio_error(400, 21205, f"Url is not a valid URL: {url}")
        sid = new_sid("CA")
        now = rfc2822(datetime.now(UTC))
        base = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls/{sid}"
        return 201, {
            "account_sid": self.account_sid,
            "annotation": None,
            "answered_by": None,
            "api_version": API_VERSION,
            "caller_name": None,
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "duration": None,
            "end_time": None,
            "forwarded_from": None,
            "from": params["From"],
            "from_formatted": params["From"],
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": None,
            "price": None,
            "price_unit": "USD",
            "queue_time": "0",
            "sid": sid,
            "start_time": None,
            "status": "queued",
            "subresource_uris": {
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
                "events": f"{base}/Events.json",
            },
            "to": params["To"],
            "to_formatted": params["To"],
            "trunk_sid": None,
            "uri": f"{base}.json",
        }

    def _list_calls(self, request: web.Request) -> web.Response:
        """A page of the Calls list, in Twilio's shape (``calls`` plus the paging URIs)."""
        query = dict(request.query)
        self.listings.append(query)
        try:
            size = int(query.get("PageSize", "50"))
            page = int(query.get("Page", "0"))
            if not 1 <= size <= 1000 or page < 0:
                raise ValueError(query)
            found = self.list_calls(query)
        except ValueError:
            return web.json_response(
                _twilio_error(400, 20001, "Invalid paging or date parameter"), status=400
            )
        start = page * size
        chunk = found[start : start + size]
        path = f"/{API_VERSION}/Accounts/{self.account_sid}/Calls.json"
        kept = {key: value for key, value in query.items() if key not in ("Page", "PageSize", "PageToken")}

        def uri(number: int) -> str:
            return f"{path}?{urlencode({**kept, 'PageSize': size, 'Page': number})}"

        more = start + size < len(found)
        return web.json_response(
            {
                "calls": chunk,
                "end": start + max(len(chunk) - 1, 0),
                "first_page_uri": uri(0),
                "next_page_uri": f"{uri(page + 1)}&PageToken=PA{page + 1}" if more else None,
                "page": page,
                "page_size": size,
                "previous_page_uri": uri(page - 1) if page > 0 else None,
                "start": start,
                "uri": uri(page),
            }
        )

    def _recording(self, request: web.Request, name: str) -> web.StreamResponse:
        sid, dot, extension = name.partition(".")
        media = self._recordings.get(sid)
        if media is None or (dot and extension not in ("mp3", "wav", "json")):
            return web.json_response(
                _twilio_error(404, 20404, f"The requested resource {request.path} was not found"), status=404
            )
        if extension == "json":
            return web.json_response(
                {
                    "sid": sid,
                    "account_sid": self.account_sid,
                    "api_version": API_VERSION,
                    "status": "completed",
                }
            )
        wanted = f".{extension}" if dot else ".wav"  # "binary WAV audio format by default"
        data, content_type = media.get(wanted) or next(iter(media.values()))
        self.recording_fetches.append(str(request.url))
        return web.Response(body=data, content_type=content_type)


async def running_rest_server(**kwargs: Any) -> AsyncIterator[TwilioRestServer]:
    """Fixture body: ``async for server in running_rest_server(): yield server``."""
    server = TwilioRestServer(**kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


__all__ = [
    "API_VERSION",
    "DEFAULT_ACCOUNT_SID",
    "DEFAULT_AUTH_TOKEN",
    "DialTarget",
    "HttpAnswer",
    "InboundCall",
    "OutboundCall",
    "PendingRequest",
    "Recording",
    "SentRequest",
    "SimulatedCall",
    "TwilioRestServer",
    "TwilioSimulator",
    "new_sid",
    "rfc2822",
    "running_rest_server",
    "silent_mp3",
    "silent_wav",
]
