"""CSV import of clients: read a file in any usual encoding, match every row, write in batches.

A row is matched to an existing client by any of its phones (E.164) or e-mail addresses, in the
database or earlier in the file, so an import never doubles a client and a second run of the same
file changes nothing. Each batch is one transaction. The file is read, and its rows parsed, in a
worker thread, so the event loop stays free while a large import runs.

The steps, one module each in `crm.files`, in the order a file meets them:
- `encodings`: which encoding the file is in;
- `rows`: the delimiter, the header, and each row checked and read into the client it proposes;
- `matching`: which client each row is, or why it is refused (the rules, in memory);
- `batches`: one batch's look-ups, matching and writes in one transaction, through
  `crm.storage.bulk_writes` (the SQLite fast path).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crm.domain.clock import Clock
from crm.files.batches import write_batch
from crm.files.import_errors import CsvFormatError, LineError
from crm.files.matching import Target
from crm.files.owners import Owners
from crm.files.rows import Reader, Record
from crm.storage.bulk_writes import bulk_writes
from crm.storage.store import Store

__all__ = ["CsvFormatError", "ImportReport", "LineError", "import_clients"]


@dataclass(slots=True)
class ImportReport:
    """What an import did; `created + updated + skipped` is the number of non-blank data rows."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "updated": self.updated,
            "skipped": self.skipped,
            "errors": [{"line": e.line, "reason": e.reason} for e in self.errors],
        }


async def import_clients(
    store: Store,
    path: Path,
    *,
    region: str,
    clock: Clock,
    progress: Callable[[int], None] | None = None,
    batch_size: int = 2000,
) -> ImportReport:
    """Import the clients of a CSV file; rows are matched by phone and e-mail, never doubled.

    Batches already written stay written when a later one fails (a `CsvFormatError` for a broken
    line, or a database error); running the file again matches them and imports the rest (rows
    with neither phone nor e-mail excepted: nothing can match those, so they are made again).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    async with store.reading() as s:
        owners = await Owners.active(s)
    reader = Reader(path, region, owners)
    writes = bulk_writes(store)
    report = ImportReport()
    companies: dict[str, int] = {}  # folded name → id of a company client, known to exist
    try:
        await asyncio.to_thread(reader.open)
        while True:
            records, position = await asyncio.to_thread(reader.read, batch_size)
            if not records:
                break
            rows: list[Target] = []
            for item in await asyncio.to_thread(reader.check, records):
                if isinstance(item, LineError):
                    report.skipped += 1
                    report.errors.append(item)
                else:
                    rows.append(item)
            if rows:
                again = functools.partial(_proposals, reader, records)
                outcome = await write_batch(store, rows, again, companies, clock, writes)
                report.created += outcome.created
                report.updated += outcome.updated
                report.skipped += outcome.skipped
                companies.update(outcome.companies)
                report.errors.extend(outcome.errors)
            if progress is not None:
                progress(position)
    finally:
        await asyncio.to_thread(reader.close)
    report.errors.sort(key=lambda e: e.line)
    return report


async def _proposals(reader: Reader, records: list[Record]) -> list[Target]:
    """The clients `records` propose, read afresh (their errors are reported already)."""
    return [item for item in await asyncio.to_thread(reader.check, records) if isinstance(item, Target)]
