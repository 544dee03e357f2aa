"""Who should take a call, a lead or a client's message.

The client's owner while on duty. Otherwise the first rule of the routing file that matches
(every key the rule gives must match: `source` = the lead's source, `country` = the region of
the client's phone number) with its on-duty agents; with no matching rule, or nobody of the rule
on duty, every agent on duty; with nobody on duty, the admins. A call rings the whole chosen group
at once; a lead or a message goes to one of them, in turn. Whose turn it is lives in the store
(`RoutingTurn`), so turns stay fair across restarts and between processes.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import phonenumbers
from sqlalchemy import Select, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from crm.domain.clock import Clock
from crm.domain.errors import InvalidPhone
from crm.domain.models import ROUTING_TURNS, Agent, Client, ClientPhone, RoutingTurn
from crm.domain.phones import parse_phone, region_of
from crm.services.clients import Caller

RULE_KEYS = frozenset({"source", "country", "agents"})

EVERYONE = "on-duty"
ADMINS = "admins"

# `Router.ring_groups`' statements, built once (it runs in every inbound-call group commit).
_ON_CALL = (
    select(Agent.id, Agent.role, Agent.on_duty, Agent.phone, Agent.sip_uri, Agent.client_identity)
    .where(Agent.removed_at.is_(None))
    .order_by(Agent.id)
)
_ON_CALL_BY_ID = _ON_CALL.where(Agent.id.in_(bindparam("ids", expanding=True)))
_FIRST_PHONES = (
    select(ClientPhone.client_id, ClientPhone.e164)
    .where(ClientPhone.client_id.in_(bindparam("ids", expanding=True)), ClientPhone.e164.is_not(None))
    .order_by(ClientPhone.client_id, ClientPhone.position, ClientPhone.id)
)
# …and those of `Router.agent_for` (every lead and message).
_ACTIVE = select(Agent).where(Agent.removed_at.is_(None)).order_by(Agent.id)
# `Router.agent_for`'s pools of everyone on duty and of the admins (and `follow_up_agent`'s first
# admin): the first by id after `after`.
_ON_DUTY_AFTER = _ACTIVE.where(Agent.on_duty.is_(True), Agent.id > bindparam("after")).limit(1)
_ADMIN_AFTER = _ACTIVE.where(Agent.role == "admin", Agent.id > bindparam("after")).limit(1)
_OWNER = (
    select(Agent)
    .join(Client, Client.owner_id == Agent.id)
    .where(Client.id == bindparam("client"), Agent.removed_at.is_(None))
)
# A pool's turn: the row read by an UPDATE, so that it stays locked until the unit of work ends.
_TOUCH_TURN = (
    update(ROUTING_TURNS)
    .where(ROUTING_TURNS.c.pool == bindparam("turn_pool"))
    .values(updated_at=bindparam("now"))
    .returning(ROUTING_TURNS.c.last_agent_id)
)
_GIVE_TURN = (
    update(ROUTING_TURNS)
    .where(ROUTING_TURNS.c.pool == bindparam("turn_pool"))
    .values(last_agent_id=bindparam("agent"), turns=ROUTING_TURNS.c.turns + 1, updated_at=bindparam("now"))
)


class RoutingFileError(ValueError):
    """The routing file cannot be used; the message is the one line an operator needs."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One `[[rule]]`: the agents (E.164, in the file's order) for what matches its keys."""

    number: int  # its place in the file, from 1: for messages and the key of its turns
    agents: tuple[str, ...]
    source: str | None = None  # folded (see `fold_source`)
    country: str | None = None  # ISO 3166 alpha-2, upper case

    def matches(self, *, source: str | None, country: str | None) -> bool:
        if self.source is not None and (source is None or fold_source(source) != self.source):
            return False
        return self.country is None or self.country == country

    @property
    def pool(self) -> str:
        return f"rule:{self.number}"


@dataclass(frozen=True, slots=True)
class RoutingRules:
    """The parsed routing file; empty when there is none."""

    rules: tuple[Rule, ...] = ()
    origin: str = ""

    def first_match(self, *, source: str | None, country: str | None) -> Rule | None:
        return next((r for r in self.rules if r.matches(source=source, country=country)), None)


