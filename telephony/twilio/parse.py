"""Twilio's webhook forms → the domain's call events. Provider words stop here: Twilio's
parameters and status spellings (`no-answer`, `in-progress`, …) are read and translated here.

`call` and `agent` in a callback's query string are ours (`twiml.url` puts them there)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from crm.domain.call_events import (
    AgentAnswered,
    CallEnded,
    CallStarted,
    DialEnded,
    LegProgress,
    OutboundAnswered,
    Outcome,
    RecordingReady,
)
from crm.domain.paging import parse_id

PROVIDER = "twilio"

# <Dial>'s DialCallStatus → how the ringing of agents ended.
DIAL_OUTCOME: Mapping[str, Outcome] = {
    "completed": "answered",
    "answered": "answered",
    "no-answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "canceled",
}
# A call's final CallStatus → how it ended (`completed`: it was answered, by anyone, then hung
# up). Its other statuses (`queued`, `ringing`, `in-progress`) say it is not over.
CALL_OUTCOME: Mapping[str, Outcome] = {
    "completed": "answered",
    "busy": "busy",
    "failed": "failed",
    "no-answer": "no_answer",
    "canceled": "canceled",
}


# What the call log keeps of a parameter; Twilio's own values are far shorter (a CallSid has 34
# characters, a number at most 16, a SIP address seldom 40), so a longer one is not Twilio's.
MAX_SID = 64  # calls.provider_call_id, call_legs.leg_id
MAX_NUMBER = 64  # calls.from_number, calls.to_number: as long as crm.domain.phones.MAX_SPELLING
MAX_URL = 500  # calls.recording_url
MAX_SECONDS = 2**31 - 1  # durations are INTEGER columns


class BadParameter(ValueError):
    """A parameter as Twilio never sends it: the request is not Twilio's (a 400 naming it)."""

    code = "bad_parameter"

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"{name} {problem}")
        self.name = name
        self.problem = problem


class MissingParameter(BadParameter):
    """A webhook without a parameter Twilio always sends."""

    code = "missing_parameter"

    def __init__(self, name: str) -> None:
        super().__init__(name, "is required")


def required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise MissingParameter(name)
    return value


def optional(form: Mapping[str, str], name: str, longest: int) -> str | None:
    """A parameter that may be absent, at most `longest` characters when given."""
    value = form.get(name, "").strip()
    if len(value) > longest:
        raise BadParameter(name, f"is longer than {longest} characters")
    return value or None


def required_sid(form: Mapping[str, str], name: str) -> str:
    value = required(form, name)
    if len(value) > MAX_SID:
        raise BadParameter(name, f"is longer than {MAX_SID} characters")
    return value


def seconds(form: Mapping[str, str], name: str) -> int | None:
    raw = form.get(name, "").strip()
    try:
        value = max(int(raw), 0) if raw else None
    except ValueError:  # not a number, or one of 4300+ digits
        return None
    return value if value is None or value <= MAX_SECONDS else None


def call_ref(query: Mapping[str, str]) -> int | None:
    """Our id of the call, when the callback URL names it."""
    return parse_id(query.get("call", ""))


def agent_ref(query: Mapping[str, str]) -> int:
    """The agent whose leg a callback is about, as our callback URL names them."""
    raw = query.get("agent", "")
    agent = parse_id(raw)
    if agent is None:
        raise BadParameter("agent", "is not an agent's id") if raw else MissingParameter("agent")
    return agent


def parent_sid(form: Mapping[str, str]) -> str:
    """The provider id of the call a callback is about, as the request names it (an agent's leg
    names its parent). The `call` we put in our callback URLs (`call_ref`) is the surer key."""
    return optional(form, "ParentCallSid", MAX_SID) or required_sid(form, "CallSid")


def call_started(form: Mapping[str, str], at: datetime) -> CallStarted:
    return CallStarted(
        provider=PROVIDER,
        provider_call_id=required_sid(form, "CallSid"),
        from_number=optional(form, "From", MAX_NUMBER) or optional(form, "Caller", MAX_NUMBER),
        to_number=optional(form, "To", MAX_NUMBER) or optional(form, "Called", MAX_NUMBER),
        at=at,
    )


def agent_answered(
    form: Mapping[str, str], agent_id: int, at: datetime, call_id: int | None
) -> AgentAnswered:
    """An agent's leg picked up (Twilio fetches the leg's `url` before bridging it)."""
    leg_id = optional(form, "CallSid", MAX_SID)
    return AgentAnswered(PROVIDER, parent_sid(form), agent_id, leg_id, at, call_id)


def leg_progress(form: Mapping[str, str], agent_id: int, at: datetime, call_id: int | None) -> LegProgress:
    """A status callback of an agent's leg (`twiml.LEG_EVENTS`)."""
    leg_id = required_sid(form, "CallSid")
    answered = form.get("CallStatus") == "in-progress"
    return LegProgress(PROVIDER, parent_sid(form), agent_id, leg_id, answered, at, call_id)


def outbound_answered(form: Mapping[str, str], call_id: int | None, at: datetime) -> OutboundAnswered:
    """Click-to-call: the agent picked up the call Twilio placed to them (it fetches our `Url`)."""
    sid = optional(form, "CallSid", MAX_SID)
    if not sid:
        raise MissingParameter("CallSid")
    if call_id is None:
        raise MissingParameter("call")
    return OutboundAnswered(PROVIDER, sid, call_id, at)


def dial_ended(form: Mapping[str, str], at: datetime, *, call_id: int | None = None) -> DialEnded:
    provider_call_id = parent_sid(form)
    status = required(form, "DialCallStatus")
    outcome = DIAL_OUTCOME.get(status, "failed")
    if outcome == "answered" and form.get("DialBridged", "").lower() == "false":
        outcome = "no_answer"  # the leg picked up but was never connected to the caller
    return DialEnded(
        provider=PROVIDER,
        provider_call_id=provider_call_id,
        outcome=outcome,
        leg_id=optional(form, "DialCallSid", MAX_SID),
        talk_seconds=seconds(form, "DialCallDuration"),
        recording_url=optional(form, "RecordingUrl", MAX_URL),
        at=at,
        call_id=call_id,
    )


def call_ended(form: Mapping[str, str], at: datetime, *, call_id: int | None = None) -> CallEnded | None:
    """The parent call's status callback; None while the call is not over yet."""
    outcome = CALL_OUTCOME.get(required(form, "CallStatus"))
    if outcome is None:
        return None
    return CallEnded(
        provider=PROVIDER,
        provider_call_id=required_sid(form, "CallSid"),
        outcome=outcome,
        duration_s=seconds(form, "CallDuration"),
        at=at,
        call_id=call_id,
    )


def recording(
    form: Mapping[str, str], *, voicemail: bool, at: datetime, call_id: int | None = None
) -> RecordingReady | None:
    """A recording callback or a <Record> action; None when it carries no recording."""
    provider_call_id = parent_sid(form)
    url = optional(form, "RecordingUrl", MAX_URL)
    status = form.get("RecordingStatus", "completed")
    if not url or status not in ("completed", ""):
        return None
    return RecordingReady(
        provider=PROVIDER,
        provider_call_id=provider_call_id,
        url=url,
        duration_s=seconds(form, "RecordingDuration"),
        voicemail=voicemail,
        at=at,
        call_id=call_id,
    )
