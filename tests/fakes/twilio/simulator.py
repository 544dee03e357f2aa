"""The Twilio simulator: places inbound calls and acts on calls created through the REST API, reading the
TwiML the gateway answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import aiohttp

from tests.fakes.twilio.calls import InboundCall, OutboundCall, SimulatedCall
from tests.fakes.twilio.model import (
    API_VERSION,
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    TWIML_CONTENT_TYPES,
    HttpAnswer,
    Params,
    Recording,
    _Leg,
    _split_events,
    new_sid,
)
from tests.fakes.twilio.recordings import silent_mp3, silent_wav
from tests.fakes.twilio.rest_server import TwilioRestServer
from tests.fakes.twilio.signing import SignedPoster


class TwilioSimulator(SignedPoster):
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
        super().__init__(
            base_url=base_url, auth_token=auth_token, http=http, fail_on_http_error=fail_on_http_error
        )
        self.account_sid = account_sid
        self.voice_url = self.base_url + voice_path
        self.status_url = self.base_url + status_path if status_path else None
        self.rest = rest
        self.clock = clock or (lambda: datetime.now(UTC))
        self.calls: list[SimulatedCall] = []
        self._sequences: dict[str, int] = {}

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

    # ---------------------------------------------------------------------------------- internals

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