NO_RULES = RoutingRules()


def fold_source(source: str) -> str:
    """Sources compare without regard to case and surrounding space: `Landing` is `landing`."""
    return " ".join(source.split()).casefold()


# -- the routing file ----------------------------------------------------------------------------


def load_rules(path: Path, region: str) -> RoutingRules:
    """Read and check a routing file (TOML), or raise `RoutingFileError` saying what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RoutingFileError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise RoutingFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_rules(text, region, origin=str(path))


def parse_rules(text: str, region: str, *, origin: str = "routing file") -> RoutingRules:
    """`[[rule]]` tables with optional `source` and `country` and a list of agents' phones."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RoutingFileError(f"{origin}: not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"rule"})
    if unknown:
        raise RoutingFileError(f"{origin}: unknown key {unknown[0]!r}; rules are [[rule]] tables")
    tables = document.get("rule", [])
    if not isinstance(tables, list):
        raise RoutingFileError(f"{origin}: `rule` must be written as [[rule]] tables")
    return RoutingRules(tuple(_rule(origin, i, t, region) for i, t in enumerate(tables, 1)), origin)


def _rule(origin: str, number: int, table: Any, region: str) -> Rule:
    where = f"{origin}: rule {number}"
    if not isinstance(table, dict):
        raise RoutingFileError(f"{where}: must be a [[rule]] table")
    unknown = sorted(set(table) - RULE_KEYS)
    if unknown:
        raise RoutingFileError(f"{where}: unknown key {unknown[0]!r} (a rule has source, country, agents)")
    source = table.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise RoutingFileError(f"{where}: source must be a non-empty string")
    country = table.get("country")
    if country is not None:
        if not isinstance(country, str) or country.strip().upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise RoutingFileError(f'{where}: country must be an ISO 3166 code such as "GB", got {country!r}')
        country = country.strip().upper()
    agents = table.get("agents")
    if not isinstance(agents, list) or not agents:
        raise RoutingFileError(f"{where}: agents must be a non-empty list of agents' phone numbers")
    numbers: list[str] = []
    for i, raw in enumerate(agents):
        if not isinstance(raw, str):
            raise RoutingFileError(f"{where}: agents[{i}] must be a phone number in quotes")
        try:
            e164 = parse_phone(raw, region).e164
        except InvalidPhone as exc:
            raise RoutingFileError(f"{where}: agents[{i}]: {exc}") from None
        if e164 not in numbers:
            numbers.append(e164)
    return Rule(number, tuple(numbers), fold_source(source) if source else None, country)


async def check_agents(s: AsyncSession, rules: RoutingRules) -> None:
    """Every number a rule names must be an agent's (one who has not left)."""
    named = {n for rule in rules.rules for n in rule.agents}
    if not named:
        return
    rows = await s.execute(select(Agent.phone).where(Agent.phone.in_(named), Agent.removed_at.is_(None)))
    known = set(rows.scalars())
    for rule in rules.rules:
        for number in rule.agents:
            if number not in known:
                raise RoutingFileError(
                    f"{rules.origin}: rule {rule.number} names {number}, which is no agent's phone "
                    "number (see `crm-gateway agent list`)"
                )


# -- choosing agents -----------------------------------------------------------------------------


def reachable_by_phone_system(agent: Ringable) -> bool:
    return bool(agent.sip_uri or agent.client_identity or agent.phone)


