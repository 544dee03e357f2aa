"""What a telephony provider tells us about a call, in the domain's words.

Adapters (`telephony/…`) turn the provider's callbacks into these and hand them to
`crm.services.telephony.Telephony`, which applies each in a transaction of its own
(`crm.services.call_flow.CallFlow` holds the rules). Events may arrive late, twice or out of
order: each says what is known, never what must have happened before.

`call_id`, when set, is our id of the call, named by the callback URLs we hand the provider: the
surer key (an agent's leg or an outbound call has a provider id of its own), and found without a
search. `provider_call_id` is the key otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

# How a call, or the ringing of its agents, ended: listed here once. `answered`: someone picked
# up; `canceled`: the caller hung up first; the others say why nobody did.
Outcome = Literal["answered", "no_answer", "busy", "failed", "canceled"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)


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
class LegProgress:
    """The leg ringing `agent_id` reports itself under the provider's `leg_id` (a later dial
    result may name only the leg), and says whether it was picked up."""

    provider: str
    provider_call_id: str
    agent_id: int
    leg_id: str
    answered: bool
    at: datetime
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class DialEnded:
    """The ringing of agents ended, with `outcome`."""

    provider: str
    provider_call_id: str
    outcome: Outcome
    leg_id: str | None
    talk_seconds: int | None
    recording_url: str | None
    at: datetime
    call_id: int | None = None


@dataclass(frozen=True, slots=True)
class CallEnded:
    """The caller's side of the call is over. `outcome` is `answered` when the line was connected
    at all (to an agent, or to us for voicemail): that alone says nothing of the agents."""

    provider: str
    provider_call_id: str
    outcome: Outcome
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


@dataclass(frozen=True, slots=True)
class OutboundAnswered:
    """The agent picked up an outbound call we placed (the provider rings them first, under
    `provider_call_id`); the client is dialled next."""

    provider: str
    provider_call_id: str
    call_id: int
    at: datetime
