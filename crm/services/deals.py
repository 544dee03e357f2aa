"""Deals move through a pipeline's stages; Won and Lost close them."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput, NotFound
from crm.domain.models import Deal, Stage

PIPELINE = "default"


async def stage_by_name(s: AsyncSession, name: str, pipeline: str = PIPELINE) -> Stage:
    row = await s.execute(select(Stage).where(Stage.pipeline == pipeline, Stage.name == name))
    stage = row.scalar_one_or_none()
    if stage is None:
        names = (
            await s.execute(select(Stage.name).where(Stage.pipeline == pipeline).order_by(Stage.position))
        ).scalars()
        raise InvalidInput({"stage": f"no stage {name!r}; stages are {', '.join(names)}"})
    return stage


_FIRST_STAGE = select(Stage).where(Stage.pipeline == bindparam("pipeline")).order_by(Stage.position).limit(1)


# The deal and its first stage in one statement (a deal is opened for every lead).
_OPEN_DEAL = (
    insert(Deal)
    .values(stage_id=_FIRST_STAGE.with_only_columns(Stage.id).scalar_subquery())
    .returning(Deal.id)
)


async def open_deal(
    s: AsyncSession,
    client_id: int,
    title: str,
    *,
    clock: Clock,
    owner_id: int | None = None,
    amount: int | None = None,
    lead_id: int | None = None,
) -> int:
    """A new deal in the pipeline's first stage; its id."""
    now = clock.now()
    values = {
        "pipeline": PIPELINE,
        "client_id": client_id,
        "title": title,
        "owner_id": owner_id,
        "amount": amount,
        "lead_id": lead_id,
        "created_at": now,
        "updated_at": now,
    }
    conn = await s.connection()
    return int((await conn.execute(_OPEN_DEAL, values)).scalar_one())


async def move_deal(s: AsyncSession, deal_id: int, stage_name: str, *, clock: Clock) -> Deal:
    """Put a deal in another stage; a Won or Lost stage closes it, any other reopens it."""
    deal = await s.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"no deal with id {deal_id}")
    stage = await stage_by_name(s, stage_name)
    deal.stage_id = stage.id
    deal.updated_at = clock.now()
    deal.closed_at = deal.updated_at if (stage.is_won or stage.is_lost) else None
    await s.flush()
    return deal


async def latest_open_deal(s: AsyncSession, client_id: int) -> Deal | None:
    row = await s.execute(
        select(Deal)
        .where(Deal.client_id == client_id, Deal.closed_at.is_(None))
        .order_by(Deal.id.desc())
        .limit(1)
    )
    return row.scalar_one_or_none()


async def advance_to(s: AsyncSession, deal_id: int, stage_name: str, *, clock: Clock) -> Deal:
    """Move a deal forward to `stage_name`, never back (a deal at Proposal stays there)."""
    deal = await s.get(Deal, deal_id)
    if deal is None:
        raise NotFound(f"no deal with id {deal_id}")
    target = await stage_by_name(s, stage_name)
    current = await s.get(Stage, deal.stage_id)
    if current is not None and current.position >= target.position:
        return deal
    return await move_deal(s, deal_id, stage_name, clock=clock)
