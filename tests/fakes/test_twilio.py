"""The Twilio simulator and REST stand-in, checked against a tiny webhook app and Twilio's own library.

The app below is what a gateway's Twilio handlers look like at their simplest: it refuses requests whose
``X-Twilio-Signature`` does not validate with ``twilio.request_validator.RequestValidator`` (403) and answers
TwiML built with ``twilio.twiml.voice_response.VoiceResponse``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import wave
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.voice_response import Dial, Record, VoiceResponse

from tests.fakes.twilio import TwilioRestServer, TwilioSimulator, running_rest_server

ACCOUNT_SID = "AC" + "a1" * 16
AUTH_TOKEN = "f00dfeed" * 4
COMPANY = "+14155550000"
CALLER = "+14155550100"
ALICE = "+14155550001"
BOB = "+14155550002"
VOICE = "/webhooks/twilio/voice"
ALL_EVENTS = "initiated ringing answered completed"

Producer = Callable[[dict[str, str]], str | None]


@dataclass
class Hit:
    """One request the app accepted."""

    path: str
    query: dict[str, str]
    params: dict[str, str]
    token: str

    @property
    def agent(self) -> str:
        return self.query.get("agent", "")


@dataclass
class FakeGateway:
    """Answers Twilio's webhooks with fixed TwiML, after checking the signature."""

    validator: RequestValidator = field(default_factory=lambda: RequestValidator(AUTH_TOKEN))
    hits: list[Hit] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    routes: dict[str, Producer] = field(default_factory=dict)
    content_type: str = "text/xml"
    url: str = ""

    def paths(self) -> list[str]:
        return [hit.path.removeprefix("/webhooks/twilio/") for hit in self.hits]

    def at(self, path: str) -> list[Hit]:
        return [hit for hit in self.hits if hit.path == f"/webhooks/twilio/{path}"]

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        params = {key: str(value) for key, value in form.items()}
        signature = request.headers.get("X-Twilio-Signature", "")
        if not self.validator.validate(str(request.url), params, signature):
            self.refused.append(str(request.url))
            return web.Response(status=403, text="bad signature")
        merged = {**dict(request.query), **params}
        token = request.headers.get("I-Twilio-Idempotency-Token", "")
        self.hits.append(Hit(request.path, dict(request.query), merged, token))
        producer = self.routes.get(request.path.removeprefix("/webhooks/twilio/"))
        if producer is None:
            return web.Response(status=204)
        twiml = producer(merged)
        if twiml is None:
            return web.Response(status=204)
        return web.Response(text=twiml, content_type=self.content_type)


def ring_both(params: dict[str, str]) -> str:
    response = VoiceResponse()
    dial = Dial(
        action="/webhooks/twilio/dial-action?call=first",
        timeout=20,
        record="record-from-answer",
        recording_status_callback="/webhooks/twilio/recording",
        answer_on_bridge=True,
    )
    for agent, number in (("1", ALICE), ("2", BOB)):
        dial.number(
            number,
            url=f"/webhooks/twilio/screen?agent={agent}",
            status_callback=f"/webhooks/twilio/leg-status?agent={agent}",
            status_callback_event=ALL_EVENTS,
        )
    response.append(dial)
    return str(response)


def after_dial(params: dict[str, str]) -> str:
    response = VoiceResponse()
    if params["DialCallStatus"] == "completed":
        response.hangup()
        return str(response)
    response.say("Nobody can take your call. Please leave a message after the beep.")
    response.append(
        Record(
            action="/webhooks/twilio/voicemail",
            max_length=120,
            play_beep=True,
            timeout=5,
            recording_status_callback="/webhooks/twilio/recording",
        )
    )
    return str(response)


def whisper(params: dict[str, str]) -> str:
    response = VoiceResponse()
    response.say("Call from the CRM")
    return str(response)


def empty(params: dict[str, str]) -> str:
    return str(VoiceResponse())


@pytest.fixture
async def gateway() -> AsyncIterator[FakeGateway]:
    app_state = FakeGateway(
        routes={
            "voice": ring_both,
            "dial-action": after_dial,
            "screen": whisper,
            "voicemail": empty,
        }
    )
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", app_state.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app_state.url = f"http://127.0.0.1:{site.port}"
    yield app_state
    await runner.cleanup()


