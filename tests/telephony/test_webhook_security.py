"""Only Twilio may drive calls: forged or unsigned requests are refused and change nothing;
broken ones get a clear error; unknown calls are logged and answered calmly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from crm.models import Call, Client
from gateway.app import create_app
from gateway.settings import Settings
from tests.fakes.twilio import TwilioSimulator
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
