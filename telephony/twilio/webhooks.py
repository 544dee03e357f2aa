"""Twilio's webhooks: check the signature, parse the form into a call event (`parse`), hand it
to one method of `crm.services.telephony.Telephony`, answer TwiML (`twiml`).

Nothing slow happens here (Telegram, mail, recordings go through the outbox): Twilio gives up
after 15 s and plays an error to the caller. Every answer is TwiML, even to status callbacks.
`gateway/app.py` mounts `routes`; the gateway's error format, form reader and app keys come from
`gateway` (`gateway.http`, `gateway.keys`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import cast

from aiohttp import web
from multidict import MultiDictProxy

from crm.domain.text import storable
from crm.services.telephony import Telephony
from gateway.http import error_response, read_form
from gateway.keys import SETTINGS, TELEPHONY
from telephony.twilio import parse, twiml
from telephony.twilio.parse import BadParameter
from telephony.twilio.signature import is_from_twilio, public_request_url

log = logging.getLogger("gateway.twilio")
routes = web.RouteTableDef()
BASE = twiml.BASE
FORM_TYPES = ("application/x-www-form-urlencoded", "")  # how Twilio posts its parameters


def _xml(body: str) -> web.Response:
    return web.Response(text=body, content_type="text/xml")


async def _verified_form(request: web.Request) -> Mapping[str, str] | web.Response:
    """The request's parameters when it is really Twilio's, or the error response to give.
    Values are made `storable` once the signature (over the values as sent) is checked."""
    settings = request.app[SETTINGS]
    if not (settings.twilio_account_sid and settings.twilio_auth_token):
        return error_response(
            503,
            "twilio_off",
            "Twilio is not configured: set CRM_TWILIO_ACCOUNT_SID and CRM_TWILIO_AUTH_TOKEN",
        )
    url = public_request_url(settings.public_url, request.path_qs)
    signature = request.headers.get("X-Twilio-Signature")
    if request.content_type == "application/json":
        body = (await request.read()).decode("utf-8", "replace")
        if not is_from_twilio(settings.twilio_auth_token, url, body, signature):
            return _forged(request)
        return dict(request.query)
    if request.content_type not in FORM_TYPES:
        return error_response(
            415, "unsupported_media_type", "Twilio posts its parameters as application/x-www-form-urlencoded"
        )
    # A url-encoded form holds text only (files come in multipart bodies, refused above).
    form = cast("MultiDictProxy[str]", await read_form(request))
    if not is_from_twilio(settings.twilio_auth_token, url, form, signature):
        return _forged(request)
    return {k: storable(v) for k, v in form.items()}


def _forged(request: web.Request) -> web.Response:
    log.warning(
        "refused a request to %s without a valid Twilio signature from %s", request.path, request.remote
    )
    return error_response(403, "forbidden", "the X-Twilio-Signature does not match this request")


def _telephony(request: web.Request) -> Telephony:
    return request.app[TELEPHONY]


def _now(request: web.Request) -> datetime:
    return _telephony(request).clock.now()


def _refused(exc: BadParameter) -> web.Response:
    return error_response(400, exc.code, str(exc))


Form = Mapping[str, str]
TwilioHandler = Callable[[web.Request, Form], Awaitable[web.Response]]


def twilio_webhook(path: str) -> Callable[[TwilioHandler], TwilioHandler]:
    """Route `POST {BASE}/{path}` to a handler that only ever sees verified Twilio parameters;
    a parameter Twilio always sends but this request lacks (or one it never sends like that) is a
    400 naming it."""

    def register(handler: TwilioHandler) -> TwilioHandler:
        async def endpoint(request: web.Request) -> web.Response:
            form = await _verified_form(request)
            if isinstance(form, web.Response):
                return form
            try:
                return await handler(request, form)
            except BadParameter as exc:
                return _refused(exc)

        routes.post(f"{BASE}/{path}")(endpoint)
        return handler

    return register


@twilio_webhook("voice")
async def voice(request: web.Request, form: Form) -> web.Response:
    """A call comes in: find or create the caller, log the call, ring the right agents."""
    plan = await _telephony(request).started(parse.call_started(form, _now(request)))
    return _xml(twiml.ring(plan, request.app[SETTINGS].public_url))


@twilio_webhook("answered")
async def answered(request: web.Request, form: Form) -> web.Response:
    """An agent's leg picked up (Twilio fetches this before bridging): pop their card."""
    agent = parse.agent_ref(request.query)
    event = parse.agent_answered(form, agent, _now(request), parse.call_ref(request.query))
    await _telephony(request).agent_answered(event)
    return _xml(twiml.empty())


@twilio_webhook("leg")
async def leg(request: web.Request, form: Form) -> web.Response:
    """Progress of one agent's leg (`twiml.LEG_EVENTS`): remember its id; an answer is an answer."""
    agent = parse.agent_ref(request.query)
    event = parse.leg_progress(form, agent, _now(request), parse.call_ref(request.query))
    await _telephony(request).leg_progress(event)
    return _xml(twiml.empty())


@twilio_webhook("dial")
async def dial(request: web.Request, form: Form) -> web.Response:
    """The ringing ended: hang up after a conversation, offer voicemail when nobody took it."""
    event = parse.dial_ended(form, _now(request), call_id=parse.call_ref(request.query))
    voicemail_for = await _telephony(request).dial_ended(event)
    if voicemail_for is None:
        return _xml(twiml.hang_up())
    return _xml(twiml.voicemail(request.app[SETTINGS].public_url, voicemail_for))


@twilio_webhook("voicemail")
async def voicemail(request: web.Request, form: Form) -> web.Response:
    """The caller finished a voicemail (<Record> action)."""
    return await _recording(request, form, voicemail=True)


@twilio_webhook("recording")
async def recording(request: web.Request, form: Form) -> web.Response:
    """A recording is ready (recordingStatusCallback): of the call, or of a voicemail."""
    return await _recording(request, form, voicemail=request.query.get("voicemail") == "1")


async def _recording(request: web.Request, form: Form, *, voicemail: bool) -> web.Response:
    call_id = parse.call_ref(request.query)
    event = parse.recording(form, voicemail=voicemail, at=_now(request), call_id=call_id)
    if event is not None:
        await _telephony(request).recording_ready(event)
    return _xml(twiml.hang_up())


@twilio_webhook("status")
async def status(request: web.Request, form: Form) -> web.Response:
    """The call's status changed (the number's status callback, or ours for click-to-call)."""
    event = parse.call_ended(form, _now(request), call_id=parse.call_ref(request.query))
    if event is not None:
        await _telephony(request).ended(event)
    return _xml(twiml.empty())


@twilio_webhook("outbound")
async def outbound(request: web.Request, form: Form) -> web.Response:
    """Click-to-call: the agent picked up; pop their card and dial the client."""
    call_id = parse.call_ref(request.query)
    event = parse.outbound_answered(form, call_id, _now(request))
    to_number = await _telephony(request).outbound_answered(event)
    if to_number is None:
        return _xml(twiml.unavailable("This call is no longer available."))
    settings = request.app[SETTINGS]
    return _xml(
        twiml.connect_client(settings.public_url, event.call_id, to_number, settings.twilio_caller_id or "")
    )
