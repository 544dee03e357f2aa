"""The REST API's JSON shapes (CONTRACT.md: CARD, CALL, TASK, …), one pydantic model each.

The same models validate what callers send, render what we answer, and make the OpenAPI
document, so the three cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from crm.domain.paging import MAX_ID
from gateway.http import plausible_time

# What callers send: an id any record can have (a 26-digit one would overflow the database's
# 64-bit column), and a time with its offset between the years 1900 and 2999.
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
Time = Annotated[AwareDatetime, AfterValidator(plausible_time)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Ref(BaseModel):
    id: int
    name: str


class DealOut(BaseModel):
    id: int
    title: str
    stage: str
    amount: int | None


class OpenTaskOut(BaseModel):
    id: int
    title: str
    due_at: datetime
    agent_id: int | None
    call_id: int | None


class InteractionOut(BaseModel):
    kind: Literal["call", "message", "lead", "note", "email"]
    at: datetime
    summary: str
    agent: Ref | None


class Card(BaseModel):
    """CARD: a client as agents and scripts see it."""

    id: int
    kind: Literal["person", "company"]
    name: str
    phones: list[str] = Field(description="E.164")
    other_phones: list[str] = Field(description="numbers kept as written: they could not be read")
    emails: list[str]
    company: str | None
    company_id: int | None
    tags: list[str]
    owner: Ref | None
    local_time: datetime | None = Field(description="the client's wall clock, from the number's region")
    time_zone: str | None
    region: str | None
    created_at: datetime
    updated_at: datetime
    last_interaction_at: datetime | None
    open_deals: list[DealOut]
    open_tasks: list[OpenTaskOut]
    recent_interactions: list[InteractionOut]
    custom: dict[str, Any]
    notes: str | None


class LookupOut(BaseModel):
    client: Card


class ClientsPage(BaseModel):
    clients: list[Card]
    next_cursor: str | None


class ClientIn(_In):
    """POST /clients."""

    name: str = Field(min_length=1, max_length=300)
    kind: Literal["person", "company"] = "person"
    phones: list[str] = Field(default_factory=list, max_length=20)
    emails: list[str] = Field(default_factory=list, max_length=20)
    company: str | None = Field(default=None, max_length=300)
    tags: list[str] = Field(default_factory=list, max_length=100)
    owner_id: Id | None = None
    custom: dict[str, Any] = Field(default_factory=dict)
    notes: str | None = Field(default=None, max_length=20_000)


class ClientPatch(_In):
    """PATCH /clients/{id}: only the fields given change; lists replace; `custom` merges
    (a key set to null is removed); `"owner_id": null` takes the owner away."""

    name: str | None = Field(default=None, min_length=1, max_length=300)
    kind: Literal["person", "company"] | None = None
    phones: list[str] | None = Field(default=None, max_length=20)
    emails: list[str] | None = Field(default=None, max_length=20)
    company: str | None = Field(default=None, max_length=300)
    tags: list[str] | None = Field(default=None, max_length=100)
    owner_id: Id | None = None
    custom: dict[str, Any] | None = None
    notes: str | None = Field(default=None, max_length=20_000)


class MergeIn(_In):
    other_id: Id


class CallOut(BaseModel):
    """CALL: one phone call, inbound or outbound."""

    id: int
    provider: str
    provider_call_id: str
    direction: Literal["inbound", "outbound"]
    from_: str | None = Field(alias="from", serialization_alias="from")
    to: str | None
    client_id: int | None
    agent_id: int | None
    status: Literal["ringing", "in_progress", "completed", "missed", "busy", "failed"]
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    duration_s: int | None
    recording_url: str | None
    outcome: str | None
    notes: str | None

    model_config = ConfigDict(populate_by_name=True)


class CallsPage(BaseModel):
    calls: list[CallOut]
    next_cursor: str | None


class CallIn(_In):
    """POST /calls: click-to-call."""

    client_id: Id
    agent_id: Id


class TaskOut(BaseModel):
    """TASK: a follow-up for an agent."""

    id: int
    client_id: int
    agent_id: int | None
    title: str
    due_at: datetime
    done: bool
    done_at: datetime | None
    created_at: datetime
    call_id: int | None


class TasksPage(BaseModel):
    tasks: list[TaskOut]
    next_cursor: str | None


class TaskIn(_In):
    client_id: Id
    title: str = Field(min_length=1, max_length=300)
    due_at: Time
    agent_id: Id | None = None


class TaskPatch(_In):
    done: bool | None = None
    due_at: Time | None = None


class LeadOut(BaseModel):
    id: int
    client_id: int | None
    assigned_agent_id: int | None
    source: str | None
    name: str | None
    phone: str | None
    email: str | None
    message: str | None
    utm: dict[str, str]
    fields: dict[str, Any]
    unapplied: dict[str, str] = Field(
        description="the form's phone or e-mail that was not added to the matched client "
        "(a form may not change a client; an agent adds it from the lead's card)"
    )
    created_at: datetime


class LeadsPage(BaseModel):
    leads: list[LeadOut]
    next_cursor: str | None


class AgentOut(BaseModel):
    id: int
    name: str
    phone: str | None
    role: Literal["agent", "admin"]
    on_duty: bool
    telegram_bound: bool


class AgentsOut(BaseModel):
    agents: list[AgentOut]


class ErrorOut(BaseModel):
    error: str
    detail: str | None = None
    fields: dict[str, str] | None = None
