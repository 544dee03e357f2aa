"""Deals move through a pipeline's stages; Won and Lost close them."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput
from crm.domain.models import Deal, Stage
from crm.storage.rows import require

PIPELINE = "default"

_FIRST_STAGE = select(Stage).where(Stage.pipeline == bindparam("pipeline")).order_by(Stage.position).limit(1)


# The deal and its first stage in one statement (a deal is opened for every lead).
_OPEN_DEAL = (
    insert(Deal)
    .values(stage_id=_FIRST_STAGE.with_only_columns(Stage.id).scalar_subquery())
    .returning(Deal.id)
)


class Deals:
    """The pipeline's deals; every method works inside the caller's unit of work (session)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    async def open(
        self,
        s: AsyncSession,
        client_id: int,
        title: str,
        *,
        owner_id: int | None = None,
        amount: int | None = None,
        lead_id: int | None = None,
    ) -> int:
        """A new deal in the pipeline's first stage; its id."""
        now = self.clock.now()
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

    async def move(self, s: AsyncSession, deal_id: int, stage_name: str) -> Deal:
        """Put a deal in another stage; a Won or Lost stage closes it, any other reopens it."""
        deal = await require(s, Deal, deal_id, "deal")
        stage = await _stage_by_name(s, stage_name)
        deal.stage_id = stage.id
        deal.updated_at = self.clock.now()
        deal.closed_at = deal.updated_at if (stage.is_won or stage.is_lost) else None
        await s.flush()
        return deal

    async def advance_to(self, s: AsyncSession, deal_id: int, stage_name: str) -> Deal:
        """Move a deal forward to `stage_name`, never back (a deal at Proposal stays there)."""
        deal = await require(s, Deal, deal_id, "deal")
        target = await _stage_by_name(s, stage_name)
        current = await s.get(Stage, deal.stage_id)
        if current is not None and current.position >= target.position:
            return deal
        return await self.move(s, deal_id, stage_name)

    async def latest_open(self, s: AsyncSession, client_id: int) -> Deal | None:
        row = await s.execute(
            select(Deal)
            .where(Deal.client_id == client_id, Deal.closed_at.is_(None))
            .order_by(Deal.id.desc())
            .limit(1)
        )
        return row.scalar_one_or_none()


async def _stage_by_name(s: AsyncSession, name: str, pipeline: str = PIPELINE) -> Stage:
    row = await s.execute(select(Stage).where(Stage.pipeline == pipeline, Stage.name == name))
    stage = row.scalar_one_or_none()
    if stage is None:
        names = (
            await s.execute(select(Stage.name).where(Stage.pipeline == pipeline).order_by(Stage.position))
        ).scalars()
        raise InvalidInput({"stage": f"no stage {name!r}; stages are {', '.join(names)}"})
    return stage