class Router:
    """Routing with the rules of this process, and turns kept in the store."""

    def __init__(self, rules: RoutingRules, clock: Clock) -> None:
        self.rules = rules
        self.clock = clock

    def ring_groups(self, s: Session, callers: Sequence[Caller | None]) -> list[list[OnCall]]:
        """Whom each call rings, for many calls at once (one group commit, in plain SQLAlchemy):
        the caller's owner alone when `sticky_owner` says so, else `ring_group`. The callers'
        owners are read first; everyone else (once), and the clients' regions, only for the calls
        their owners cannot take."""
        conn = s.connection()
        owner_ids = list({c.owner_id for c in callers if c is not None and c.owner_id is not None})
        owners = {}
        if owner_ids:
            owners = {row.id: OnCall(*row) for row in conn.execute(_ON_CALL_BY_ID, {"ids": owner_ids})}
        groups: list[list[OnCall]] = []
        rest: list[tuple[int, Caller | None]] = []
        for i, c in enumerate(callers):
            owner = sticky_owner(owners.get(c.owner_id) if c is not None and c.owner_id is not None else None)
            groups.append([owner] if owner is not None else [])
            if owner is None:
                rest.append((i, c))
        if rest:
            active = [OnCall(*row) for row in conn.execute(_ON_CALL)]
            regions: dict[int, str | None] = {}
            if self.rules.rules:
                regions = _client_regions(s, {c.client_id for _, c in rest if c is not None})
            for i, c in rest:
                region = regions.get(c.client_id) if c is not None else None
                groups[i] = ring_group(region, active, self.rules)
        return groups

    async def agent_for(
        self,
        s: AsyncSession,
        client_id: int | None,
        *,
        source: str | None = None,
        country: str | None = None,
    ) -> Agent | None:
        """The one agent who gets a lead or a message: the owner on duty, else the next in turn
        of the matching rule's on-duty agents, of everyone on duty, or of the admins. `country`
        defaults to the region of the client's first phone number. None: there are no agents."""
        owner = await _owner(s, client_id)
        if owner is not None and owner.on_duty:
            return owner
        if country is None:
            country = await _client_region(s, client_id)
        rule = self.rules.first_match(source=source, country=country)
        if rule is not None:
            members = await _rule_members(s, rule)
            on_duty = [a for a in members if a.on_duty]
            if on_duty:
                rank = {a.id: i for i, a in enumerate(members)}
                return await self._take_turn(s, rule.pool, on_duty, rank.get)
        anyone = await self._turn_by_id(s, EVERYONE, _ON_DUTY_AFTER)
        return anyone if anyone is not None else await self._turn_by_id(s, ADMINS, _ADMIN_AFTER)

    async def _turn_by_id(self, s: AsyncSession, pool: str, first_after: Select[Agent]) -> Agent | None:
        """`_take_turn` among the agents `first_after` picks, in the order of their ids, without
        loading them all (a call centre may have hundreds on duty): the first after the pool's
        last one, else the first. None, and the pool's turn untouched, when it picks nobody."""
        first = (await s.execute(first_after, {"after": 0})).scalar_one_or_none()
        if first is None:
            return None
        last = await self._lock_turn(s, pool)
        later = None
        if last is not None:
            later = (await s.execute(first_after, {"after": last})).scalar_one_or_none()
        return await self._give_turn(s, pool, later or first)

    async def _take_turn(
        self,
        s: AsyncSession,
        pool: str,
        candidates: Sequence[Agent],
        position: Callable[[int], int | None],
    ) -> Agent:
        """The candidate after the pool's last one (in pool order, wrapping round), recorded as
        the pool's last. The pool's row stays locked until the unit of work ends: two processes
        never give the same turn."""
        last = await self._lock_turn(s, pool)
        chosen = candidates[0]
        after = position(last) if last is not None else None
        if after is not None:
            later = [a for a in candidates if (position(a.id) or 0) > after]
            chosen = later[0] if later else candidates[0]
        return await self._give_turn(s, pool, chosen)

    async def _give_turn(self, s: AsyncSession, pool: str, agent: Agent) -> Agent:
        """Record `agent` as the pool's last (its row is locked: `_lock_turn`)."""
        conn = await s.connection()
        await conn.execute(_GIVE_TURN, {"turn_pool": pool, "agent": agent.id, "now": self.clock.now()})
        return agent

    async def _lock_turn(self, s: AsyncSession, pool: str) -> int | None:
        """The pool's last agent, read by an UPDATE so that the row is locked from here on."""
        conn = await s.connection()
        touch = {"turn_pool": pool, "now": self.clock.now()}
        row = (await conn.execute(_TOUCH_TURN, touch)).one_or_none()
        if row is not None:
            return _agent_id(row.last_agent_id)
        try:
            async with s.begin_nested():
                await s.execute(insert(RoutingTurn).values(pool=pool, turns=0, updated_at=self.clock.now()))
        except IntegrityError:
            pass  # another process made the row first: lock theirs
        return _agent_id((await conn.execute(_TOUCH_TURN, touch)).one().last_agent_id)


