"""CSV export of clients, in the columns the import reads (`crm.files.csv_format`), so an export
imports back to the same data.

Phones are written in international format (`+1 415-555-0100`), so the file means the same whatever
region it is imported with; a number kept as text is written as it was given. A company's own row
names itself as its company, which is how the import tells a company from a person. Every cell goes
through `escape_cell`, so that none runs as a formula in a spreadsheet.
Clients are read in id order, a page at a time, in one read-only transaction.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from crm.domain.models import Agent, Client, ClientEmail, ClientPhone
from crm.domain.phones import format_international
from crm.files.csv_format import COLUMNS, SEPARATOR, escape_cell
from crm.storage.store import Store

PAGE = 1000


async def export_clients(store: Store, path: Path) -> int:
    """Write every client (companies too) to `path` as UTF-8 CSV; returns how many were written."""
    async with store.reading() as s:
        if not store.is_sqlite:
            # Two passes (custom keys, then rows) must see the same clients; SQLite's read
            # transaction is a snapshot already.
            await s.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        agents = dict((await s.execute(select(Agent.id, Agent.name))).all())
        keys = await _custom_keys(s)
        out = await asyncio.to_thread(_open_for_writing, path)
        try:
            writer = csv.writer(out)
            await asyncio.to_thread(writer.writerow, [*COLUMNS, *map(escape_cell, keys)])
            written = 0
            async for rows in _pages(s, keys, agents):
                await asyncio.to_thread(writer.writerows, rows)
                written += len(rows)
            return written
        finally:
            await asyncio.to_thread(out.close)


async def _custom_keys(s: AsyncSession) -> list[str]:
    """Every custom field's key, sorted: one column each, after the known ones."""
    keys: set[str] = set()
    stream = await s.stream_scalars(select(Client.custom).execution_options(yield_per=PAGE))
    async for custom in stream:
        keys.update(custom or {})
    return sorted(keys)


async def _pages(s: AsyncSession, keys: list[str], agents: dict[int, str]) -> AsyncIterator[list[list[str]]]:
    """CSV rows of clients in id order, a page at a time; a page's phones and e-mails in one query each."""
    company_names: dict[int, str] = {}
    last = 0
    while True:
        stmt = (
            select(
                Client.id,
                Client.kind,
                Client.name,
                Client.company_id,
                Client.owner_id,
                Client.tags,
                Client.custom,
                Client.notes,
            )
            .where(Client.id > last)
            .order_by(Client.id)
            .limit(PAGE)
        )
        page = (await s.execute(stmt)).all()
        if not page:
            return
        ids = [c.id for c in page]
        phones = await _phones(s, ids)
        emails = await _emails(s, ids)
        missing = {c.company_id for c in page if c.company_id is not None} - company_names.keys()
        if missing:
            found = await s.execute(select(Client.id, Client.name).where(Client.id.in_(missing)))
            company_names.update(found.all())
        rows: list[list[str]] = []
        for c in page:
            company = c.name if c.kind == "company" else company_names.get(c.company_id or 0, "")
            custom = c.custom or {}
            cells = [
                c.name,
                SEPARATOR.join(phones.get(c.id, [])),
                SEPARATOR.join(emails.get(c.id, [])),
                company,
                SEPARATOR.join(c.tags or []),
                c.notes or "",
                agents.get(c.owner_id, "") if c.owner_id is not None else "",
                *(_cell(custom.get(key)) for key in keys),
            ]
            rows.append([escape_cell(cell) for cell in cells])
        yield rows
        last = ids[-1]


async def _phones(s: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    stmt = (
        select(ClientPhone.client_id, ClientPhone.e164, ClientPhone.raw)
        .where(ClientPhone.client_id.in_(ids))
        .order_by(ClientPhone.client_id, ClientPhone.position, ClientPhone.id)
    )
    out: dict[int, list[str]] = {}
    for client_id, e164, raw in await s.execute(stmt):
        out.setdefault(client_id, []).append(format_international(e164) if e164 else raw)
    return out


async def _emails(s: AsyncSession, ids: list[int]) -> dict[int, list[str]]:
    stmt = (
        select(ClientEmail.client_id, ClientEmail.raw)
        .where(ClientEmail.client_id.in_(ids))
        .order_by(ClientEmail.client_id, ClientEmail.position, ClientEmail.id)
    )
    out: dict[int, list[str]] = {}
    for client_id, raw in await s.execute(stmt):
        out.setdefault(client_id, []).append(raw)
    return out


def _cell(value: Any) -> str:
    """A custom value as text: imported ones are text already; the API may store numbers or lists."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _open_for_writing(path: Path) -> TextIO:
    """UTF-8 without a BOM; `newline=""` leaves line endings to the csv module (`\\r\\n`)."""
    return path.open("w", encoding="utf-8", newline="")
