"""CSV import of clients: read a file in any usual encoding, match every row, write in batches.

A row is matched to an existing client by any of its phones (E.164) or e-mail addresses, in the
database or earlier in the file, so an import never doubles a client and a second run of the same
file changes nothing. Each batch is one transaction: look-ups first (one query per kind), then bulk
inserts and updates. The file is read, and its rows parsed, in a worker thread, so the event loop
stays free while a large import runs.

Files run to millions of rows, so per row there is only the row's own work: each is read straight
into the client it would create, cells that repeat (a number's spelling, a company, an owner) are
read once, rows are matched in dicts, and on SQLite the inserts run as the driver's `executemany`
of plain tuples (`_SqliteWrites`).

A cell the export wrote with a leading `'` (so that a spreadsheet shows `=...` as text, not as a
formula) is read without it: `crm.files.csv_export.unescape_cell`, only for cells that begin with `'`.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import functools
import io
import itertools
import json
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import charset_normalizer
from sqlalchemy import Column, ColumnElement, String, Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.exc import StaleDataError

from crm.domain.clock import Clock
from crm.domain.errors import InvalidInput, InvalidPhone
from crm.domain.models import CLIENT_EMAILS, CLIENT_PHONES, CLIENTS, Agent
from crm.domain.phones import format_international, parse_phone
from crm.domain.text import MAX_NAME, clean_name, fold, normalize_email, split_list
from crm.files.csv_export import unescape_cell
from crm.storage.new_ids import next_id
from crm.storage.store import Store

KNOWN = ("name", "phone", "email", "company", "tags", "notes", "owner")
ALIASES = {"phones": "phone", "emails": "email", "e-mail": "email", "e-mails": "email", "tag": "tags"}
DELIMITERS = ",;\t"
# Code pages spreadsheet programs save "CSV" in (Windows ANSI code pages, KOI8-R), most common first.
LEGACY_ENCODINGS = (
    "cp1252",
    "cp1250",
    "cp1251",
    "cp1253",
    "cp1254",
    "cp1257",
    "cp1255",
    "cp1256",
    "cp1258",
    "cp874",
    "cp932",
    "gb18030",
    "big5",
    "cp949",
    "koi8_r",
)

_CLIENTS: Table = CLIENTS
_PHONES: Table = CLIENT_PHONES
_EMAILS: Table = CLIENT_EMAILS
_MAX_RAW_PHONE = 64  # client_phones.raw
_SAMPLE = 1 << 20  # bytes read at a time, and at most given to charset_normalizer
# The columns an import inserts, in the order of their values in a row to insert.
_ROW_COLUMNS = {
    "clients": (
        *("kind", "name", "name_folded", "company_id", "owner_id"),
        *("tags", "custom", "notes", "created_at", "updated_at"),
    ),
    "client_phones": ("client_id", "e164", "raw", "position"),
    "client_emails": ("client_id", "address", "raw", "position"),
}
_CACHED = 1 << 16  # distinct cells a reader remembers the reading of
_IN_CHUNK = 5000  # values per IN (...): far below SQLite's and asyncpg's parameter limits
_ATTEMPTS = 3  # a batch whose numbers another writer took meanwhile is redone from its look-ups
_NONE: frozenset[str] = frozenset()  # one for all: `frozenset()` makes a new one each time
_K = TypeVar("_K")
_V = TypeVar("_V")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE, whose BOM is its prefix
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True, slots=True)
class LineError:
    """Something wrong with one row; `line` is the physical line in the file, the header is 1."""

    line: int
    reason: str


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


class CsvFormatError(Exception):
    """The file as a whole cannot be imported (no header, no usable column, unknown encoding)."""


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
        active = select(Agent.id, Agent.name, Agent.phone).where(Agent.removed_at.is_(None))
        owners = _Owners.of((await s.execute(active)).all())
    reader = _Reader(path, region, owners)
    sqlite = _SqliteWrites(store.engine.dialect) if store.is_sqlite else None
    report = ImportReport()
    companies: dict[str, int] = {}  # folded name → id of a company client, known to exist
    try:
        await asyncio.to_thread(reader.open)
        while True:
            records, position = await asyncio.to_thread(reader.read, batch_size)
            if not records:
                break
            rows: list[_Client] = []
            for item in await asyncio.to_thread(reader.check, records):
                if isinstance(item, LineError):
                    report.skipped += 1
                    report.errors.append(item)
                else:
                    rows.append(item)
            if rows:
                again = functools.partial(_proposals, reader, records)
                outcome = await _write_batch(store, rows, again, companies, clock, sqlite)
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


# -- reading the file ----------------------------------------------------------------------


# A non-blank row of the file as read: the physical line it starts on, and its cells. Plain
# tuples of numbers and text, which the garbage collector soon stops following (lists, or named
# tuples, it would follow and count for as long as a batch lives).
_Record = tuple[int, tuple[str, ...]]


@dataclass(slots=True, eq=False)  # one client is one object: compared by identity
class _Client:
    """A client a batch writes to: one stored (`id`), or the one a row of the file proposes.

    Each row is read into the client it would create. A batch keeps that client when the row
    matches no other, and otherwise folds the row into the client it matches (`_Batch._merge`):
    the proposal is dropped. (One object per row, not a row and then a client: a batch holds
    thousands, and each costs the garbage collector's full collections a visit.)

    Which numbers and addresses a client has is not kept here: the batch's `by_phone` and
    `by_email` know every one of its rows' numbers and addresses, and whose each is.
    """

    id: int | None
    line: int  # of the row that proposes it (or names it, a company); 0 if stored
    kind: str
    name: str
    folded: str  # crm.domain.text.fold(name): of a proposal, worked out in the reading thread
    company: int | _Client | None = None
    owner_id: int | None = None
    tags: tuple[str, ...] = ()
    custom: dict[str, Any] = field(default_factory=dict)
    notes: str | None = None
    raw_phones: frozenset[str] = _NONE  # texts kept for numbers that are none
    new_phones: tuple[tuple[str | None, str, int], ...] = ()  # (E.164 or None, as written, position)
    new_emails: tuple[tuple[str, str, int], ...] = ()  # (address, as written, position)
    next_phone: int = 0
    next_email: int = 0
    # A proposal's row: the company it names (a company's own row names itself, `kind`), and
    # what to report about it although it is imported.
    company_name: str | None = None
    company_folded: str | None = None
    problems: tuple[str, ...] = ()
    # A stored client's: whether the batch changed it, and what it was (`_Batch._state`).
    changed: bool = False
    loaded: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"client {self.id}" if self.id is not None else f"the new client of line {self.line}"


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each field is in a row: known fields may come from several columns."""

    known: dict[str, tuple[int, ...]]
    custom: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, header: Sequence[str], line: int) -> _Columns:
        known: dict[str, list[int]] = {}
        custom: list[tuple[int, str]] = []
        for i, cell in enumerate(header):
            title = cell.strip()
            if title[:1] == "'":
                title = unescape_cell(title)
            key = ALIASES.get(title.casefold(), title.casefold())
            if key in KNOWN:
                known.setdefault(key, []).append(i)
            elif title:
                custom.append((i, title))
        if not {"name", "phone", "email"} & known.keys():
            found = ", ".join(repr(c.strip()) for c in header if c.strip()) or "nothing"
            raise CsvFormatError(
                f"line {line}: no name, phone or email column; the first line must name the columns "
                f"({', '.join(KNOWN)}), found {found}"
            )
        return cls({key: tuple(where) for key, where in known.items()}, tuple(custom))

    def values(self, row: Sequence[str], key: str) -> list[str]:
        """The field's values in its cells: a cell `a; b, c` holds three, most cells one."""
        found: list[str] = []
        for i in self.known.get(key, ()):
            if i < len(row) and (cell := row[i].strip()):
                if cell[0] == "'":
                    cell = unescape_cell(cell)
                if ";" in cell or "," in cell:
                    found += split_list(cell)
                else:
                    found.append(cell)
        return found

    def first(self, row: Sequence[str], key: str) -> str | None:
        for i in self.known.get(key, ()):
            if i < len(row) and (cell := row[i].strip()):
                return unescape_cell(cell) if cell[0] == "'" else cell
        return None


