"""Many clients, numbers and addresses written in a few statements: how the CSV import's batches
(`crm.files.batches`) reach the database, which decide what to write and leave the how to this.

`BulkWrites` runs SQLAlchemy Core's statements, as any database takes them (PostgreSQL here).
`SqliteBulkWrites` is the fast path on SQLite, where a million-row import spends most of its time
in Core's per-row work rather than in SQLite: SQLAlchemy's own INSERT statements, compiled once,
run as the driver's `executemany` over plain tuples; new clients' ids given under the write lock
(`crm.storage.new_ids`); and `IN (...)` over thousands of values sent as one JSON array.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Column, ColumnElement, String, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm.exc import StaleDataError

from crm.domain.models import CLIENT_EMAILS, CLIENT_PHONES, CLIENTS
from crm.storage.new_ids import insert_with_ids, next_id
from crm.storage.store import Store

_CLIENTS: Table = CLIENTS
_PHONES: Table = CLIENT_PHONES
_EMAILS: Table = CLIENT_EMAILS
# A new client's values, in the order of `_ROW_COLUMNS["clients"]` up to `notes`: kind, name,
# folded name, company id, owner id, tags, custom fields, notes.
NewClient = tuple[str, str, str, int | None, int | None, tuple[str, ...], dict[str, Any], str | None]
# A number or an address: (client id, E.164 or address, as written, position).
NewContact = tuple[int, str | None, str, int]
# The columns inserted, in the order of their values in a row to insert.
_ROW_COLUMNS = {
    "clients": (
        *("kind", "name", "name_folded", "company_id", "owner_id"),
        *("tags", "custom", "notes", "created_at", "updated_at"),
    ),
    "client_phones": ("client_id", "e164", "raw", "position"),
    "client_emails": ("client_id", "address", "raw", "position"),
}
_CACHED = 1 << 16  # distinct tag sets and custom fields whose encoding SQLite's writes remember


def bulk_writes(store: Store) -> BulkWrites:
    """The writes for `store`'s database."""
    return SqliteBulkWrites(store.engine.dialect) if store.is_sqlite else BulkWrites()


class BulkWrites:
    """Writes of many rows in a few statements, with SQLAlchemy Core (any database)."""

    def __init__(self) -> None:
        self._update = update(_CLIENTS).where(_CLIENTS.c.id == bindparam("target_id"))

    def among(self, column: Column[Any], values: list[Any]) -> ColumnElement[bool]:
        """`column IN (values)`, for a look-up of thousands of values at once."""
        return column.in_(values)

    async def insert_clients(
        self, conn: AsyncConnection, clients: Sequence[NewClient], now: datetime
    ) -> list[int]:
        """Insert many clients, made and changed `now`; their new ids, in the order of `clients`."""
        rows = [
            {
                "kind": kind,
                "name": name,
                "name_folded": folded,
                "company_id": company,
                "owner_id": owner,
                "tags": list(tags),
                "custom": dict(custom),
                "notes": notes,
                "created_at": now,
                "updated_at": now,
            }
            for kind, name, folded, company, owner, tags, custom, notes in clients
        ]
        return await conn.run_sync(insert_with_ids, _CLIENTS, rows)

    async def insert_phones(self, conn: AsyncConnection, rows: list[NewContact]) -> None:
        await self._insert(conn, _PHONES, rows)

    async def insert_emails(self, conn: AsyncConnection, rows: list[NewContact]) -> None:
        await self._insert(conn, _EMAILS, rows)

    async def _insert(self, conn: AsyncConnection, table: Table, rows: list[NewContact]) -> None:
        if rows:
            columns = _ROW_COLUMNS[table.name]
            await conn.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

    async def update_clients(
        self, conn: AsyncConnection, changes: Iterable[tuple[int, dict[str, Any]]], now: datetime
    ) -> None:
        """Set the columns given for each client id, and its `updated_at` to `now`.

        Only the columns that changed are set (an indexed one costs SQLite an index update even
        when set to what it was): one UPDATE for each set of columns. Core's UPDATE rather than
        the ORM's bulk one, which costs more per row; like the ORM's, it fails (`StaleDataError`)
        when a client is gone, where the database says how many rows it matched.
        """
        stamp = self._stamp(now)
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for client_id, values in changes:
            by_columns.setdefault(tuple(values), []).append(
                values | {"updated_at": stamp, "target_id": client_id}
            )
        dialect = conn.dialect
        for changed in by_columns.values():
            matched = (await conn.execute(self._update, changed)).rowcount
            counted = dialect.supports_sane_rowcount and (
                dialect.supports_sane_multi_rowcount or len(changed) == 1
            )
            if counted and matched != len(changed):
                raise StaleDataError(
                    f"UPDATE statement on table 'clients' expected to update {len(changed)} row(s); "
                    f"{matched} were matched."
                )

    def _stamp(self, now: datetime) -> Any:
        """`now` as the UPDATE binds it."""
        return now


