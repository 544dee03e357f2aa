"""Only Twilio may drive calls: forged or unsigned requests are refused and change nothing;
broken ones get a clear error; unknown calls are logged and answered calmly."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

import aiohttp
from sqlalchemy import func, select

from crm.domain.models import Call, Client
from gateway.app import create_app
from gateway.settings import Settings
from tests.fakes.twilio import TwilioSimulator
from tests.gateway.raw_http import raw_request
from tests.telephony.conftest import AiohttpServer, Phones


async def _counts(phones: Phones) -> tuple[int, int]:
    async with phones.store.reading() as s:
        calls = (await s.execute(select(func.count()).select_from(Call))).scalar_one()
        clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
    return calls, clients


async def test_forged_and_unsigned_requests_get_403_and_store_nothing(phones: Phones) -> None:
    params = phones.twilio.inbound_params(from_="+14155550100")
    status, body = await phones.twilio.post_signed("/webhooks/twilio/voice", params, signature="Zm9yZ2Vk")
    assert status == 403 and "X-Twilio-Signature" in body
    status, _ = await phones.twilio.post_signed("/webhooks/twilio/voice", params, signature="")
    assert status == 403
    tampered = dict(params)
    signature = phones.twilio.sign(phones.twilio.voice_url, params)
    tampered["From"] = "+14155550199"
    status, _ = await phones.twilio.post_signed("/webhooks/twilio/voice", tampered, signature=signature)
    assert status == 403
    other_token = TwilioSimulator(base_url=phones.twilio.base_url, auth_token="somebody-elses-token")
    try:
        status, _ = await other_token.post_signed("/webhooks/twilio/voice", params)
    finally:
        await other_token.close()
    assert status == 403
    assert await _counts(phones) == (0, 0)


async def test_a_signature_for_another_url_is_refused(phones: Phones) -> None:
    params = phones.twilio.inbound_params(from_="+14155550100")
    signed_for_status = phones.twilio.sign(phones.twilio.base_url + "/webhooks/twilio/status", params)
    status, _ = await phones.twilio.post_signed("/webhooks/twilio/voice", params, signature=signed_for_status)
    assert status == 403


async def test_missing_parameters_are_named(phones: Phones) -> None:
    params = phones.twilio.inbound_params(from_="+14155550100")
    del params["CallSid"]
    status, body = await phones.twilio.post_signed("/webhooks/twilio/voice", params)
    assert status == 400 and "CallSid" in body
    status, body = await phones.twilio.post_signed("/webhooks/twilio/status", {"AccountSid": "AC1"})
    assert status == 400 and "CallStatus" in body


async def test_callbacks_for_an_unknown_call_are_answered_and_ignored(phones: Phones) -> None:
    status, _ = await phones.twilio.post_signed(
        "/webhooks/twilio/status",
        {"CallSid": "CA" + "9" * 32, "CallStatus": "completed", "CallDuration": "5"},
    )
    assert status == 200
    status, twiml = await phones.twilio.post_signed(
        "/webhooks/twilio/dial", {"CallSid": "CA" + "9" * 32, "DialCallStatus": "no-answer"}
    )
    assert status == 200 and "<Hangup" in twiml
    assert await _counts(phones) == (0, 0)


async def test_twilio_off_answers_503_with_the_variables_to_set(
    aiohttp_server: AiohttpServer, settings: Settings, clock: Any
) -> None:
    server = await aiohttp_server(create_app(settings, clock=clock))
    async with TwilioSimulator(
        base_url=str(server.make_url("")).rstrip("/"), fail_on_http_error=False
    ) as twilio:
        status, body = await twilio.post_signed(
            "/webhooks/twilio/voice", twilio.inbound_params(from_="+1415555")
        )
    assert status == 503 and "CRM_TWILIO_ACCOUNT_SID" in body


async def test_the_signature_is_checked_against_the_public_url_behind_a_proxy(
    aiohttp_server: AiohttpServer, call_settings: Settings, clock: Any
) -> None:
    """Twilio signs https://crm.example.com/…; the proxy forwards to us on plain http."""
    public = "https://crm.example.com"
    app = create_app(call_settings.model_copy(update={"public_url": public}), clock=clock)
    server = await aiohttp_server(app)
    local = str(server.make_url("")).rstrip("/")
    async with TwilioSimulator(base_url=local, fail_on_http_error=False) as twilio:
        params = twilio.inbound_params(from_="+14155550100")
        as_twilio_signed = twilio.sign(public + "/webhooks/twilio/voice", params)
        status, twiml = await twilio.post_signed("/webhooks/twilio/voice", params, signature=as_twilio_signed)
        assert status == 200 and "<Response" in twiml
        with_port = twilio.sign(public + ":443/webhooks/twilio/voice", params)
        status, _ = await twilio.post_signed("/webhooks/twilio/voice", params, signature=with_port)
        assert status == 200
        signed_for_local = twilio.sign(local + "/webhooks/twilio/voice", params)
        status, _ = await twilio.post_signed("/webhooks/twilio/voice", params, signature=signed_for_local)
        assert status == 403


# -- hostile input: each of these gave a 500 with a traceback ------------------------------------

LONG_NUMBER = "+1 415 555 0100" + "-" * 60  # a valid number spelled with 75 characters