class _Owners:
    """Active agents, to read an `owner` cell as a name (any case) or a phone number."""

    def __init__(self, by_name: dict[str, list[int]], by_phone: dict[str, int]) -> None:
        self.by_name = by_name
        self.by_phone = by_phone

    @classmethod
    def of(cls, agents: Iterable[tuple[int, str, str | None]]) -> _Owners:
        by_name: dict[str, list[int]] = {}
        by_phone: dict[str, int] = {}
        for agent_id, name, phone in agents:
            by_name.setdefault(_name_key(name), []).append(agent_id)
            if phone:
                by_phone[phone] = agent_id
        return cls(by_name, by_phone)

    def find(self, text: str, region: str) -> int:
        """The agent `text` names, or `ValueError` saying why there is none."""
        ids = self.by_name.get(_name_key(text), [])
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise ValueError(f"owner {text!r}: {len(ids)} active agents have that name; give their phone")
        try:
            return self.by_phone[parse_phone(text, region).e164]
        except (InvalidPhone, KeyError):
            raise ValueError(f"owner {text!r}: no active agent has that name or phone") from None


class _Reader:
    """The file as batches of checked rows. It blocks on the disk: run its methods in a thread."""

    def __init__(self, path: Path, region: str, owners: _Owners) -> None:
        self.path = path
        self.region = region
        self.owners = owners
        self._binary: io.BufferedReader | None = None
        self._text: TextIO | None = None
        self._records: Iterator[tuple[int, list[str]]] = iter(())
        self._columns: _Columns | None = None
        # Cells that files repeat (a number spelled the same way, a company, an owner): read once.
        self._phones: dict[str, tuple[str, str] | str] = {}  # spelling → (E.164, spelling), or why not
        self._companies: dict[str, tuple[str, str] | str] = {}  # cell → (name, folded), or the error
        self._owner_ids: dict[str, int | str] = {}  # cell → agent id, or the error

    def open(self) -> None:
        encoding = _encoding_of(self.path)
        self._binary = self.path.open("rb")
        self._text = io.TextIOWrapper(self._binary, encoding=encoding, newline="")
        self._records = self._read(self._text)
        try:
            line, header = next(self._records)
        except StopIteration:
            raise CsvFormatError("the file is empty: no header row") from None
        self._columns = _Columns.of(header, line)

    def close(self) -> None:
        if self._text is not None:
            self._text.close()
        elif self._binary is not None:
            self._binary.close()

    @property
    def position(self) -> int:
        """Bytes of the file read so far (read ahead by a buffer's worth)."""
        return self._binary.tell() if self._binary is not None and not self._binary.closed else 0

    def read(self, size: int) -> tuple[list[_Record], int]:
        """The next `size` rows, and how many bytes of the file are read after them."""
        rows = [(line, tuple(cells)) for line, cells in itertools.islice(self._records, size)]
        return rows, self.position

    def check(self, rows: list[_Record]) -> list[_Client | LineError]:
        """Each row read into the client it proposes, or the `LineError` that keeps it out."""
        assert self._columns is not None, "open() first"
        # The numbers first, one after another: phonenumbers, most of the reading, runs markedly
        # faster so, its code and data warm in the processor's caches (`_check` then finds each
        # in `_phones`).
        for _, cells in rows:
            for text in self._columns.values(cells, "phone"):
                self._phone(text)
        return [self._check(line, cells, self._columns) for line, cells in rows]

    @staticmethod
    def _read(text: TextIO) -> Iterator[tuple[int, list[str]]]:
        """Non-blank records with the physical line each starts on; the delimiter is sniffed."""
        lines = iter(text)
        head: list[str] = []
        for line in lines:
            head.append(line)
            if line.strip():
                break
        if not head:
            return
        try:
            delimiter = csv.Sniffer().sniff(head[-1], delimiters=DELIMITERS).delimiter
        except csv.Error:
            delimiter = ","
        reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter)
        while True:
            start = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise CsvFormatError(f"line {start}: {exc}") from None
            if "".join(cells).strip():  # some cell holds more than white space
                yield start, cells

    def _check(self, line: int, cells: Sequence[str], columns: _Columns) -> _Client | LineError:
        problems: list[str] = []
        # (E.164, as written, position), as `_Client.new_phones`; the texts kept for numbers that
        # are none come after the numbers.
        phones: list[tuple[str | None, str, int]] = []
        raw_phones: list[str] = []
        for text in columns.values(cells, "phone"):
            phone = self._phone(text)
            if isinstance(phone, str):
                if text[:_MAX_RAW_PHONE] not in raw_phones:
                    raw_phones.append(text[:_MAX_RAW_PHONE])
                problems.append(f"phone {text!r}: {phone}")
            elif not phones or all(e164 != phone[0] for e164, _, _ in phones):
                phones.append((phone[0], phone[1][:_MAX_RAW_PHONE], len(phones)))
        emails: list[tuple[str, str, int]] = []  # (address, as written, position)
        for text in columns.values(cells, "email"):
            try:
                address = normalize_email(text)
            except ValueError as exc:
                problems.append(f"email {text!r}: {str(exc).removeprefix(f'{text!r} is ')}")
                continue
            if not emails or all(a != address for a, _, _ in emails):
                emails.append((address, text, len(emails)))

        name = columns.first(cells, "name")
        if name is None and not phones and not emails:
            return LineError(line, "; ".join(["no name, phone or email", *problems]))
        owner_id = None
        if (owner := columns.first(cells, "owner")) is not None:
            found = self._owner(owner)
            if isinstance(found, str):
                return LineError(line, found)
            owner_id = found
        try:
            name = clean_name(name) if name is not None else _name_of(phones, emails)
        except InvalidInput as exc:
            return LineError(line, _fields(exc))
        company = company_folded = None
        if (cell := columns.first(cells, "company")) is not None:
            named = self._company(cell)
            if isinstance(named, str):
                return LineError(line, named)
            company, company_folded = named

        tags: list[str] = []
        for tag in columns.values(cells, "tags"):
            tag = " ".join(tag.split())
            if tag not in tags:
                tags.append(tag)
        custom: list[tuple[str, str]] = []
        for i, title in columns.custom:
            if (
                i < len(cells)
                and (value := cells[i].strip())
                and (not custom or all(t != title for t, _ in custom))
            ):
                custom.append((title, unescape_cell(value) if value[0] == "'" else value))
        folded = fold(name)
        first = len(phones)
        phones += [(None, raw, first + i) for i, raw in enumerate(raw_phones)]
        return _Client(
            id=None,
            line=line,
            kind="company" if company_folded == folded else "person",
            name=name,
            folded=folded,
            owner_id=owner_id,
            tags=tuple(tags),
            custom=dict(custom),
            notes=columns.first(cells, "notes"),
            raw_phones=frozenset(raw_phones) if raw_phones else _NONE,
            new_phones=tuple(phones),
            new_emails=tuple(emails),
            next_phone=len(phones),
            next_email=len(emails),
            company_name=company,
            company_folded=company_folded,
            problems=tuple(map(_kept, problems)),
        )

    def _phone(self, text: str) -> tuple[str, str] | str:
        """`text` read as a number, (E.164, as written), or why it is none."""
        found = self._phones.get(text)
        if found is None:
            try:
                phone = parse_phone(text, self.region)
            except InvalidPhone as exc:
                found = _phone_reason(exc, text)
            else:
                found = (phone.e164, phone.raw)
            _remember(self._phones, text, found)
        return found

    def _company(self, cell: str) -> tuple[str, str] | str:
        """The company's name and folded name, or why the cell is none."""
        found = self._companies.get(cell)
        if found is None:
            try:
                name = clean_name(cell, field="company")
            except InvalidInput as exc:
                found = _fields(exc)
            else:
                found = (name, fold(name))
            _remember(self._companies, cell, found)
        return found

    def _owner(self, cell: str) -> int | str:
        """The id of the agent the cell names, or why there is none."""
        found = self._owner_ids.get(cell)
        if found is None:
            try:
                found = self.owners.find(cell, self.region)
            except ValueError as exc:
                found = str(exc)
            _remember(self._owner_ids, cell, found)
        return found


