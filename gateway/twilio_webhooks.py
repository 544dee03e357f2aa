"""Twilio's webhooks: check the signature, turn the form into a call event, apply it, answer TwiML.

Nothing slow happens here (Telegram, mail, recordings go through the outbox): Twilio gives up
after 15 s and plays an error to the caller. Every answer is TwiML, even to status callbacks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import cast

from aiohttp import web
from multidict import MultiDictProxy
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.call_events import AgentAnswered
from crm.domain.paging import parse_id
from crm.domain.text import storable
from crm.services.call_flow import CallFlow
from gateway.http import error_response, read_form
from gateway.keys import CRM, INBOUND_CALLS, SETTINGS, STORE
from telephony.twilio import parse, twiml
from telephony.twilio.parse import MAX_SID, PROVIDER, BadParameter, MissingParameter
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


def _flow(request: web.Request) -> CallFlow:
    return request.app[CRM].calls


def _call_ref(request: web.Request) -> int | None:
    return parse_id(request.query.get("call", ""))


def _parent_sid(form: Mapping[str, str]) -> str:
    """The provider id of the call a callback is about, as the request names it (an agent's leg
    names its parent). The `call` we put in our callback URLs (`_call_ref`) is the surer key."""
    return parse.optional(form, "ParentCallSid", MAX_SID) or parse.required_sid(form, "CallSid")


def _agent_ref(request: web.Request) -> int:
    raw = request.query.get("agent", "")
    agent = parse_id(raw)
    if agent is None:
        raise BadParameter("agent", "is not an agent's id") if raw else MissingParameter("agent")
    return agent


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
    event = parse.call_started(form, request.app[CRM].clock.now())
    plan = await request.app[INBOUND_CALLS].start(event)
    return _xml(twiml.ring(plan, request.app[SETTINGS].public_url))


@twilio_webhook("answered")
async def answered(request: web.Request, form: Form) -> web.Response:
    """An agent's leg picked up (Twilio fetches this before bridging): pop their card."""
    agent = _agent_ref(request)
    now = request.app[CRM].clock.now()
    leg_sid = parse.optional(form, "CallSid", MAX_SID)
    event = AgentAnswered(PROVIDER, _parent_sid(form), agent, leg_sid, now, _call_ref(request))
    flow = _flow(request)
    await request.app[STORE].write_together(lambda s: flow.answered(s, event))
    return _xml(twiml.empty())


@twilio_webhook("leg")
async def leg(request: web.Request, form: Form) -> web.Response:
    """Progress of one agent's leg (`twiml.LEG_EVENTS`): remember its id; an answer is an answer."""
    agent = _agent_ref(request)
    leg_sid = parse.required_sid(form, "CallSid")
    sid = _parent_sid(form)
    call_id = _call_ref(request)
    flow = _flow(request)
    now = request.app[CRM].clock.now()
    answer = form.get("CallStatus") == "in-progress"

    async def apply(s: AsyncSession) -> None:
        await flow.leg_seen(s, PROVIDER, sid, agent, leg_sid, call_id=call_id)
        if answer:
            await flow.answered(s, AgentAnswered(PROVIDER, sid, agent, leg_sid, now, call_id))

    await request.app[STORE].write_together(apply)
    return _xml(twiml.empty())


@twilio_webhook("dial")
async def dial(request: web.Request, form: Form) -> web.Response:
    """The ringing ended: hang up after a conversation, offer voicemail when nobody took it."""
    now = request.app[CRM].clock.now()
    event = parse.dial_ended(form, _parent_sid(form), now, call_id=_call_ref(request))
    flow = _flow(request)
    call = await request.app[STORE].write_together(lambda s: flow.dial_ended(s, event))
    if call is None or event.outcome == "answered" or call.direction == "outbound":
        return _xml(twiml.hang_up())
    return _xml(twiml.voicemail(request.app[SETTINGS].public_url, call.id))


@twilio_webhook("voicemail")
async def voicemail(request: web.Request, form: Form) -> web.Response:
    """The caller finished a voicemail (<Record> action)."""
    return await _recording(request, form, voicemail=True)


@twilio_webhook("recording")
async def recording(request: web.Request, form: Form) -> web.Response:
    """A recording is ready (recordingStatusCallback): of the call, or of a voicemail."""
    return await _recording(request, form, voicemail=request.query.get("voicemail") == "1")


async def _recording(request: web.Request, form: Form, *, voicemail: bool) -> web.Response:
    now = request.app[CRM].clock.now()
    event = parse.recording(form, _parent_sid(form), voicemail=voicemail, at=now, call_id=_call_ref(request))
    if event is not None:
        flow = _flow(request)
        await request.app[STORE].write_together(lambda s: flow.recording(s, event))
    return _xml(twiml.hang_up())


@twilio_webhook("status")
async def status(request: web.Request, form: Form) -> web.Response:
    """The call's status changed (the number's status callback, or ours for click-to-call)."""
    call_id = _call_ref(request)
    event = parse.call_ended(form, request.app[CRM].clock.now(), call_id=call_id)
    if event is None:
        return _xml(twiml.empty())
    ended = event
    flow = _flow(request)

    async def apply(s: AsyncSession) -> None:
        if call_id is not None:
            await flow.outbound_placed(s, call_id, ended.provider_call_id)
        await flow.ended(s, ended)

    await request.app[STORE].write_together(apply)
    return _xml(twiml.empty())


@twilio_webhook("outbound")
async def outbound(request: web.Request, form: Form) -> web.Response:
    """Click-to-call: the agent picked up; pop their card and dial the client."""
    call_id = _call_ref(request)
    sid = parse.optional(form, "CallSid", MAX_SID)
    if call_id is None or not sid:
        raise MissingParameter("CallSid" if not sid else "call")
    flow = _flow(request)
    settings = request.app[SETTINGS]
    async with request.app[STORE].session() as s:
        await flow.outbound_placed(s, call_id, sid)
        call = await flow.by_id(s, call_id)
        leg = await flow.agent_leg(s, call_id)
        if call is None or leg is None or call.to_number is None:
            return _xml(twiml.unavailable("This call is no longer available."))
        await flow.answered(
            s, AgentAnswered(PROVIDER, call.provider_call_id, leg.agent_id, sid, request.app[CRM].clock.now())
        )
        to_number = call.to_number
    return _xml(
        twiml.connect_client(settings.public_url, call_id, to_number, settings.twilio_caller_id or "")
    )
