"""The first ring of inbound calls: whom each rings (`RingPlan`), and the calls logged, many in
one group commit (`crm.services.telephony`). The hot path of the gateway: a handful of prebuilt
statements however many calls, in plain SQLAlchemy so that `Store.write_sync` runs them in one go.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from crm.domain.call_events import CallStarted
from crm.domain.errors import InvalidPhone
from crm.domain.models import CALL_LEGS, CALLS, Call, CallLeg
from crm.domain.phones import Phone, is_anonymous, parse_phone
from crm.services import routing
from crm.services.clients import Clients
from crm.storage.new_ids import insert_with_ids

log = logging.getLogger("crm.calls")

RING_SECONDS = 20

# `FirstRings.log`'s statements, built once (see `Store.write_sync`).
_LOGGED = select(Call.id, Call.provider_call_id, Call.client_id).where(
    Call.provider == bindparam("provider"), Call.provider_call_id.in_(bindparam("ids", expanding=True))
)
_LEGS_OF = (
    select(CallLeg.call_id, CallLeg.agent_id, CallLeg.kind, CallLeg.address)
    .where(CallLeg.call_id.in_(bindparam("calls", expanding=True)))
    .order_by(CallLeg.id)
)
_INSERT_LEGS = insert(CALL_LEGS)


@dataclass(frozen=True, slots=True)
class RingTarget:
    agent_id: int
    kind: str  # "sip", "client" or "phone"
    address: str


@dataclass(frozen=True, slots=True)
class RingPlan:
    """Whom to ring for a call, all at once; no targets means straight to voicemail."""

    call_id: int
    client_id: int | None
    targets: list[RingTarget]
    ring_seconds: int = RING_SECONDS
    record: bool = True


def endpoint(agent: routing.Ringable) -> RingTarget | None:
    """How to ring an agent: their SIP URI, else their app identity, else their phone."""
    if agent.sip_uri:
        return RingTarget(agent.id, "sip", agent.sip_uri)
    if agent.client_identity:
        return RingTarget(agent.id, "client", agent.client_identity)
    if agent.phone:
        return RingTarget(agent.id, "phone", agent.phone)
    return None


class FirstRings:
    """Logs first rings and plans them, with the clients' service and the routing rules."""

    def __init__(self, clients: Clients, router: routing.Router) -> None:
        self.clients = clients
        self.router = router

    def log(self, s: Session, events: Sequence[CallStarted]) -> list[RingPlan]:
        """Record inbound calls (each once, however often the provider asks) and plan their
        ringing, in order. For one group commit: a handful of statements however many calls
        (look up the calls and the callers, make the new callers, read the agents, write the
        calls and their legs), in plain SQLAlchemy so that `Store.write_sync` can run it in one
        go. A plan without targets still needs `nobody_to_ring`."""
        plans: dict[tuple[str, str], RingPlan] = {}
        for provider in {ev.provider for ev in events}:
            ids = {ev.provider_call_id for ev in events if ev.provider == provider}
            plans.update(self._plans_of_logged(s, provider, ids))
        new: dict[tuple[str, str], CallStarted] = {}
        for ev in events:
            key = (ev.provider, ev.provider_call_id)
            if key not in plans:
                new.setdefault(key, ev)
        if new:
            fresh = list(new.values())
            phones = [self._caller_phone(ev.from_number) for ev in fresh]
            callers = self.clients.find_or_create_by_phones(s, [p for p in phones if p])
            of_call = [callers[p.e164] if p else None for p in phones]
            groups = self.router.ring_groups(s, of_call)
            conn = s.connection()
            call_ids = insert_with_ids(
                conn,
                CALLS,
                [
                    {
                        "provider": ev.provider,
                        "provider_call_id": ev.provider_call_id,
                        "direction": "inbound",
                        "from_number": ev.from_number,
                        "to_number": ev.to_number,
                        "client_id": caller.client_id if caller else None,
                        "status": "ringing",
                        "started_at": ev.at,
                    }
                    for ev, caller in zip(fresh, of_call, strict=True)
                ],
            )
            rings = [[t for t in map(endpoint, group) if t is not None] for group in groups]
            legs = [
                {"call_id": call_id, "agent_id": t.agent_id, "kind": t.kind, "address": t.address}
                for call_id, targets in zip(call_ids, rings, strict=True)
                for t in targets
            ]
            if legs:
                conn.execute(_INSERT_LEGS, legs)
            for ev, call_id, caller, targets in zip(fresh, call_ids, of_call, rings, strict=True):
                plans[(ev.provider, ev.provider_call_id)] = RingPlan(
                    call_id, caller.client_id if caller else None, targets
                )
        return [plans[(ev.provider, ev.provider_call_id)] for ev in events]

    def _plans_of_logged(self, s: Session, provider: str, ids: set[str]) -> dict[tuple[str, str], RingPlan]:
        """The ring plans of calls logged already (the provider asked again), as first made."""
        conn = s.connection()
        calls = conn.execute(_LOGGED, {"provider": provider, "ids": list(ids)}).all()
        if not calls:
            return {}
        legs: dict[int, list[RingTarget]] = {c.id: [] for c in calls}
        rows = conn.execute(_LEGS_OF, {"calls": list(legs)})
        for row in rows:
            legs[row.call_id].append(RingTarget(row.agent_id, row.kind, row.address))
        return {(provider, c.provider_call_id): RingPlan(c.id, c.client_id, legs[c.id]) for c in calls}

    def _caller_phone(self, number: str | None) -> Phone | None:
        """The caller's number as read; None for withheld or unreadable numbers (no client)."""
        if number is None or is_anonymous(number):
            return None
        try:
            return parse_phone(number, self.clients.region)
        except InvalidPhone as exc:
            log.info("inbound call from an unreadable number: %s", exc)
            return None
