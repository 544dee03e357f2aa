"""A store seeded with N clients (one phone each) and M calls, made fast and cached between runs.

The schema comes from the migrations (`Store.upgrade()`); the rows go in with raw sqlite3
`executemany`, one transaction per batch, with the journal and fsyncs off and the secondary
indexes dropped while seeding (they are rebuilt afterwards with the migrations' own SQL).
The result is cached as `bench/.cache/seed-{N}-{M}.db`; each run works on a copy.

    .venv/bin/python -m bench.seed [--quick] [--clients N] [--calls M] [--force]

Numbers are deterministic: client i (1-based) has `phone_for(i)`, call j has `call_sid(j)`, so
the load generator can name known callers and existing calls without reading the store.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
from sqlalchemy.engine import make_url

from crm.storage.store import Store

CACHE = Path(__file__).parent / ".cache"
FULL = (1_000_000, 10_000_000)
QUICK = (100_000, 1_000_000)
BATCH = 500_000
AGENTS = 3

# Real US area codes (phonenumbers calls these valid); 800 exchanges x 10,000 lines each.
KNOWN_AREAS = ("415", "212", "646", "617", "312", "206", "512", "702")
NEW_AREA = "303"  # numbers the seed never uses: callers the store does not know yet
PER_AREA = 800 * 10_000
EPOCH = datetime(2024, 1, 1, tzinfo=UTC)
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"


def _number(area: str, n: int) -> str:
    return f"+1{area}{200 + (n // 10_000) % 800:03}{n % 10_000:04}"


def phone_for(client: int) -> str:
    """The E.164 number of seeded client `client` (1-based)."""
    n = client - 1
    return _number(KNOWN_AREAS[n // PER_AREA], n % PER_AREA)


def new_number(n: int) -> str:
    """The `n`-th number that no seeded client has."""
    return _number(NEW_AREA, n % PER_AREA)


def call_sid(call: int) -> str:
    """The Twilio CallSid of seeded call `call` (1-based)."""
    return f"CA{call:032x}"


def cache_path(clients: int, calls: int) -> Path:
    return CACHE / f"seed-{clients}-{calls}.db"


def _ts(at: datetime) -> str:
    return at.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_TIME)


Stamp = Callable[[datetime], object]


def _client_rows(start: int, stop: int, ts: Stamp = _ts) -> Iterator[tuple[object, ...]]:
    for i in range(start, stop):
        at = ts(EPOCH + timedelta(seconds=i))
        yield (i, "person", f"Client {i}", f"client {i}", None, None, "[]", "{}", None, at, at, None)


def _phone_rows(start: int, stop: int) -> Iterator[tuple[object, ...]]:
    for i in range(start, stop):
        e164 = phone_for(i)
        yield (i, i, e164, e164, 0)


def _call_rows(start: int, stop: int, clients: int, ts: Stamp = _ts) -> Iterator[tuple[object, ...]]:
    for j in range(start, stop):
        client = (j * 7919) % clients + 1  # spread a client's calls over the whole history
        started = EPOCH + timedelta(seconds=j * 3)
        missed = j % 5 == 0
        yield (
            j,
            "twilio",
            call_sid(j),
            "inbound",
            phone_for(client),
            "+14155550100",
            client,
            None if missed else 1 + j % AGENTS,
            "missed" if missed else "completed",
            ts(started),
            None if missed else ts(started + timedelta(seconds=8)),
            ts(started + timedelta(seconds=30 if missed else 128)),
            None if missed else 120,
            None,
            None,
            None,
            "no_answer" if missed else "answered",
            False,
        )


CLIENT_COLUMNS = (
    "id, kind, name, name_folded, company_id, owner_id, tags, custom, notes, created_at, updated_at, "
    "last_interaction_at"
)
CALL_COLUMNS = (
    "id, provider, provider_call_id, direction, from_number, to_number, client_id, agent_id, status, "
    "started_at, answered_at, ended_at, duration_s, recording_url, outcome, notes, dial_outcome, "
    "has_voicemail"
)


def _bulk(
    db: sqlite3.Connection, sql: str, rows: Iterator[tuple[object, ...]], total: int, what: str
) -> None:
    done = 0
    started = time.perf_counter()
    while done < total:
        batch = min(BATCH, total - done)
        db.execute("BEGIN")
        db.executemany(sql, (next(rows) for _ in range(batch)))
        db.execute("COMMIT")
        done += batch
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"  {what}: {done:,}/{total:,} ({rate:,.0f} rows/s)", flush=True)


def _fill(path: Path, clients: int, calls: int) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-1000000")  # ~1 GB of page cache while seeding
        db.execute("PRAGMA foreign_keys=OFF")
        indexes = db.execute(
            "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL "
            "AND tbl_name IN ('clients', 'client_phones', 'calls')"
        ).fetchall()
        for name, _sql in indexes:
            db.execute(f'DROP INDEX "{name}"')
        now = _ts(datetime.now(UTC))
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO agents (id, name, phone, phone_raw, role, on_duty, created_at) "
            "VALUES (?, ?, ?, ?, ?, 1, ?)",
            [
                (
                    a,
                    f"Agent {a}",
                    f"+1415555{1000 + a}",
                    f"+1415555{1000 + a}",
                    "admin" if a == 1 else "agent",
                    now,
                )
                for a in range(1, AGENTS + 1)
            ],
        )
        db.execute("COMMIT")
        _bulk(
            db,
            f"INSERT INTO clients ({CLIENT_COLUMNS}) VALUES ({','.join('?' * 12)})",  # noqa: S608
            _client_rows(1, clients + 1),
            clients,
            "clients",
        )
        _bulk(
            db,
            "INSERT INTO client_phones (id, client_id, e164, raw, position) VALUES (?, ?, ?, ?, ?)",
            _phone_rows(1, clients + 1),
            clients,
            "client phones",
        )
        _bulk(
            db,
            f"INSERT INTO calls ({CALL_COLUMNS}) VALUES ({','.join('?' * 18)})",  # noqa: S608
            _call_rows(1, calls + 1, clients),
            calls,
            "calls",
        )
        started = time.perf_counter()
        for _name, sql in indexes:
            db.execute(sql)
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f} s", flush=True)
        db.execute("ANALYZE")
    finally:
        db.close()


async def _migrate(path: Path) -> None:
    store = Store(f"sqlite+aiosqlite:///{path}", pool_size=1)
    try:
        await store.upgrade()
    finally:
        await store.close()


def seeded(clients: int, calls: int, *, force: bool = False) -> Path:
    """The cached seeded store for these sizes, made now when missing."""
    path = cache_path(clients, calls)
    if path.exists() and not force:
        print(f"seed: using cached {path} ({path.stat().st_size / 2**20:,.0f} MB)", flush=True)
        return path
    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    print(f"seed: {clients:,} clients and {calls:,} calls into {path}", flush=True)
    asyncio.run(_migrate(partial))
    _fill(partial, clients, calls)
    for suffix in ("-wal", "-shm"):
        Path(f"{partial}{suffix}").unlink(missing_ok=True)
    partial.rename(path)
    print(
        f"seed: done in {time.perf_counter() - started:.1f} s ({path.stat().st_size / 2**20:,.0f} MB)",
        flush=True,
    )
    return path


def work_copy(clients: int, calls: int, target: Path) -> Path:
    """A fresh copy of the seeded store at `target`, for one run to write into."""
    source = seeded(clients, calls)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{target}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    shutil.copyfile(source, target)
    print(f"seed: copied to {target} in {time.perf_counter() - started:.1f} s", flush=True)
    return target


# -- PostgreSQL: a seeded template database, copied per run with CREATE DATABASE … TEMPLATE -----


def pg_seed_name(clients: int, calls: int) -> str:
    return f"crm_bench_seed_{clients}_{calls}"


def _pg_dsn(url: str, database: str) -> str:
    return make_url(url).set(drivername="postgresql", database=database).render_as_string(hide_password=False)


def _pg_url(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


def _identity(at: datetime) -> object:
    return at


async def _pg_copy(
    conn: asyncpg.Connection, table: str, columns: str, rows: Iterator[tuple[object, ...]], total: int
) -> None:
    names = [c.strip() for c in columns.split(",")]
    done = 0
    started = time.perf_counter()
    while done < total:
        batch = min(BATCH, total - done)
        await conn.copy_records_to_table(table, records=[next(rows) for _ in range(batch)], columns=names)
        done += batch
        rate = done / max(time.perf_counter() - started, 1e-9)
        print(f"  {table}: {done:,}/{total:,} ({rate:,.0f} rows/s)", flush=True)


async def _pg_fill(url: str, name: str, clients: int, calls: int) -> None:
    conn = await asyncpg.connect(_pg_dsn(url, name))
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' "
            "AND tablename IN ('clients', 'client_phones', 'calls') "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
        for row in indexes:
            await conn.execute(f'DROP INDEX "{row["indexname"]}"')
        now = datetime.now(UTC)
        await conn.executemany(
            "INSERT INTO agents (id, name, phone, phone_raw, role, on_duty, created_at) "
            "VALUES ($1, $2, $3, $3, $4, true, $5)",
            [
                (a, f"Agent {a}", f"+1415555{1000 + a}", "admin" if a == 1 else "agent", now)
                for a in range(1, AGENTS + 1)
            ],
        )
        await _pg_copy(conn, "clients", CLIENT_COLUMNS, _client_rows(1, clients + 1, _identity), clients)
        await _pg_copy(
            conn, "client_phones", "id, client_id, e164, raw, position", _phone_rows(1, clients + 1), clients
        )
        await _pg_copy(conn, "calls", CALL_COLUMNS, _call_rows(1, calls + 1, clients, _identity), calls)
        started = time.perf_counter()
        for row in indexes:
            await conn.execute(row["indexdef"])
        print(f"  indexes rebuilt in {time.perf_counter() - started:.1f} s", flush=True)
        for table in ("agents", "clients", "client_phones", "calls"):
            await conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"  # noqa: S608
            )
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def pg_seeded(url: str, clients: int, calls: int, *, force: bool = False) -> str:
    """The name of the seeded template database on the server of `url`, made now when missing."""
    name = pg_seed_name(clients, calls)
    admin = await asyncpg.connect(_pg_dsn(url, make_url(url).database or "postgres"))
    try:
        exists = await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists and not force:
            print(f"seed: using cached database {name}", flush=True)
            return name
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}_partial" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}_partial"')
    finally:
        await admin.close()
    started = time.perf_counter()
    print(f"seed: {clients:,} clients and {calls:,} calls into database {name}", flush=True)
    store = Store(_pg_url(url, f"{name}_partial"), pool_size=1)
    try:
        await store.upgrade()
    finally:
        await store.close()
    await _pg_fill(url, f"{name}_partial", clients, calls)
    admin = await asyncpg.connect(_pg_dsn(url, make_url(url).database or "postgres"))
    try:
        await admin.execute(f'ALTER DATABASE "{name}_partial" RENAME TO "{name}"')
    finally:
        await admin.close()
    print(f"seed: done in {time.perf_counter() - started:.1f} s", flush=True)
    return name


async def pg_work_copy(url: str, clients: int, calls: int, target: str) -> str:
    """A fresh copy of the seeded database named `target`; returns its SQLAlchemy URL."""
    source = await pg_seeded(url, clients, calls)
    admin = await asyncpg.connect(_pg_dsn(url, make_url(url).database or "postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{target}" WITH (FORCE)')
        started = time.perf_counter()
        await admin.execute(f'CREATE DATABASE "{target}" TEMPLATE "{source}"')
        print(f"seed: copied to database {target} in {time.perf_counter() - started:.1f} s", flush=True)
    finally:
        await admin.close()
    return _pg_url(url, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK[0]:,} clients, {QUICK[1]:,} calls")
    parser.add_argument("--clients", type=int, default=None)
    parser.add_argument("--calls", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="seed again even when cached")
    parser.add_argument("--database-url", help="postgresql+asyncpg://… to seed a template database there")
    args = parser.parse_args()
    clients, calls = QUICK if args.quick else FULL
    clients, calls = args.clients or clients, args.calls or calls
    if args.database_url:
        asyncio.run(pg_seeded(args.database_url, clients, calls, force=args.force))
    else:
        seeded(clients, calls, force=args.force)


if __name__ == "__main__":
    main()
