"""Domain values → the API's JSON models. One place, so every endpoint shows a thing the same way."""

from __future__ import annotations

from crm.domain.models import Call, Lead, Task
from crm.domain.phones import time_zone_of
from crm.services.agents import AgentView
from crm.services.cards import Card as DomainCard
from gateway.api import schemas


def card(c: DomainCard) -> schemas.Card:
    first = next((p.e164 for p in c.phones if p.e164), None)
    return schemas.Card(
        id=c.id,
        kind=c.kind,
        name=c.name,
        phones=[p.e164 for p in c.phones if p.e164],
        other_phones=[p.raw for p in c.phones if not p.e164],
        emails=c.emails,
        company=c.company.name if c.company else None,
        company_id=c.company.id if c.company else None,
        tags=c.tags,
        owner=schemas.Ref(id=c.owner.id, name=c.owner.name) if c.owner else None,
        local_time=c.local_time,
        time_zone=time_zone_of(first) if first else None,
        region=c.region,
        created_at=c.created_at,
        updated_at=c.updated_at,
        last_interaction_at=c.last_interaction_at,
        open_deals=[
            schemas.DealOut(id=d.id, title=d.title, stage=d.stage, amount=d.amount) for d in c.open_deals
        ],
        open_tasks=[
            schemas.OpenTaskOut(
                id=t.id, title=t.title, due_at=t.due_at, agent_id=t.agent_id, call_id=t.call_id
            )
            for t in c.open_tasks
        ],
        recent_interactions=[
            schemas.InteractionOut(
                kind=i.kind,
                at=i.at,
                summary=i.summary,
                agent=schemas.Ref(id=i.agent.id, name=i.agent.name) if i.agent else None,
            )
            for i in c.recent_interactions
        ],
        custom=c.custom,
        notes=c.notes,
    )


def call(c: Call) -> schemas.CallOut:
    return schemas.CallOut.model_validate(
        {
            "id": c.id,
            "provider": c.provider,
            "provider_call_id": c.provider_call_id,
            "direction": c.direction,
            "from": c.from_number,
            "to": c.to_number,
            "client_id": c.client_id,
            "agent_id": c.agent_id,
            "status": c.status,
            "started_at": c.started_at,
            "answered_at": c.answered_at,
            "ended_at": c.ended_at,
            "duration_s": c.duration_s,
            "recording_url": c.recording_url,
            "outcome": c.outcome,
            "notes": c.notes,
        }
    )


def task(t: Task) -> schemas.TaskOut:
    return schemas.TaskOut(
        id=t.id,
        client_id=t.client_id,
        agent_id=t.agent_id,
        title=t.title,
        due_at=t.due_at,
        done=t.done,
        done_at=t.done_at,
        created_at=t.created_at,
        call_id=t.call_id,
    )


def lead(row: Lead) -> schemas.LeadOut:
    return schemas.LeadOut(
        id=row.id,
        client_id=row.client_id,
        assigned_agent_id=row.assigned_agent_id,
        source=row.source,
        name=row.name,
        phone=row.phone,
        email=row.email,
        message=row.message,
        utm=row.utm or {},
        fields=row.extra or {},
        unapplied=row.unapplied or {},
        created_at=row.created_at,
    )


def agent(a: AgentView) -> schemas.AgentOut:
    return schemas.AgentOut(
        id=a.id,
        name=a.name,
        phone=a.phone,
        role=a.role,
        on_duty=a.on_duty,
        telegram_bound=a.chat_bound,
    )
