"""Group commit (`crm.storage.group_commit`, used by `crm.services.telephony`): concurrent calls share one
transaction, each gets its own result once committed, and one that cannot be written fails alone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm.domain.call_events import CallStarted
from crm.domain.models import Call, Client
from crm.service import Crm
from crm.services.ring_plans import RingPlan
from crm.services.telephony import Telephony
from crm.storage.store import Store

AT = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)


def started(sid: Any, number: str | None) -> CallStarted:
    return CallStarted("twilio", sid, number, "+14155550000", AT)


async def test_a_bad_item_fails_alone_and_the_rest_of_its_batch_is_written(
    store: Store, crm: Crm, caplog: pytest.LogCaptureFixture
) -> None:
    calls = Telephony(store, crm.first_rings, crm.calls)
    events = [started(f"CA{k:032d}", f"+1628555{k:04d}") for k in range(9)]
    poisoned = started(None, "+16285559999")  # no provider id: the database refuses the row
    results = await asyncio.gather(
        *(calls.started(ev) for ev in [*events[:4], poisoned, *events[4:]]), return_exceptions=True
    )
    await calls.close()
    assert "inbound calls: a batch of 10 failed; writing its items one by one" in caplog.text
    assert isinstance(results[4], IntegrityError)
    plans = [r for r in results if isinstance(r, RingPlan)]
    assert len(plans) == 9 and len({p.call_id for p in plans}) == 9
    async with store.reading() as s:
        logged = (await s.execute(select(Call.provider_call_id).order_by(Call.id))).scalars().all()
        clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
    assert sorted(logged) == sorted(ev.provider_call_id for ev in events)
    assert clients == 9  # the poisoned call's new client went with its transaction


async def test_results_come_back_in_order_and_only_after_the_commit(store: Store, crm: Crm) -> None:
    calls = Telephony(store, crm.first_rings, crm.calls)
    events = [started(f"CA{k:032d}", f"+1628555{k:04d}") for k in range(5)]
    plans = await asyncio.gather(*(calls.started(ev) for ev in events))
    async with store.reading() as s:  # another connection sees every call a result named
        rows = {r.id: r.provider_call_id for r in await s.execute(select(Call.id, Call.provider_call_id))}
    assert [rows[p.call_id] for p in plans] == [ev.provider_call_id for ev in events]


@pytest.mark.parametrize("batch", [1, 3])
async def test_more_items_than_a_batch_holds_are_all_written(store: Store, crm: Crm, batch: int) -> None:
    calls = Telephony(store, crm.first_rings, crm.calls, max_batch=batch)
    events = [started(f"CA{k:032d}", "+16285550001") for k in range(7)]
    plans = await asyncio.gather(*(calls.started(ev) for ev in events))
    assert len({p.call_id for p in plans}) == 7
    assert len({p.client_id for p in plans}) == 1  # one caller, one client, across batches
