"""What the people on a simulated call do (answer, let it ring, hang up, leave a voicemail) and the
callbacks Twilio sends for it, in the order Twilio fires them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tests.fakes.twilio.following import TwimlFollower
from tests.fakes.twilio.model import _PURE_VERBS, DialTarget, Recording, _Leg

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


class SimulatedCall(TwimlFollower):
    """A call Twilio is handling: the TwiML it is following and the legs it created.

    ``twiml`` is the current TwiML document (``<Response>``), ``doc_url`` the URL it came from (relative URLs
    in it resolve against that), ``state`` one of ``running`` (between verbs), ``dial`` (waiting at a
    ``<Dial>``), ``record`` (waiting at a ``<Record>``), ``awaiting`` (its next TwiML is in a held request)
    or ``ended``. ``heard`` lists what the caller was told (``<Say>`` texts, ``<Play>`` URLs).
    """

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