@pytest.fixture
async def rest() -> AsyncIterator[TwilioRestServer]:
    async for server in running_rest_server(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN):
        yield server


@pytest.fixture
async def twilio(gateway: FakeGateway, rest: TwilioRestServer) -> AsyncIterator[TwilioSimulator]:
    async with TwilioSimulator(
        base_url=gateway.url, account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, rest=rest
    ) as simulator:
        yield simulator


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def basic(login: str = ACCOUNT_SID, password: str = AUTH_TOKEN) -> dict[str, str]:
    """HTTP basic auth headers (aiohttp 3.14 deprecates ``auth=BasicAuth(...)``)."""
    return {"Authorization": aiohttp.encode_basic_auth(login, password)}


def summary(hits: list[Hit]) -> list[tuple[str, str, str]]:
    """(path, agent, status) per hit: the story of a call as the gateway saw it."""
    return [
        (
            hit.path.removeprefix("/webhooks/twilio/"),
            hit.agent,
            hit.params.get("DialCallStatus") or hit.params.get("RecordingStatus") or hit.params["CallStatus"],
        )
        for hit in hits
    ]


# -------------------------------------------------------------------------------------------- signatures


async def test_inbound_posts_the_standard_parameters_and_reads_the_twiml(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER, to=COMPANY, CallerName="ADA LOVELACE")

    assert [hit.path for hit in gateway.hits] == [VOICE]
    params = gateway.hits[0].params
    assert params == {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call.sid,
        "CallStatus": "ringing",
        "Called": COMPANY,
        "Caller": CALLER,
        "Direction": "inbound",
        "From": CALLER,
        "To": COMPANY,
        "CallerName": "ADA LOVELACE",
    }
    assert call.sid.startswith("CA") and len(call.sid) == 34
    assert call.twiml.tag == "Response" and call.twiml[0].tag == "Dial"
    assert call.state == "dial"
    assert call.last_response is not None and call.last_response.status == 200


async def test_every_request_validates_with_twilios_validator(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)
    await call.answer(by=BOB)

    validator = RequestValidator(AUTH_TOKEN)
    assert gateway.refused == []
    assert len(twilio.log) == len(gateway.hits) == 12
    for entry in twilio.log:
        assert entry.signature is not None
        assert validator.validate(entry.url, entry.params, entry.signature), entry.url
    assert any("?call=first" in entry.url for entry in twilio.log)  # the query string is signed too
    assert len({entry.token for entry in twilio.log}) == len(twilio.log)