def _agent_id(value: Any) -> int | None:
    return None if value is None else int(value)


class Ringable(Protocol):
    """What choosing whom to ring needs of an agent (an `Agent`, or a row of its columns)."""

    @property
    def id(self) -> int: ...
    @property
    def role(self) -> str: ...
    @property
    def on_duty(self) -> bool: ...
    @property
    def phone(self) -> str | None: ...
    @property
    def sip_uri(self) -> str | None: ...
    @property
    def client_identity(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class OnCall:
    """An agent as whom-to-ring needs them, read without loading the whole row."""

    id: int
    role: str
    on_duty: bool
    phone: str | None
    sip_uri: str | None
    client_identity: str | None


A = TypeVar("A", bound=Ringable)


def sticky_owner(owner: A | None) -> A | None:
    """The client's owner (who has not left), when a call from the client rings them alone: they
    are on duty and can be rung."""
    return owner if owner is not None and owner.on_duty and reachable_by_phone_system(owner) else None


def ring_group(region: str | None, active: Sequence[A], rules: RoutingRules) -> list[A]:
    """Whom a call rings, all at once (possibly nobody), when the client's owner does not take it
    alone (`sticky_owner` comes first), from the agents who have not left (`active`, by id): the
    on-duty agents of the first rule matching the client's `region`; else everyone on duty; else
    the admins. Agents without a phone, SIP URI or app identity cannot be rung and are passed
    over."""
    reachable = [a for a in active if reachable_by_phone_system(a)]
    rule = rules.first_match(source=None, country=region) if rules.rules else None
    if rule is not None:
        order = {number: i for i, number in enumerate(rule.agents)}
        members = [a for a in reachable if a.phone in order and a.on_duty]
        if members:
            return sorted(members, key=lambda a: (order[a.phone or ""], a.id))
    on_duty = [a for a in reachable if a.on_duty]
    if on_duty:
        return on_duty
    return [a for a in reachable if a.role == "admin"]


async def follow_up_agent(s: AsyncSession, client_id: int | None) -> Agent | None:
    """Who follows up a call nobody took: the client's owner, otherwise the first admin."""
    owner = await _owner(s, client_id)
    if owner is not None:
        return owner
    return (await s.execute(_ADMIN_AFTER, {"after": 0})).scalar_one_or_none()


async def _owner(s: AsyncSession, client_id: int | None) -> Agent | None:
    if client_id is None:
        return None
    return (await s.execute(_OWNER, {"client": client_id})).scalar_one_or_none()


async def _rule_members(s: AsyncSession, rule: Rule) -> list[Agent]:
    """The rule's agents who have not left, in the rule's order."""
    rows = await s.execute(select(Agent).where(Agent.phone.in_(rule.agents), Agent.removed_at.is_(None)))
    order = {number: i for i, number in enumerate(rule.agents)}
    return sorted(rows.scalars(), key=lambda a: (order.get(a.phone or "", len(order)), a.id))


async def _client_region(s: AsyncSession, client_id: int | None) -> str | None:
    """The country of the client's first readable phone number."""
    if client_id is None:
        return None
    return (await s.run_sync(_client_regions, {client_id})).get(client_id)


def _client_regions(s: Session, client_ids: set[int]) -> dict[int, str | None]:
    """`_client_region` of many clients in one query."""
    if not client_ids:
        return {}
    rows = s.connection().execute(_FIRST_PHONES, {"ids": list(client_ids)})
    regions: dict[int, str | None] = {}
    for client_id, e164 in rows:
        if client_id not in regions:
            regions[client_id] = region_of(e164) if e164 else None
    return regions
