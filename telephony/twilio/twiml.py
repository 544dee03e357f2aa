"""Ring plans and call steps as TwiML, written with the twilio library's `VoiceResponse`.

Every callback URL named here comes back to `gateway/twilio_webhooks.py`; the note in README.md
("What the TwiML asks Twilio for") says why each one is there.
"""

from __future__ import annotations

from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from crm.call_flow import RingPlan, RingTarget

BASE = "/webhooks/twilio"
LEG_EVENTS = "initiated ringing answered completed"
VOICEMAIL_SECONDS = 120
GREETING = "Sorry, nobody can take your call right now. Please leave a message after the tone."
NOBODY = "Sorry, nobody can take your call right now. Please call again later."


def url(public_url: str, path: str, **query: object) -> str:
    full = f"{public_url.rstrip('/')}{BASE}/{path}"
    return f"{full}?{urlencode(query)}" if query else full


def ring(plan: RingPlan, public_url: str) -> str:
    """Ring every target at once; the first to answer gets the caller."""
    response = VoiceResponse()
    if not plan.targets:
        return voicemail(public_url, plan.call_id)
    dial = Dial(
        action=url(public_url, "dial", call=plan.call_id),
        method="POST",
        timeout=plan.ring_seconds,
        answer_on_bridge=True,
        record="record-from-answer-dual" if plan.record else None,
        recording_status_callback=url(public_url, "recording", call=plan.call_id) if plan.record else None,
        recording_status_callback_event="completed" if plan.record else None,
    )
    for target in plan.targets:
        _noun(dial, target, public_url, plan.call_id)
    response.append(dial)
    return str(response)


def _noun(dial: Dial, target: RingTarget, public_url: str, call_id: int) -> None:
    options = {
        "url": url(public_url, "answered", call=call_id, agent=target.agent_id),
        "method": "POST",
        "status_callback": url(public_url, "leg", call=call_id, agent=target.agent_id),
        "status_callback_event": LEG_EVENTS,
        "status_callback_method": "POST",
    }
    if target.kind == "sip":
        dial.sip(target.address, **options)
    elif target.kind == "client":
        dial.client(identity=target.address, **options)
    else:
        dial.number(target.address, **options)


def voicemail(public_url: str, call_id: int) -> str:
    """Nobody took the call: a short greeting, then record a message."""
    response = VoiceResponse()
    response.say(GREETING)
    response.record(
        action=url(public_url, "voicemail", call=call_id),
        method="POST",
        max_length=VOICEMAIL_SECONDS,
        play_beep=True,
        recording_status_callback=url(public_url, "recording", call=call_id, voicemail=1),
        recording_status_callback_event="completed",
    )
    response.hangup()
    return str(response)


def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


def empty() -> str:
    """Nothing to do: for the agent's leg when they pick up, Twilio then bridges the call."""
    return str(VoiceResponse())


def connect_client(public_url: str, call_id: int, client_number: str, caller_id: str) -> str:
    """Click-to-call, after the agent answered: dial the client from the company's number."""
    response = VoiceResponse()
    dial = Dial(
        caller_id=caller_id,
        action=url(public_url, "dial", call=call_id),
        method="POST",
        answer_on_bridge=True,
        record="record-from-answer-dual",
        recording_status_callback=url(public_url, "recording", call=call_id),
        recording_status_callback_event="completed",
    )
    dial.number(client_number)
    response.append(dial)
    return str(response)


def unavailable(message: str = NOBODY) -> str:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)