async def test_forged_and_unsigned_requests_are_refused(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    params = twilio.inbound_params(from_=CALLER)

    assert (await twilio.post_signed(VOICE, params))[0] == 200
    assert (await twilio.post_signed(VOICE, params, signature="Zm9yZ2Vk"))[0] == 403
    assert (await twilio.post_signed(VOICE, params, signature=""))[0] == 403
    # Signed for another URL (the query string left out): refused.
    action = f"{gateway.url}/webhooks/twilio/dial-action?call=first"
    wrong = twilio.sign(f"{gateway.url}/webhooks/twilio/dial-action", params)
    assert (await twilio.post_signed(action, params, signature=wrong))[0] == 403
    # Signed for other parameters: refused.
    tampered = {**params, "From": "+19005550199"}
    signed_for_original = twilio.sign(gateway.url + VOICE, params)
    assert (await twilio.post_signed(VOICE, tampered, signature=signed_for_original))[0] == 403
    assert len(gateway.refused) == 4


# ------------------------------------------------------------------------------------------------ answer


async def test_dial_targets_are_read_and_resolved_against_the_document(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)

    alice, bob = call.dial_targets()
    assert (alice.kind, alice.value, alice.to) == ("number", ALICE, ALICE)
    assert alice.url == f"{gateway.url}/webhooks/twilio/screen?agent=1"
    assert alice.status_callback == f"{gateway.url}/webhooks/twilio/leg-status?agent=1"
    assert alice.events == ("initiated", "ringing", "answered", "completed")
    assert bob.value == BOB and bob.url is not None and bob.url.endswith("agent=2")


async def test_answer_sends_the_callbacks_in_twilios_order(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)
    await call.answer(by=BOB, talk_seconds=95)

    assert summary(gateway.hits[1:]) == [
        ("leg-status", "1", "initiated"),
        ("leg-status", "2", "initiated"),
        ("leg-status", "1", "ringing"),
        ("leg-status", "2", "ringing"),
        ("leg-status", "2", "in-progress"),  # the `answered` event
        ("leg-status", "1", "canceled"),  # the other phone stops ringing
        ("screen", "2", "in-progress"),  # whisper to Bob before the parties are connected
        ("leg-status", "2", "completed"),
        ("dial-action", "", "completed"),
        ("status", "", "completed"),  # the number's "call status changes" webhook
        ("recording", "", "completed"),
    ]
    assert call.ended and call.status == "completed"
    assert call.callee_heard == ["Call from the CRM"]


async def test_answer_parameters_follow_twilios_reference(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer
) -> None:
    call = await twilio.inbound(from_=CALLER, to=COMPANY)
    await call.answer(by=BOB, talk_seconds=95, ring_seconds=4)

    legs = gateway.at("leg-status")
    alice_sid, bob_sid = legs[0].params["CallSid"], legs[1].params["CallSid"]
    assert alice_sid != bob_sid and call.child_sids == [alice_sid, bob_sid]
    for hit in legs:
        assert hit.params["ParentCallSid"] == call.sid
        assert hit.params["Direction"] == "outbound-dial"
        assert hit.params["From"] == CALLER  # no callerId on <Dial>: the caller's number
        assert hit.params["To"] == (ALICE if hit.agent == "1" else BOB)
        assert hit.params["CallbackSource"] == "call-progress-events"
        assert parsedate_to_datetime(hit.params["Timestamp"]).tzinfo is not None
    assert [hit.params["SequenceNumber"] for hit in legs if hit.agent == "2"] == ["0", "1", "2", "3"]
    assert [hit.params["SequenceNumber"] for hit in legs if hit.agent == "1"] == ["0", "1", "2"]

    bob_done = [hit.params for hit in legs if hit.agent == "2"][-1]
    assert bob_done["CallStatus"] == "completed"
    assert (bob_done["CallDuration"], bob_done["Duration"]) == ("95", "2")
    recording = call.recordings[0]
    assert bob_done["RecordingSid"] == recording.sid and bob_done["RecordingUrl"] == recording.url
    assert recording.url == f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording.sid}"

    (action,) = gateway.at("dial-action")
    assert action.query == {"call": "first"}
    assert action.params["CallSid"] == call.sid and action.params["CallStatus"] == "in-progress"
    assert action.params["DialCallSid"] == bob_sid
    assert (action.params["DialCallDuration"], action.params["DialBridged"]) == ("95", "true")
    assert (action.params["RecordingUrl"], action.params["RecordingDuration"]) == (recording.url, "95")

    (status,) = gateway.at("status")
    assert status.params["CallSid"] == call.sid and "ParentCallSid" not in status.params
    # answerOnBridge: the caller's call is answered when Bob's leg is bridged, 4 + 1 ring seconds in.
    assert (status.params["CallDuration"], status.params["SequenceNumber"]) == ("95", "0")

    (recording_status,) = gateway.at("recording")
    assert recording_status.params == {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call.sid,
        "RecordingSid": recording.sid,
        "RecordingUrl": recording.url,
        "RecordingStatus": "completed",
        "RecordingDuration": "95",
        "RecordingChannels": "1",
        "RecordingSource": "DialVerb",
        "RecordingStartTime": recording_status.params["RecordingStartTime"],
    }