def _twilio_paths(phones: Phones) -> list[str]:
    """Every Twilio URL the gateway serves."""
    return sorted(
        {
            r.resource.canonical
            for r in phones.server.app.router.routes()
            if r.resource is not None and r.resource.canonical.startswith("/webhooks/twilio/")
        }
    )


async def test_a_signature_that_is_not_base64_text_is_refused(phones: Phones) -> None:
    params = phones.twilio.inbound_params(from_="+14155550100")
    paths = _twilio_paths(phones)
    assert {"/webhooks/twilio/voice", "/webhooks/twilio/status", "/webhooks/twilio/answered"} <= set(paths)
    for path in paths:
        for signature in ["é", "Zm9yZ2Vk💥", "\u00ff\u00fe"]:
            status, body = await phones.twilio.post_signed(path, params, signature=signature)
            assert (status, json.loads(body)["error"]) == (403, "forbidden"), (path, signature)
        server = phones.server
        answer = await raw_request(
            server.host,
            server.port,
            b"POST " + path.encode(),
            [(b"X-Twilio-Signature", b"\xff\xfe"), (b"Content-Type", b"application/x-www-form-urlencoded")],
            b"CallSid=CA1",
        )
        assert (answer.status, answer.json()) == (
            400,
            {"error": "bad_request", "detail": "the X-Twilio-Signature header is not UTF-8 text"},
        )
    assert await _counts(phones) == (0, 0)


async def test_a_body_that_is_not_a_form_is_refused(phones: Phones) -> None:
    """Twilio posts forms: JSON (without the `bodySHA256` Twilio signs JSON with), multipart and a
    charset nobody knows are refused, and change nothing."""
    params = phones.twilio.inbound_params(from_="+14155550100")
    url = phones.twilio.voice_url
    signature = phones.twilio.sign(url, params)
    async with aiohttp.ClientSession() as http:
        async with http.post(url, json=params, headers={"X-Twilio-Signature": signature}) as response:
            assert (response.status, (await response.json())["error"]) == (403, "forbidden")
        form = aiohttp.FormData(params)
        form.add_field("file", b"RIFF", filename="a.wav")
        async with http.post(url, data=form, headers={"X-Twilio-Signature": signature}) as response:
            assert (response.status, (await response.json())["error"]) == (415, "unsupported_media_type")
        bogus = {
            "X-Twilio-Signature": signature,
            "Content-Type": "application/x-www-form-urlencoded; charset=bogus",
        }
        async with http.post(url, data=urlencode(params), headers=bogus) as response:
            assert (response.status, await response.json()) == (
                400,
                {"error": "bad_form", "detail": "the form body cannot be read: unknown encoding: bogus"},
            )
    assert await _counts(phones) == (0, 0)


async def test_values_twilio_never_sends_are_refused_by_name(phones: Phones) -> None:
    long_from = phones.twilio.inbound_params(from_=LONG_NUMBER)
    status, body = await phones.twilio.post_signed("/webhooks/twilio/voice", long_from)
    assert (status, json.loads(body)) == (
        400,
        {"error": "bad_parameter", "detail": "From is longer than 64 characters"},
    )
    long_sid = phones.twilio.inbound_params(from_="+14155550100", call_sid="CA" + "0" * 100)
    status, body = await phones.twilio.post_signed("/webhooks/twilio/voice", long_sid)
    assert (status, json.loads(body)["detail"]) == (400, "CallSid is longer than 64 characters")
    status, body = await phones.twilio.post_signed(
        f"/webhooks/twilio/answered?agent={10**25}", {"CallSid": "CA1"}
    )
    assert (status, json.loads(body)["detail"]) == (400, "agent is not an agent's id")
    assert await _counts(phones) == (0, 0)


async def test_text_no_database_can_hold_is_cleaned_from_a_call(phones: Phones) -> None:
    params = phones.twilio.inbound_params(from_="+1415555\x000100", to="+1415555\x000000")
    status, _ = await phones.twilio.post_signed("/webhooks/twilio/voice", params)
    assert status == 200
    call = await phones.call_row(params["CallSid"])
    assert (call.from_number, call.to_number) == ("+14155550100", "+14155550000")


async def test_ids_and_durations_past_their_columns_change_nothing(phones: Phones) -> None:
    """A callback naming a call id past 64 bits, an agent nobody is, or a duration past 32 bits
    (INTEGER on PostgreSQL) is answered, and nothing false is stored."""
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    for duration in ["99999999999", "9" * 25]:
        call = await phones.twilio.inbound(from_="+14155550100")
        row = await phones.call_row(call.sid)
        nobody = alice.id + 1000
        status, _ = await phones.twilio.post_signed(
            f"/webhooks/twilio/answered?agent={nobody}&call={row.id}",
            {"CallSid": "CA" + "1" * 32, "ParentCallSid": call.sid},
        )
        assert status == 200
        assert (await phones.call_row(call.sid)).agent_id is None
        status, _ = await phones.twilio.post_signed(
            f"/webhooks/twilio/answered?agent={alice.id}&call={10**25}",
            {"CallSid": "CA" + "2" * 32, "ParentCallSid": call.sid},
        )
        assert status == 200
        ended = {"CallSid": call.sid, "CallStatus": "completed", "CallDuration": duration}
        status, _ = await phones.twilio.post_signed(f"/webhooks/twilio/status?call={10**25}", ended)
        assert status == 200
        row = await phones.call_row(call.sid)
        assert (row.agent_id, row.status, row.duration_s) == (alice.id, "completed", None)
