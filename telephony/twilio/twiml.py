"""Ring plans and call steps as TwiML, written with the twilio library's `VoiceResponse`.

Every callback URL named here comes back to `telephony/twilio/webhooks.py`; the note in README.md
("What the TwiML asks Twilio for") says why each one is there.
"""

from __future__ import annotations

from functools import cache, lru_cache
from urllib.parse import urlencode

from twilio.twiml.voice_response import Dial, VoiceResponse

from crm.services.ring_plans import RingPlan, RingTarget

BASE = "/webhooks/twilio"
# An agent's leg reports its id as it starts (a dial result may name only the leg) and its answer.
# Its "ringing" and "completed" would tell us nothing we use, at a webhook each per leg.
LEG_EVENTS = "initiated answered"
VOICEMAIL_SECONDS = 120
GREETING = "Sorry, nobody can take your call right now. Please leave a message after the tone."
NOBODY = "Sorry, nobody can take your call right now. Please call again later."


def url(public_url: str, path: str, **query: object) -> str:
    full = f"{public_url.rstrip('/')}{BASE}/{path}"
    return f"{full}?{urlencode(query)}" if query else full


def ring(plan: RingPlan, public_url: str) -> str:
    """Ring every target at once; the first to answer gets the caller."""
    if not plan.targets:
        return voicemail(public_url, plan.call_id)
    template = _ring_template(tuple(plan.targets), plan.ring_seconds, plan.record, public_url)
    return template.replace(f"call={_CALL_SLOT}", f"call={plan.call_id}")


# Where the call id goes in a cached `ring` answer (it only appears as `call=` in our URLs).
_CALL_SLOT = "__CALL_ID__"


@lru_cache(maxsize=1024)
def _ring_template(targets: tuple[RingTarget, ...], ring_seconds: int, record: bool, public_url: str) -> str:
    """`ring`'s TwiML with the call id left as a slot. The answers to calls ringing the same
    agents differ only by that id, and building one with `VoiceResponse` costs 45-80 µs."""
    response = VoiceResponse()
    dial = Dial(
        action=url(public_url, "dial", call=_CALL_SLOT),
        method="POST",
        timeout=ring_seconds,
        answer_on_bridge=True,
        record="record-from-answer-dual" if record else None,
        recording_status_callback=url(public_url, "recording", call=_CALL_SLOT) if record else None,
        recording_status_callback_event="completed" if record else None,
    )
    for target in targets:
        _noun(dial, target, public_url, _CALL_SLOT)
    response.append(dial)
    return str(response)


def _noun(dial: Dial, target: RingTarget, public_url: str, call_ref: str) -> None:
    options = {
        "url": url(public_url, "answered", call=call_ref, agent=target.agent_id),
        "method": "POST",
        "status_callback": url(public_url, "leg", call=call_ref, agent=target.agent_id),
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


@cache
def hang_up() -> str:
    response = VoiceResponse()
    response.hangup()
    return str(response)


@cache
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
