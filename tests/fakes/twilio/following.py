"""How Twilio follows a call's TwiML between the test's steps: the verbs that need no request, redirects,
a ``<Dial>``'s nouns and legs, the status callbacks of each leg and recording, and the end of the call."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from urllib.parse import urljoin

from tests.fakes.twilio.model import (
    _NOUNS,
    _PURE_VERBS,
    _SIP_CODES,
    API_VERSION,
    CALL_EVENTS,
    DialTarget,
    HttpAnswer,
    Params,
    Purpose,
    Recording,
    _Leg,
    _minutes,
    _split_events,
    new_sid,
    rfc2822,
)

if TYPE_CHECKING:
    from tests.fakes.twilio.simulator import TwilioSimulator


class TwimlFollower:
    """A call's state and the TwiML steps Twilio takes by itself; what the people on the line do is
    mixed in on top of it (:class:`~tests.fakes.twilio.calls.SimulatedCall`)."""

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
