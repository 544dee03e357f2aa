"""Calls that arrive at the same moment share a group commit (`crm.storage.group_commit`): each is still
logged once, rung by its own plan, and answered only after it is stored."""

from __future__ import annotations

import asyncio
import re

import aiohttp
from sqlalchemy import func, select

from crm.domain.models import Call, CallLeg, Client, ClientPhone
from tests.telephony.conftest import Phones


async def test_calls_arriving_together_are_each_logged_and_rung_by_their_own_plan(phones: Phones) -> None:
    alice = await phones.agent("Alice", "+14155550001", chat_id=1001)
    bob = await phones.agent("Bob", "+14155550002", chat_id=1002)
    ada = await phones.client("Ada Lovelace", "(415) 555-0100", owner=bob)
    new_numbers = [f"+1628555{k:04d}" for k in range(20)]
    calls = await asyncio.gather(
        phones.twilio.inbound(from_="+1 415 555 0100"),  # Ada, in another spelling: Bob alone
        *(phones.twilio.inbound(from_=n) for n in new_numbers),
        phones.twilio.inbound(from_="+16285550000"),  # the first new number again, at the same moment
        phones.twilio.inbound(from_="anonymous"),
    )
    ids = []
    for call in calls:
        row = await phones.call_row(call.sid)
        ids.append(row.id)
        # The TwiML names this call's own id in every callback URL.
        urls = re.findall(r"call=(\d+)", call.last_response.text)
        assert urls and set(urls) == {str(row.id)}
    assert len(set(ids)) == len(calls)

    ada_call = await phones.call_row(calls[0].sid)
    assert ada_call.client_id == ada
    assert [t.value for t in calls[0].dial_targets()] == ["+14155550002"]
    for call in calls[1:]:
        assert sorted(t.value for t in call.dial_targets()) == ["+14155550001", "+14155550002"]

    async with phones.store.reading() as s:
        clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
        first = (
            await s.execute(select(ClientPhone.client_id).where(ClientPhone.e164 == "+16285550000"))
        ).scalar()
        legs = (await s.execute(select(func.count()).select_from(CallLeg))).scalar_one()
    assert clients == 1 + len(new_numbers)  # one client per number, however many calls it made at once
    twice = [await phones.call_row(calls[i].sid) for i in (1, len(calls) - 2)]
    assert [r.client_id for r in twice] == [first, first]
    assert (await phones.call_row(calls[-1].sid)).client_id is None  # a withheld number makes no client
    assert legs == 1 + 2 * (len(calls) - 1)
    assert alice.id != bob.id

    # /metrics says how many transactions the calls took: fewer than the calls, none lost.
    async with aiohttp.ClientSession() as http, http.get(str(phones.server.make_url("/metrics"))) as r:
        text = await r.text()
    counted = dict(re.findall(r'crm_group_commit_(batches|items)_total\{name="inbound calls"\} (\S+)', text))
    assert float(counted["items"]) == len(calls)
    assert 1 <= float(counted["batches"]) < len(calls)


async def test_a_voice_webhook_sent_twice_at_once_logs_one_call(phones: Phones) -> None:
    await phones.agent("Alice", "+14155550001", chat_id=1001)
    params = phones.twilio.inbound_params(from_="+14155550177")
    answers = await asyncio.gather(
        *(phones.twilio.post_signed("/webhooks/twilio/voice", params) for _ in range(3))
    )
    assert [status for status, _ in answers] == [200, 200, 200]
    assert len({body for _, body in answers}) == 1  # the same plan, the same call id
    async with phones.store.reading() as s:
        rows = (
            (await s.execute(select(Call).where(Call.provider_call_id == params["CallSid"]))).scalars().all()
        )
        clients = (await s.execute(select(func.count()).select_from(Client))).scalar_one()
    assert len(rows) == 1 and clients == 1
