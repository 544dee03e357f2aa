"""What a telephony provider tells us about a call, in the domain's words.

Adapters (`telephony/…`) turn webhooks into these; `crm.services.call_flow.CallFlow` applies them. Events
may arrive late, twice or out of order: each says what is known, never what must have happened
before.

`call_id`, when set, is our id of the call, named by the callback URLs we hand the provider: the
surer key (an agent's leg or an outbound call has a provider id of its own), and found without a
search. `provider_call_id` is the key otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class CallStarted:
    """A call reached us: inbound from a caller, or an outbound one we placed."""

    provider: str
    provider_call_id: str
    from_number: str | None
    to_number: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class AgentAnswered:
    """The leg ringing `agent_id` was picked up (the earliest sure sign of who took the call)."""

    provider: str
    provider_call_id: str
    agent_id: int
    leg_id: str | None
    at: datetime
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class DialEnded:
    """The ringing of agents ended: `outcome` is `answered`, `no_answer`, `busy`, `failed` or
    `canceled` (the caller hung up first)."""

    provider: str
    provider_call_id: str
    outcome: str
    leg_id: str | None
    talk_seconds: int | None
    recording_url: str | None
    at: datetime
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The caller's side of the call is over (`provider_status` as the provider says it)."""

    provider: str
    provider_call_id: str
    provider_status: str
    duration_s: int | None
    at: datetime
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class RecordingReady:
    """A recording of the call (`voicemail=False`) or a voicemail the caller left."""

    provider: str
    provider_call_id: str
    url: str
    duration_s: int | None
    voicemail: bool
    at: datetime
    call_id: int | None = None


DIAL_OUTCOMES = ("answered", "no_answer", "busy", "failed", "canceled")