async def test_the_answering_agent_can_be_named_many_ways(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    by_predicate = await twilio.inbound(from_=CALLER)
    await by_predicate.answer(by=lambda target: target.value == ALICE)
    by_agent = await twilio.inbound(from_=CALLER)
    await by_agent.answer(by=SimpleNamespace(name="Bob", phone="(415) 555-0002", sip=None))

    answered = [hit.agent for hit in gateway.at("leg-status") if hit.params["CallStatus"] == "in-progress"]
    assert answered == ["1", "2"]
    nobody = await twilio.inbound(from_=CALLER)
    with pytest.raises(AssertionError, match=r"no dialed endpoint matches '\+19995550000'"):
        await nobody.answer(by="+19995550000")


async def test_sip_and_client_nouns_ring_as_twilio_reports_them(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    def ring_endpoints(params: dict[str, str]) -> str:
        response = VoiceResponse()
        dial = Dial(caller_id=COMPANY)
        dial.sip(
            "sip:bob@pbx.example.com;transport=tls", status_callback="/webhooks/twilio/leg-status?agent=sip"
        )
        dial.client("carol", status_callback="/webhooks/twilio/leg-status?agent=client")
        response.append(dial)
        response.say("Goodbye")
        return str(response)

    gateway.routes["voice"] = ring_endpoints
    call = await twilio.inbound(from_=CALLER)
    sip, client = call.dial_targets()
    assert (sip.kind, client.kind, client.to) == ("sip", "client", "client:carol")
    assert sip.events == client.events == ("completed",)  # statusCallback without events: completed only

    await call.answer(by="client:carol", talk_seconds=12)

    assert summary(gateway.hits[1:]) == [
        ("leg-status", "sip", "canceled"),
        ("leg-status", "client", "completed"),
        ("status", "", "completed"),  # no action: Twilio goes on with <Say>, then the document ends
    ]
    client_done = gateway.at("leg-status")[1].params
    assert (client_done["To"], client_done["From"]) == ("client:carol", COMPANY)
    assert call.heard == ["Goodbye"]
    assert call.recordings == []  # <Dial> did not ask for a recording


async def test_a_callee_who_hangs_up_in_the_screening_declines_the_call(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    gateway.routes["screen"] = lambda params: "<Response><Say>Press nothing</Say><Hangup/></Response>"
    call = await twilio.inbound(from_=CALLER)
    await call.answer(by=ALICE)

    (action,) = gateway.at("dial-action")
    assert (action.params["DialCallStatus"], action.params["DialBridged"]) == ("no-answer", "false")
    assert "RecordingUrl" not in action.params
    assert call.state == "record"  # the gateway's no-answer TwiML asks for a voicemail


# ------------------------------------------------------------------------------------- unanswered calls


async def test_no_answer_then_a_voicemail(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    call = await twilio.inbound(from_=CALLER)
    await call.no_answer()

    assert summary(gateway.hits[1:]) == [
        ("leg-status", "1", "initiated"),
        ("leg-status", "2", "initiated"),
        ("leg-status", "1", "ringing"),
        ("leg-status", "2", "ringing"),
        ("leg-status", "1", "no-answer"),
        ("leg-status", "2", "no-answer"),
        ("dial-action", "", "no-answer"),
    ]
    assert gateway.at("leg-status")[-1].params["SipResponseCode"] == "487"
    assert call.state == "record"
    assert call.heard == ["Nobody can take your call. Please leave a message after the beep."]
    gateway.hits.clear()

    recording = await call.leave_voicemail(seconds=12)

    assert summary(gateway.hits) == [
        ("voicemail", "", "completed"),
        ("status", "", "completed"),
        ("recording", "", "completed"),
    ]
    voicemail = gateway.at("voicemail")[0].params
    assert voicemail["Digits"] == "hangup"
    assert (voicemail["RecordingSid"], voicemail["RecordingDuration"]) == (recording.sid, "12")
    assert gateway.at("recording")[0].params["RecordingSource"] == "RecordVerb"
    assert call.ended and call.status == "completed"

    async with http.get(voicemail["RecordingUrl"], headers=basic()) as response:
        assert (response.status, response.content_type) == (200, "audio/wav")
        audio = await response.read()
    with wave.open(io.BytesIO(audio)) as wav:
        assert wav.getnchannels() == 1 and wav.getnframes() > 0
    async with http.get(voicemail["RecordingUrl"] + ".mp3", headers=basic()) as response:
        assert (response.status, response.content_type) == (200, "audio/mpeg")
        assert (await response.read())[:2] == b"\xff\xfb"
    assert rest.recording_fetches == [voicemail["RecordingUrl"], voicemail["RecordingUrl"] + ".mp3"]


@pytest.mark.parametrize(("outcome", "sip_code"), [("busy", "486"), ("fail", "404")])
async def test_busy_and_failed_dials(
    twilio: TwilioSimulator, gateway: FakeGateway, outcome: str, sip_code: str
) -> None:
    call = await twilio.inbound(from_=CALLER)
    await getattr(call, outcome)()

    status = "busy" if outcome == "busy" else "failed"
    assert summary(gateway.hits[1:]) == [
        ("leg-status", "1", "initiated"),
        ("leg-status", "2", "initiated"),
        ("leg-status", "1", status),
        ("leg-status", "2", status),
        ("dial-action", "", status),
    ]
    assert gateway.at("leg-status")[-1].params["SipResponseCode"] == sip_code


async def test_the_caller_hangs_up_while_the_agents_ring(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)
    await call.caller_hangs_up()

    assert summary(gateway.hits[5:]) == [
        ("leg-status", "1", "canceled"),
        ("leg-status", "2", "canceled"),
        ("dial-action", "", "canceled"),
        ("status", "", "no-answer"),  # answerOnBridge: the caller's call was never answered
    ]
    assert gateway.at("dial-action")[0].params["CallStatus"] == "completed"
    assert gateway.at("status")[0].params["CallDuration"] == "0"
    assert call.ended


# ---------------------------------------------------------------------------------------------- ordering


async def test_held_callbacks_are_released_reversed_and_twice(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)
    twilio.hold_callbacks()
    await call.answer(by=ALICE)

    assert [hit.path for hit in gateway.hits] == [VOICE]
    held = [request.purpose for request in twilio.held]
    assert held == ["leg-status"] * 6 + ["screen", "leg-status", "dial-action", "status", "recording-status"]

    statuses = await twilio.release("reversed", twice=True)

    twiml_answers = ("screen", "dial-action")  # these answer TwiML (200), callbacks answer 204
    assert statuses == [
        200 if purpose in twiml_answers else 204 for purpose in reversed(held) for _ in (1, 2)
    ]
    released = gateway.hits[1:]
    assert [hit.path.removeprefix("/webhooks/twilio/") for hit in released[::2]] == [
        "recording",
        "status",
        "dial-action",
        "leg-status",
        "screen",
        *["leg-status"] * 6,
    ]
    for first, again in zip(released[::2], released[1::2], strict=True):
        assert (first.path, first.query, first.params, first.token) == (
            again.path,
            again.query,
            again.params,
            again.token,
        )
    assert [hit.params["SequenceNumber"] for hit in released[-12::2]] == ["2", "2", "1", "1", "0", "0"]
    assert call.ended and twilio.held == []


async def test_a_held_action_hands_its_twiml_over_when_released(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    call = await twilio.inbound(from_=CALLER)
    twilio.hold_callbacks()
    await call.no_answer()
    assert str(call.state) == "awaiting"  # (str: mypy would keep the narrowed state past the await)

    statuses = await twilio.release("shuffled", seed=7)

    assert sorted(statuses) == [200] + [204] * 6
    assert call.state == "record"
    await call.leave_voicemail(seconds=3)
    assert gateway.paths()[-3:] == ["voicemail", "status", "recording"]


async def test_replay_last_repeats_the_request_exactly(twilio: TwilioSimulator, gateway: FakeGateway) -> None:
    call = await twilio.inbound(from_=CALLER)
    await call.no_answer()

    assert await twilio.replay_last() == 200
    original, retry = twilio.log[-2], twilio.log[-1]
    assert (retry.url, retry.params, retry.signature, retry.token) == (
        original.url,
        original.params,
        original.signature,
        original.token,
    )
    assert gateway.hits[-1].params == gateway.hits[-2].params
    assert gateway.hits[-1].token == gateway.hits[-2].token


# ------------------------------------------------------------------------------------------------- TwiML


async def test_redirects_are_followed_and_unknown_verbs_reported(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    gateway.routes["voice"] = lambda params: (
        "<Response><Say>One moment</Say><Redirect>next?step=2</Redirect></Response>"
    )
    gateway.routes["next"] = lambda params: "<Response><Gather numDigits='1'/></Response>"

    call = await twilio.inbound(from_=CALLER)
    assert call.state == "running" and call.heard == ["One moment"]
    with pytest.raises(AssertionError, match="<Gather> is not supported"):
        await call.proceed()
    assert gateway.at("next")[0].query == {"step": "2"}  # resolved against the voice URL


async def test_twiml_must_come_as_xml(twilio: TwilioSimulator, gateway: FakeGateway) -> None:
    gateway.content_type = "text/plain"
    with pytest.raises(AssertionError, match="text/xml or application/xml"):
        await twilio.inbound(from_=CALLER)


async def test_a_hangup_ends_the_call_and_reports_it(twilio: TwilioSimulator, gateway: FakeGateway) -> None:
    gateway.routes["voice"] = lambda params: (
        "<Response><Say>We are closed</Say><Pause length='2'/><Hangup/></Response>"
    )
    call = await twilio.inbound(from_=CALLER)
    assert gateway.paths() == ["voice"]  # nothing happens until the test says so

    await call.proceed()

    assert gateway.paths() == ["voice", "status"]
    assert gateway.at("status")[0].params["CallDuration"] == "2"


async def test_get_callbacks_carry_and_sign_the_query_string(
    twilio: TwilioSimulator, gateway: FakeGateway
) -> None:
    def ring_alice(params: dict[str, str]) -> str:
        response = VoiceResponse()
        dial = Dial(action="/webhooks/twilio/dial-action", method="GET")
        dial.number(
            ALICE, status_callback="/webhooks/twilio/leg-status?agent=1", status_callback_method="GET"
        )
        response.append(dial)
        return str(response)

    gateway.routes["voice"] = ring_alice
    call = await twilio.inbound(from_=CALLER)
    await call.answer(by=ALICE, talk_seconds=5)

    assert gateway.refused == []
    leg = gateway.at("leg-status")[0]
    assert leg.query["agent"] == "1" and leg.query["CallStatus"] == "completed"
    assert [entry.method for entry in twilio.sent("dial-action")] == ["GET"]


# ------------------------------------------------------------------------------------------ REST server


async def test_calls_json_needs_the_accounts_credentials(
    rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    url = f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    form = {"To": ALICE, "From": COMPANY, "Url": "https://crm.example.com/twiml"}
    for headers in ({}, basic(password="wrong"), basic(login="AC" + "0" * 32)):
        async with http.post(url, data=form, headers=headers) as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Basic")
            assert await response.json() == {
                "code": 20003,
                "message": "Authenticate",
                "more_info": "https://www.twilio.com/docs/errors/20003",
                "status": 401,
            }
    assert rest.calls == []


async def test_calls_json_creates_a_queued_call(rest: TwilioRestServer, http: aiohttp.ClientSession) -> None:
    url = f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    form = aiohttp.FormData(
        [
            ("To", ALICE),
            ("From", COMPANY),
            ("Url", "https://crm.example.com/twiml?call=7"),
            ("StatusCallback", "https://crm.example.com/status"),
            ("StatusCallbackEvent", "initiated"),
            ("StatusCallbackEvent", "answered"),
            ("StatusCallbackEvent", "completed"),
        ]
    )
    async with http.post(url, data=form, headers=basic()) as response:
        assert response.status == 201
        body = await response.json()

    assert body["sid"].startswith("CA") and len(body["sid"]) == 34
    assert (body["status"], body["direction"], body["to"], body["from"]) == (
        "queued",
        "outbound-api",
        ALICE,
        COMPANY,
    )
    assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{body['sid']}.json"
    created = await rest.next_call()
    assert created["sid"] == body["sid"] and created["http_status"] == 201
    assert created["StatusCallbackEvent"] == ["initiated", "answered", "completed"]
    async with http.get(f"{rest.url}{body['uri']}", headers=basic()) as response:
        assert (await response.json())["sid"] == body["sid"]
    with pytest.raises(AssertionError, match="no call was created"):
        await rest.next_call(timeout=0.05)


async def test_calls_json_errors_have_twilios_shape(
    rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    url = f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"

    async def create(**form: str) -> tuple[int, dict[str, Any]]:
        async with http.post(url, data=form, headers=basic()) as response:
            return response.status, await response.json()

    assert await create(From=COMPANY, Url="https://x.example/t") == (
        400,
        {
            "code": 21201,
            "message": "No 'To' number is specified",
            "more_info": "https://www.twilio.com/docs/errors/21201",
            "status": 400,
        },
    )
    assert (await create(To=ALICE, Url="https://x.example/t"))[1]["code"] == 21213
    assert (await create(To=ALICE, From=COMPANY))[1]["code"] == 21205

    rest.fail_next(2, 503)
    rest.fail_next(1, 429)
    good = {"To": ALICE, "From": COMPANY, "Url": "https://x.example/t"}
    assert [(await create(**good))[0] for _ in range(4)] == [503, 503, 429, 201]
    assert [call["http_status"] for call in rest.calls] == [400, 400, 400, 503, 503, 429, 201]
    assert len(rest.created_calls) == 1


async def test_twilios_own_client_talks_to_the_stand_in(rest: TwilioRestServer) -> None:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = rest.url

    created = await asyncio.to_thread(
        client.calls.create,
        to=BOB,
        from_=COMPANY,
        url="https://crm.example.com/twiml",
        status_callback="https://crm.example.com/status",
        status_callback_event=["initiated", "ringing", "answered", "completed"],
    )
    assert created.sid == (await rest.next_call())["sid"]
    assert created.status == "queued"

    message = "The 'To' number 12 is not a valid phone number."
    rest.fail_next(1, 400, {"code": 21211, "message": message, "more_info": "", "status": 400})
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(client.calls.create, to="12", from_=COMPANY, url="https://crm.example.com/t")
    assert (refused.value.status, refused.value.code) == (400, 21211)
    assert refused.value.msg.endswith(message)  # "Unable to create record: " + Twilio's message
    assert rest.calls[0]["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


async def test_the_calls_list_filters_pages_and_follows_the_calls_as_twilio_does(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer
) -> None:
    client = Client(ACCOUNT_SID, AUTH_TOKEN)
    client.api.base_url = rest.url

    def place(to: str) -> str:
        call = client.calls.create(to=to, from_=COMPANY, url=f"{gateway.url}/webhooks/twilio/outbound")
        return str(call.sid)

    def listed(**filters: Any) -> list[str]:
        return [str(call.sid) for call in client.calls.list(**filters)]

    first, to_bob, second = [await asyncio.to_thread(place, to) for to in (ALICE, BOB, ALICE)]
    assert await asyncio.to_thread(listed, to=ALICE, from_=COMPANY) == [second, first]  # newest first
    assert await asyncio.to_thread(listed, to=BOB) == [to_bob]
    assert await asyncio.to_thread(listed, from_=BOB) == []
    assert await asyncio.to_thread(listed, page_size=1) == [second, to_bob, first]  # pages followed
    assert rest.listings[-1] == {"PageSize": "1", "Page": "2", "PageToken": "PA2"}

    today = datetime.now(UTC).date()
    # Not dialled yet: no start time, so no StartTime filter finds them.
    assert await asyncio.to_thread(listed, status="queued") == [second, to_bob, first]
    assert await asyncio.to_thread(listed, start_time_after=today) == []
    call = await twilio.outbound_from_rest(
        next(c for c in rest.calls if c["sid"] == first), agent_answers=False
    )
    assert call.status == "no-answer"
    ended = await asyncio.to_thread(client.calls(first).fetch)
    assert (ended.status, ended.duration) == ("no-answer", "0")
    assert ended.start_time is not None and ended.end_time is not None
    assert await asyncio.to_thread(listed, start_time_after=today) == [first]
    assert await asyncio.to_thread(listed, start_time_before=today - timedelta(days=1)) == []
    assert await asyncio.to_thread(listed, status="no-answer", to=ALICE) == [first]
    # A date, as Twilio's documentation writes it (twilio-python sends a moment):
    raw = await asyncio.to_thread(
        client.request,
        "GET",
        f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json",
        {"StartTime": today.isoformat()},
    )
    assert [c["sid"] for c in json.loads(raw.text)["calls"]] == [
        first
    ]  # a date, as Twilio's documentation writes it


async def test_the_rest_server_restarts_on_the_same_port(
    rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    url = rest.url
    await rest.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url, headers=basic()):
            pass
    await rest.start()
    assert rest.url == url
    async with http.get(f"{url}/2010-04-01/Accounts/{ACCOUNT_SID}/Nothing.json", headers=basic()) as response:
        assert response.status == 404 and (await response.json())["code"] == 20404


async def test_recordings_are_served_with_basic_auth_only(
    rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    recording_url = rest.add_recording("RE" + "1" * 32, b"ID3-fake-mp3")
    assert recording_url == f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/RE{'1' * 32}"

    for headers in ({}, basic(password="nope")):
        async with http.get(recording_url + ".mp3", headers=headers) as response:
            assert response.status == 401 and (await response.json())["code"] == 20003
    for suffix in ("", ".mp3", ".wav"):
        async with http.get(recording_url + suffix, headers=basic()) as response:
            assert (response.status, await response.read()) == (200, b"ID3-fake-mp3")
            assert response.content_type == "audio/mpeg"
    async with http.get(rest.recording_url("RE" + "2" * 32) + ".mp3", headers=basic()) as response:
        assert response.status == 404 and (await response.json())["code"] == 20404
    assert len(rest.recording_fetches) == 3
    token = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    async with http.get(recording_url, headers={"Authorization": f"Basic {token}"}) as response:
        assert response.status == 200
    async with http.get(recording_url, headers={"Authorization": "Basic not-base64!"}) as response:
        assert response.status == 401


# ----------------------------------------------------------------------------------------- click-to-call


def dial_client_alice(params: dict[str, str]) -> str:
    response = VoiceResponse()
    dial = Dial(caller_id=COMPANY, action="/webhooks/twilio/dial-action?call=7", timeout=25)
    dial.number(
        CALLER,
        status_callback="/webhooks/twilio/leg-status?agent=client",
        status_callback_event=ALL_EVENTS,
    )
    response.append(dial)
    return str(response)


async def click_to_call(
    gateway: FakeGateway, rest: TwilioRestServer, http: aiohttp.ClientSession
) -> dict[str, Any]:
    """What the gateway does for "Call back": ring the agent from the company number, via the REST API."""
    form = aiohttp.FormData(
        [
            ("To", ALICE),
            ("From", COMPANY),
            ("Url", f"{gateway.url}/webhooks/twilio/outbound?call=7"),
            ("StatusCallback", f"{gateway.url}/webhooks/twilio/status?call=7"),
            *[("StatusCallbackEvent", event) for event in ALL_EVENTS.split()],
        ]
    )
    url = f"{rest.url}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json"
    async with http.post(url, data=form, headers=basic()) as response:
        assert response.status == 201
    return await rest.next_call()


async def test_click_to_call_rings_the_agent_then_the_client(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    gateway.routes["outbound"] = dial_client_alice
    rest_call = await click_to_call(gateway, rest, http)

    call = await twilio.outbound_from_rest(rest_call)

    assert summary(gateway.hits) == [
        ("status", "", "initiated"),
        ("status", "", "ringing"),
        ("status", "", "in-progress"),
        ("outbound", "", "in-progress"),
    ]
    fetch = gateway.at("outbound")[0].params
    assert (fetch["CallSid"], fetch["Direction"], fetch["From"], fetch["To"]) == (
        rest_call["sid"],
        "outbound-api",
        COMPANY,
        ALICE,
    )
    assert [hit.params["SequenceNumber"] for hit in gateway.at("status")] == ["0", "1", "2"]
    gateway.hits.clear()

    await call.answer_client(talk_seconds=40)

    assert summary(gateway.hits) == [
        ("leg-status", "client", "initiated"),
        ("leg-status", "client", "ringing"),
        ("leg-status", "client", "in-progress"),
        ("leg-status", "client", "completed"),
        ("dial-action", "", "completed"),
        ("status", "", "completed"),
    ]
    client_leg = gateway.at("leg-status")[0].params
    assert (client_leg["ParentCallSid"], client_leg["From"], client_leg["To"]) == (
        rest_call["sid"],
        COMPANY,
        CALLER,
    )
    assert gateway.at("status")[0].params["SequenceNumber"] == "3"
    assert call.ended


async def test_click_to_call_when_the_client_does_not_answer(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    gateway.routes["outbound"] = dial_client_alice
    call = await twilio.outbound_from_rest(await click_to_call(gateway, rest, http))
    await call.client_no_answer()

    assert gateway.at("dial-action")[0].params["DialCallStatus"] == "no-answer"
    assert call.state == "record"  # this app's no-answer TwiML; a real gateway would likely hang up


async def test_click_to_call_when_the_agent_does_not_answer(
    twilio: TwilioSimulator, gateway: FakeGateway, rest: TwilioRestServer, http: aiohttp.ClientSession
) -> None:
    call = await twilio.outbound_from_rest(await click_to_call(gateway, rest, http), agent_answers=False)

    assert summary(gateway.hits) == [
        ("status", "", "initiated"),
        ("status", "", "ringing"),
        ("status", "", "no-answer"),
    ]
    assert call.ended and call.status == "no-answer"