def _encoding_of(path: Path) -> str:
    """The file's encoding: by its BOM, else UTF-8 if all of it decodes so, else a good guess.

    All of the file is checked, streaming: a non-ASCII byte may first appear on line 900,000.
    """
    with path.open("rb") as f:
        head = f.read(_SAMPLE)
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            return encoding
    if b"\x00" in head:  # valid UTF-8, but text with NULs is UTF-16 or UTF-32 without a BOM
        best = charset_normalizer.from_bytes(head).best()
        guess = str(best.encoding) if best is not None else None
    elif _first_undecodable(path, "utf-8") is None:
        return "utf-8"
    else:
        guess = _guess_legacy(_non_ascii_lines(path))
    if guess is None:
        raise CsvFormatError("cannot tell the file's encoding; save it as UTF-8 and import again")
    bad = _first_undecodable(path, guess)
    if bad is not None:
        raise CsvFormatError(
            f"the file is neither UTF-8 nor {guess} (byte {bad} does not decode); "
            "save it as UTF-8 and import again"
        )
    return guess


def _guess_legacy(sample: bytes) -> str | None:
    """The code page a spreadsheet program most likely saved `sample` in.

    Only the code pages Excel writes "CSV" in are considered (left free, charset_normalizer
    reads a German line as mac_iceland). Encodings that read the sample equally well are told
    apart by how many of its non-ASCII characters come out as letters (Polish in cp1252 comes
    out as `£ukasz`), then by how common they are: cp1252 first.
    """
    matches = list(charset_normalizer.from_bytes(sample, cp_isolation=list(LEGACY_ENCODINGS)))
    if not matches:
        return None
    least = min(m.chaos for m in matches)
    candidates = {
        str(e) for m in matches if m.chaos == least for e in m.could_be_from_charset if e in LEGACY_ENCODINGS
    }
    if not candidates:
        return None
    return max(candidates, key=lambda e: (_letter_share(sample, e), -LEGACY_ENCODINGS.index(e)))