class SqliteBulkWrites(BulkWrites):
    """SQLite's writes: SQLAlchemy's own INSERT statements, compiled once, run as the driver's
    `executemany` over tuples of values as SQLite stores them.

    Core's `executemany` builds a dict per row, then a tuple, and puts each value through its
    column's type: more work than SQLite's own for the row. Here numbers and text go as they
    are, and a new client's tags, custom fields and time stamps are put through their columns'
    bind processors, as SQLAlchemy would, but once per distinct value (a file's rows share a
    few tag sets and custom fields, a batch shares its time stamp). SQLite only: there these
    processors are all the typing a value gets (no casts in the SQL).
    """

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        tags = _processor(_CLIENTS.c.tags, dialect)
        custom = _processor(_CLIENTS.c.custom, dialect)
        self._time = _processor(_CLIENTS.c.created_at, dialect)
        self._tags = functools.lru_cache(maxsize=_CACHED)(lambda key: tags(list(key)))
        # A new client's custom values are text from the file: equal items, equal JSON.
        self._custom = functools.lru_cache(maxsize=_CACHED)(lambda items: custom(dict(items)))
        self._inserts = {
            table.name: _positional(table, _ROW_COLUMNS[table.name], dialect) for table in (_PHONES, _EMAILS)
        }
        # New clients come with their ids (`insert_clients`).
        self._inserts[_CLIENTS.name] = _positional(_CLIENTS, ("id", *_ROW_COLUMNS["clients"]), dialect)
        # The time stamp comes encoded (`_stamp`).
        self._update = self._update.values(updated_at=bindparam("updated_at", type_=String()))

    def among(self, column: Column[Any], values: list[Any]) -> ColumnElement[bool]:
        """The values go as one JSON array, read by `json_each`: SQLAlchemy would otherwise name,
        bind and render a parameter for each, at every query."""
        return column.in_(select(func.json_each(json.dumps(values)).table_valued("value").c.value))

    async def insert_clients(
        self, conn: AsyncConnection, clients: Sequence[NewClient], now: datetime
    ) -> list[int]:
        # The ids after the largest are ours under the write lock (`crm.storage.new_ids`).
        stamp, tags_of, custom_of = self._time(now), self._tags, self._custom
        first = await conn.run_sync(next_id, _CLIENTS)
        ids = range(first, first + len(clients))
        rows = [
            (
                i,
                kind,
                name,
                folded,
                company,
                owner,
                tags_of(tags),
                custom_of(tuple(custom.items())),
                notes,
                stamp,
                stamp,
            )
            for i, (kind, name, folded, company, owner, tags, custom, notes) in zip(ids, clients, strict=True)
        ]
        await conn.exec_driver_sql(self._inserts[_CLIENTS.name], rows)
        return list(ids)

    async def _insert(self, conn: AsyncConnection, table: Table, rows: list[NewContact]) -> None:
        if rows:
            await conn.exec_driver_sql(self._inserts[table.name], rows)

    def _stamp(self, now: datetime) -> Any:
        return self._time(now)


def _positional(table: Table, columns: Sequence[str], dialect: Dialect) -> str:
    """`INSERT INTO table (columns) VALUES (?, ...)`, compiled by SQLAlchemy for `dialect`."""
    compiled = insert(table).values({name: bindparam(name) for name in columns}).compile(dialect=dialect)
    if compiled.positiontup != list(columns):
        raise AssertionError(f"{table.name}: expected the columns in the order {columns}")
    return str(compiled)


def _processor(column: Column[Any], dialect: Dialect) -> Callable[[Any], Any]:
    """What SQLAlchemy does to a value of `column` before it goes to the database driver."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else _same


def _same(value: Any) -> Any:
    return value
