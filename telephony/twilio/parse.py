"""Twilio's webhook forms → the domain's call events. Provider words stop here."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from crm.call_events import CallEnded, CallStarted, DialEnded, RecordingReady

PROVIDER = "twilio"

# <Dial>'s DialCallStatus → how the ringing of agents ended.
DIAL_OUTCOME = {
    "completed": "answered",
    "answered": "answered",
    "no-answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "canceled",
}


class MissingParameter(ValueError):
    """A webhook without a parameter Twilio always sends: the request is not Twilio's."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def required(form: Mapping[str, str], name: str) -> str:
    value = form.get(name, "").strip()
    if not value:
        raise MissingParameter(name)
    return value


def seconds(form: Mapping[str, str], name: str) -> int | None:
    raw = form.get(name, "").strip()
    try:
        return max(int(raw), 0) if raw else None
    except ValueError:
        return None


def call_started(form: Mapping[str, str], at: datetime) -> CallStarted:
    return CallStarted(
        provider=PROVIDER,
        provider_call_id=required(form, "CallSid"),
        from_number=form.get("From") or form.get("Caller"),
        to_number=form.get("To") or form.get("Called"),
        at=at,
    )


def dial_ended(
    form: Mapping[str, str], provider_call_id: str, at: datetime, *, call_id: int | None = None
) -> DialEnded:
    status = required(form, "DialCallStatus")
    outcome = DIAL_OUTCOME.get(status, "failed")
    if outcome == "answered" and form.get("DialBridged", "").lower() == "false":
        outcome = "no_answer"  # the leg picked up but was never connected to the caller
    return DialEnded(
        provider=PROVIDER,
        provider_call_id=provider_call_id,
        outcome=outcome,
        leg_id=form.get("DialCallSid") or None,
        talk_seconds=seconds(form, "DialCallDuration"),
        recording_url=form.get("RecordingUrl") or None,
        at=at,
        call_id=call_id,
    )


def call_ended(form: Mapping[str, str], at: datetime, *, call_id: int | None = None) -> CallEnded | None:
    """The parent call's status callback; None while the call is not over yet."""
    status = required(form, "CallStatus")
    if status not in ("completed", "busy", "failed", "no-answer", "canceled"):
        return None
    return CallEnded(
        provider=PROVIDER,
        provider_call_id=required(form, "CallSid"),
        provider_status=status,
        duration_s=seconds(form, "CallDuration"),
        at=at,
        call_id=call_id,
    )


def recording(
    form: Mapping[str, str],
    provider_call_id: str,
    *,
    voicemail: bool,
    at: datetime,
    call_id: int | None = None,
) -> RecordingReady | None:
    """A recording callback or a <Record> action; None when it carries no recording."""
    url = form.get("RecordingUrl", "").strip()
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