def _letter_share(sample: bytes, encoding: str) -> float:
    other = [c for c in sample.decode(encoding, errors="replace") if not c.isascii()]
    return sum(c.isalpha() for c in other) / len(other) if other else 0.0


def _non_ascii_lines(path: Path) -> bytes:
    """Up to a sample's worth of the lines that tell one encoding from another."""
    found = bytearray()
    with path.open("rb") as f:
        for line in f:
            if not line.isascii():
                found += line
                if len(found) >= _SAMPLE:
                    break
    return bytes(found)


def _first_undecodable(path: Path, encoding: str) -> int | None:
    """The offset of the first byte that does not decode, streaming the file; None if all do."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset = 0
    with path.open("rb") as f:
        while chunk := f.read(_SAMPLE):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as exc:
                return offset + max(exc.start, 0)
            offset += len(chunk)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return offset
    return None


def _fields(exc: InvalidInput) -> str:
    return "; ".join(f"{k}: {v}" for k, v in exc.fields.items())


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    """Keep `value` for `key`, forgetting everything once a cache is full (memory stays bounded)."""
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _name_of(phones: list[tuple[str | None, str, int]], emails: list[tuple[str, str, int]]) -> str:
    """A name for a row that has none: its first number as people read it, else its address."""
    first = phones[0][0] if phones else None
    return format_international(first) if first is not None else emails[0][1][:MAX_NAME]


def _phone_reason(exc: InvalidPhone, text: str) -> str:
    message = str(exc)
    for prefix in (f"{text}: ", f"{text!r}: "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message


def _kept(problem: str) -> str:
    """What happened to a bad value of a row that is imported anyway."""
    return f"{problem}; kept as text" if problem.startswith("phone ") else f"{problem}; dropped"


async def _proposals(reader: _Reader, records: list[_Record]) -> list[_Client]:
    """The clients `records` propose, read afresh (their errors are reported already)."""
    return [item for item in await asyncio.to_thread(reader.check, records) if isinstance(item, _Client)]


# -- writing a batch -----------------------------------------------------------------------


@dataclass(slots=True)
class _Outcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)
    companies: dict[str, int] = field(default_factory=dict)


class _SqliteWrites:
    """How a batch inserts rows on SQLite: SQLAlchemy's own INSERT statements, compiled once,
    run as the driver's `executemany` over tuples of values as SQLite stores them.

    Core's `executemany` builds a dict per row, then a tuple, and puts each value through its
    column's type: more work than SQLite's own for the row. Here numbers and text go as they
    are, and a new client's tags, custom fields and time stamps are put through their columns'
    bind processors, as SQLAlchemy would, but once per distinct value (a file's rows share a
    few tag sets and custom fields, a batch shares its time stamp). SQLite only: there these
    processors are all the typing a value gets (no casts in the SQL).
    """

    def __init__(self, dialect: Dialect) -> None:
        self._tags = _processor(_CLIENTS.c.tags, dialect)
        self._custom = _processor(_CLIENTS.c.custom, dialect)
        self._time = _processor(_CLIENTS.c.created_at, dialect)
        self._tags_json: dict[tuple[str, ...], Any] = {}
        self._custom_json: dict[tuple[tuple[str, Any], ...], Any] = {}
        self._inserts = {
            table.name: _positional(table, _ROW_COLUMNS[table.name], dialect) for table in (_PHONES, _EMAILS)
        }
        # New clients come with their ids (`_insert_clients`).
        self._inserts[_CLIENTS.name] = _positional(_CLIENTS, ("id", *_ROW_COLUMNS["clients"]), dialect)

    def insert(self, table: Table) -> str:
        """`INSERT INTO table (...) VALUES (?, ...)` for rows of the values `_ROW_COLUMNS` names
        (a client's id first)."""
        return self._inserts[table.name]

    def client(self, target: _Client, company_id: int | None, stamp: Any) -> tuple[Any, ...]:
        """The values of one new client but its id, for `insert(_CLIENTS)`; `stamp` is
        `self.time(now)`."""
        return (
            target.kind,
            target.name,
            target.folded,
            company_id,
            target.owner_id,
            self._encoded_tags(target.tags),
            self._encoded_custom(target.custom),
            target.notes,
            stamp,
            stamp,
        )

    def time(self, now: datetime) -> Any:
        return self._time(now)

    def _encoded_tags(self, tags: tuple[str, ...]) -> Any:
        found = self._tags_json.get(tags)
        if found is None:
            found = self._tags(list(tags))
            _remember(self._tags_json, tags, found)
        return found

    def _encoded_custom(self, custom: dict[str, Any]) -> Any:
        # A new client's custom values are text from the file: equal items, equal JSON.
        items = tuple(custom.items())
        found = self._custom_json.get(items)
        if found is None:
            found = self._custom(custom)
            _remember(self._custom_json, items, found)
        return found


async def _write_batch(
    store: Store,
    rows: list[_Client],
    again: Callable[[], Awaitable[list[_Client]]],
    companies: dict[str, int],
    clock: Clock,
    sqlite: _SqliteWrites | None,
) -> _Outcome:
    """Write one batch in one transaction; redo it if a concurrent writer took one of its numbers.

    A redo starts from `again()`: the rows read afresh, as an attempt changes the clients they
    propose (keeps them, folds later rows into them, gives them ids).
    """
    for attempt in range(1, _ATTEMPTS + 1):
        if attempt > 1:
            rows = await again()
        try:
            async with store.session() as s:
                return await _Batch(s, rows, companies, clock, sqlite).write()
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
            companies.clear()  # a cached company may be the row that went away
    raise AssertionError("unreachable")


class _Batch:
    """The decisions for one batch of rows, taken against the database inside its transaction."""

    def __init__(
        self,
        s: AsyncSession,
        rows: list[_Client],
        companies: dict[str, int],
        clock: Clock,
        sqlite: _SqliteWrites | None,
    ) -> None:
        self.s = s
        self.sqlite = sqlite
        self.rows = rows
        self.now = clock.now()
        self.outcome = _Outcome()
        self.stored: dict[int, _Client] = {}
        self.new: list[_Client] = []
        self.by_phone: dict[str, int | _Client] = {}
        self.by_email: dict[str, int | _Client] = {}
        self.companies: dict[str, int | _Client] = dict(companies)

    async def write(self) -> _Outcome:
        await self._look_up()
        for row in self.rows:
            self._take(row)
        await self._insert()
        await self._update()
        return self.outcome

    async def _look_up(self) -> None:
        """Who owns the batch's numbers, addresses and company names, and those clients' state."""
        e164s = {e164 for r in self.rows for e164, _, _ in r.new_phones if e164 is not None}
        addresses = {a for r in self.rows for a, _, _ in r.new_emails}
        names = {r.company_folded for r in self.rows if r.company_folded} - self.companies.keys()
        # Core columns, not the ORM's: rows come back as plain tuples, without ORM loading.
        for chunk in _chunks(e164s):
            stmt = select(_PHONES.c.e164, _PHONES.c.client_id).where(self._among(_PHONES.c.e164, chunk))
            for e164, client_id in await self.s.execute(stmt):
                self.by_phone[e164] = client_id
        for chunk in _chunks(addresses):
            stmt = select(_EMAILS.c.address, _EMAILS.c.client_id).where(self._among(_EMAILS.c.address, chunk))
            for address, client_id in await self.s.execute(stmt):
                self.by_email[address] = client_id
        for chunk in _chunks(names):
            stmt = (
                select(_CLIENTS.c.name_folded, _CLIENTS.c.id)
                .where(_CLIENTS.c.kind == "company", self._among(_CLIENTS.c.name_folded, chunk))
                .order_by(_CLIENTS.c.id)
            )
            for folded, client_id in await self.s.execute(stmt):
                self.companies.setdefault(folded, client_id)
                self.outcome.companies.setdefault(folded, client_id)
        ids = {v for v in [*self.by_phone.values(), *self.by_email.values()] if isinstance(v, int)}
        ids |= {
            c for r in self.rows if r.kind == "company" and isinstance(c := self.companies.get(r.folded), int)
        }
        await self._load(ids)

    async def _load(self, ids: set[int]) -> None:
        """The stored clients the batch may write to: their columns, and the positions their
        next number and address take (one query; their numbers' texts only if rows need them)."""
        c, p, e = _CLIENTS.c, _PHONES.c, _EMAILS.c
        last_phone = select(func.max(p.position)).where(p.client_id == c.id).scalar_subquery()
        last_email = select(func.max(e.position)).where(e.client_id == c.id).scalar_subquery()
        clients = select(
            *(c.id, c.kind, c.name, c.name_folded, c.company_id, c.owner_id, c.tags, c.custom, c.notes),
            *(last_phone, last_email),
        )
        # Only a row's numbers that are none (kept as text) are compared with the stored ones.
        # (Filtered here, not by `e164 IS NULL`: SQLite would look that up in the e164 index.)
        phones = select(p.client_id, p.e164, p.raw)
        with_raw_phones = any(row.raw_phones for row in self.rows)
        for chunk in _chunks(ids):
            for row in await self.s.execute(clients.where(self._among(c.id, chunk)).order_by(c.id)):
                client_id, kind, name, folded, company_id, owner_id, tags, custom, notes, phone, email = row
                self.stored[client_id] = target = _Client(
                    id=client_id,
                    line=0,
                    kind=kind,
                    name=name,
                    folded=folded,
                    company=company_id,
                    owner_id=owner_id,
                    tags=tuple(tags or ()),
                    custom=dict(custom or {}),
                    notes=notes,
                    next_phone=0 if phone is None else phone + 1,
                    next_email=0 if email is None else email + 1,
                )
                target.loaded = self._state(target)
            if with_raw_phones:
                for client_id, e164, raw in await self.s.execute(
                    phones.where(self._among(p.client_id, chunk))
                ):
                    if e164 is None:
                        self.stored[client_id].raw_phones |= {raw}
        # On PostgreSQL a client may be deleted between the look-ups and the load; its numbers
        # went with it, so they are free again.
        for index in (self.by_phone, self.by_email):
            for key in [k for k, v in index.items() if v not in self.stored]:
                del index[key]

    def _among(self, column: Column[Any], values: list[Any]) -> ColumnElement[bool]:
        """`column IN (values)`. On SQLite the values go as one JSON array, read by `json_each`:
        SQLAlchemy would otherwise name, bind and render a parameter for each, at every query."""
        if self.sqlite is None:
            return column.in_(values)
        return column.in_(select(func.json_each(json.dumps(values)).table_valued("value").c.value))

    def _target(self, ref: int | _Client) -> _Client:
        return self.stored[ref] if isinstance(ref, int) else ref

    def _take(self, row: _Client) -> None:
        """Match one row and fold it into its client, or keep the client it proposes, or refuse it."""
        by_phone, by_email = self.by_phone, self.by_email
        phone_refs = [None if e164 is None else by_phone.get(e164) for e164, _, _ in row.new_phones]
        email_refs = [by_email.get(address) for address, _, _ in row.new_emails]
        found: list[_Client] = []
        for ref in (*phone_refs, *email_refs):
            if ref is not None and (target := self._target(ref)) not in found:
                found.append(target)
        if not found and row.kind == "company" and (ref := self.companies.get(row.folded)) is not None:
            found.append(self._target(ref))
        if len(found) > 1:
            stored = sorted(t.id for t in found if t.id is not None)
            names = [f"clients {_and(map(str, stored))}"] if len(stored) > 1 else []
            names += [t.describe() for t in found if t.id is None or len(stored) == 1]
            self.outcome.skipped += 1
            self.outcome.errors.append(LineError(row.line, f"matches {_and(names)}; merge them first"))
            return
        if row.problems:
            self.outcome.errors.extend(LineError(row.line, problem) for problem in row.problems)
        if found:
            target = found[0]
            if self._merge(target, row, phone_refs, email_refs):
                self.outcome.updated += 1
            else:
                self.outcome.skipped += 1
        else:
            target = self._keep(row)
            self.outcome.created += 1
        for e164, _, _ in row.new_phones:
            if e164 is not None:
                by_phone[e164] = target
        for address, _, _ in row.new_emails:
            by_email[address] = target

    def _keep(self, client: _Client) -> _Client:
        """A new client: one a row proposes (with its company, found or made), or a company."""
        self.new.append(client)
        if client.kind == "company":
            self.companies.setdefault(client.folded, client)
        elif client.company_name and client.company_folded:
            client.company = self._company(client.company_name, client.company_folded, client.line)
        return client

    def _merge(
        self,
        target: _Client,
        row: _Client,
        phone_refs: list[int | _Client | None],
        email_refs: list[int | _Client | None],
    ) -> bool:
        """Add what the row knows and the client does not; never overwrite. True if it changed.

        `phone_refs` and `email_refs` say whose each of the row's numbers and addresses is: the
        row matched no other client, so each is the target's or still nobody's.
        """
        changed = False
        for (e164, raw, _), ref in zip(row.new_phones, phone_refs, strict=True):
            if e164 is not None:
                if ref is None:
                    target.new_phones += ((e164, raw, target.next_phone),)
                    target.next_phone += 1
                    changed = True
            elif raw not in target.raw_phones:
                target.raw_phones |= {raw}
                target.new_phones += ((None, raw, target.next_phone),)
                target.next_phone += 1
                changed = True
        for (address, raw, _), ref in zip(row.new_emails, email_refs, strict=True):
            if ref is None:
                target.new_emails += ((address, raw, target.next_email),)
                target.next_email += 1
                changed = True
        if new_tags := [tag for tag in row.tags if tag not in target.tags]:
            target.tags += tuple(new_tags)
            changed = True
        for key, value in row.custom.items():
            if key not in target.custom:
                target.custom[key] = value
                changed = True
        if row.notes and not target.notes:
            target.notes = row.notes
            changed = True
        if row.owner_id is not None and target.owner_id is None:
            target.owner_id = row.owner_id
            changed = True
        # Only people belong to companies; a company's own row names itself.
        if (
            row.company_name
            and row.company_folded
            and target.company is None
            and row.kind == target.kind == "person"
        ):
            target.company = self._company(row.company_name, row.company_folded, row.line)
            changed = True
        target.changed |= changed
        return changed

    def _company(self, name: str, folded: str, line: int) -> int | _Client:
        found = self.companies.get(folded)
        return found if found is not None else self._keep(_Client(None, line, "company", name, folded))

    async def _insert(self) -> None:
        """New companies first (people point at them), then people, then all new numbers and addresses."""
        companies = [t for t in self.new if t.kind == "company"]
        people = [t for t in self.new if t.kind != "company"]
        for group in (companies, people):
            if not group:
                continue
            for target, client_id in zip(group, await self._insert_clients(group), strict=True):
                target.id = client_id
        for target in companies:
            self.outcome.companies[target.folded] = _id(target)
        touched = [*self.new, *self.stored.values()]
        await self._insert_rows(_PHONES, [(_id(t), *phone) for t in touched for phone in t.new_phones])
        await self._insert_rows(_EMAILS, [(_id(t), *email) for t in touched for email in t.new_emails])

    async def _insert_rows(self, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert numbers or addresses: `rows` of (client_id, value, raw, position)."""
        if not rows:
            return
        if self.sqlite is not None:
            await (await self.s.connection()).exec_driver_sql(self.sqlite.insert(table), rows)
        else:
            columns = _ROW_COLUMNS[table.name]
            await self.s.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])

    async def _insert_clients(self, targets: list[_Client]) -> list[int]:
        """Insert many clients at once; their new ids, in the order of `targets`."""
        if self.sqlite is None:
            values = [self._values(t) | {"created_at": self.now} for t in targets]
            stmt = insert(_CLIENTS).returning(_CLIENTS.c.id, sort_by_parameter_order=True)
            return list((await self.s.execute(stmt, values)).scalars())
        # On SQLite the ids after the largest are ours under the write lock (`crm.storage.new_ids`).
        stamp = self.sqlite.time(self.now)
        conn = await self.s.connection()
        first = await conn.run_sync(next_id, _CLIENTS)
        ids = range(first, first + len(targets))
        rows = [
            (i, *self.sqlite.client(t, self._company_id(t), stamp)) for i, t in zip(ids, targets, strict=True)
        ]
        await conn.exec_driver_sql(self.sqlite.insert(_CLIENTS), rows)
        return list(ids)

    async def _update(self) -> None:
        """Stored clients the batch added to; their name and kind stay as they are."""
        # Only the columns that changed are set (an indexed one costs SQLite an index update even
        # when set to what it was): one UPDATE for each set of columns.
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        stamp = self.now if self.sqlite is None else self.sqlite.time(self.now)
        for target in self.stored.values():
            if not target.changed:
                continue
            columns = self._columns(target)
            state = zip(columns, self._state(target), target.loaded, strict=True)
            values = {name: columns[name] for name, now, was in state if now != was}
            by_columns.setdefault(tuple(values), []).append(
                values | {"updated_at": stamp, "target_id": target.id}
            )
        for changed in by_columns.values():
            await self._update_rows(changed)

    async def _update_rows(self, changed: list[dict[str, Any]]) -> None:
        """One UPDATE, of the same columns, for many clients.

        Core's UPDATE rather than the ORM's bulk one, which costs more per row; like the ORM's,
        it fails the batch when a client was deleted since the look-ups (where the count is known).
        """
        conn = await self.s.connection()
        stmt = update(_CLIENTS).where(_CLIENTS.c.id == bindparam("target_id"))
        if self.sqlite is not None:  # the time stamp comes encoded (`_SqliteWrites.time`)
            stmt = stmt.values(updated_at=bindparam("updated_at", type_=String()))
        matched = (await conn.execute(stmt, changed)).rowcount
        dialect = conn.dialect
        counted = dialect.supports_sane_rowcount and (
            dialect.supports_sane_multi_rowcount or len(changed) == 1
        )
        if counted and matched != len(changed):
            raise StaleDataError(
                f"UPDATE statement on table 'clients' expected to update {len(changed)} row(s); "
                f"{matched} were matched."
            )

    def _values(self, target: _Client) -> dict[str, Any]:
        """All of a new client's columns but `created_at`."""
        return {
            "kind": target.kind,
            "name": target.name,
            "name_folded": target.folded,
            **self._columns(target),
            "updated_at": self.now,
        }

    def _columns(self, target: _Client) -> dict[str, Any]:
        """The columns an import may change on a stored client (never its name or kind)."""
        return {
            "company_id": self._company_id(target),
            "owner_id": target.owner_id,
            "tags": list(target.tags),
            "custom": dict(target.custom),
            "notes": target.notes,
        }

    def _state(self, target: _Client) -> tuple[Any, ...]:
        """What tells whether each of `_columns` changed. A merge only adds tags and custom
        fields, so their counts suffice; and a flat tuple of numbers and text is one the garbage
        collector stops following at once (it is kept per stored client)."""
        return (
            self._company_id(target),
            target.owner_id,
            len(target.tags),
            len(target.custom),
            target.notes,
        )

    @staticmethod
    def _company_id(target: _Client) -> int | None:
        company = target.company
        return company if isinstance(company, int) or company is None else _id(company)


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


def _id(target: _Client) -> int:
    assert target.id is not None, "inserted before use"
    return target.id


def _and(items: Iterable[str]) -> str:
    words = list(items)
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]
