"""Many new rows in one statement, with their ids in the order the rows were given.

SQLAlchemy keeps `INSERT … RETURNING` in parameter order on SQLite only by inserting row by row
(SQLite has no form of the statement that ties new rowids to the order of the rows), which made
a group commit of 32 inbound calls 64 round trips through the driver. Our SQLite writes hold the
file's write lock from `BEGIN IMMEDIATE` on (`crm.storage.store`), so the ids after the largest are ours
to give: the rows go in with them, in one `executemany`. PostgreSQL numbers the rows of one
statement in order (SQLAlchemy's batched, sorted RETURNING), so there RETURNING says.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Select, Table, func, insert, select
from sqlalchemy.engine import Connection

# Per table, built once: building a statement costs about what SQLite takes to run this one.
_LARGEST: dict[str, Select[tuple[Any]]] = {}


def next_id(conn: Connection, table: Table) -> int:
    """The id after the largest in `table` (SQLite; only under the write lock)."""
    largest = _LARGEST.get(table.name)
    if largest is None:
        largest = _LARGEST[table.name] = select(func.max(table.c.id))
    return int(conn.execute(largest).scalar() or 0) + 1


def insert_with_ids(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert `rows` (none of them naming an id) and return their new ids, in order."""
    if not rows:
        return []
    if conn.dialect.name == "sqlite":
        first = next_id(conn, table)
        ids = list(range(first, first + len(rows)))
        conn.execute(insert(table), [{**row, "id": i} for row, i in zip(rows, ids, strict=True)])
        return ids
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return [int(i) for i in conn.execute(stmt, rows).scalars()]
