"""CSV import of clients: read a file in any usual encoding, match every row, write in batches.

A row is matched to an existing client by any of its phones (E.164) or e-mail addresses, in the
database or earlier in the file, so an import never doubles a client and a second run of the same
file changes nothing. Each batch is one transaction: look-ups first (one query per kind), then bulk
inserts and updates. The file is read, and its rows parsed, in a worker thread, so the event loop
stays free while a large import runs.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import io
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import charset_normalizer
from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from crm.clock import Clock
from crm.errors import InvalidInput, InvalidPhone
from crm.models import Agent, Base, Client, ClientEmail, ClientPhone
from crm.phones import Phone, parse_phone
from crm.store import Store
from crm.text import MAX_NAME, clean_name, fold, normalize_email, split_list

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

_CLIENTS: Table = Base.metadata.tables["clients"]
_PHONES: Table = Base.metadata.tables["client_phones"]
_EMAILS: Table = Base.metadata.tables["client_emails"]
_MAX_RAW_PHONE = 64  # client_phones.raw
_SAMPLE = 1 << 20  # bytes read at a time, and at most given to charset_normalizer
_IN_CHUNK = 5000  # values per IN (...): far below SQLite's and asyncpg's parameter limits
_KEPT = frozenset({"kind", "name", "name_folded"})  # what an import never changes on a stored client
_ATTEMPTS = 3  # a batch whose numbers another writer took meanwhile is redone from its look-ups
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
    report = ImportReport()
    companies: dict[str, int] = {}  # folded name → id of a company client, known to exist
    try:
        await asyncio.to_thread(reader.open)
        while True:
            batch, position = await asyncio.to_thread(reader.batch, batch_size)
            if not batch:
                break
            rows: list[_Row] = []
            for item in batch:
                if isinstance(item, LineError):
                    report.skipped += 1
                    report.errors.append(item)
                else:
                    rows.append(item)
            if rows:
                outcome = await _write_batch(store, rows, companies, clock)
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


@dataclass(slots=True)
class _Row:
    """One data row, read and checked; `problems` are what to report although it is imported."""

    line: int
    name: str
    folded: str  # crm.text.fold(name), worked out here, in the reading thread
    kind: str
    phones: list[Phone]
    raw_phones: list[str]  # spellings that are no number: kept as text, never matched
    emails: list[tuple[str, str]]  # (address, as written)
    tags: list[str]
    company: str | None  # the company's name; a company's own row names itself (kind "company")
    company_folded: str | None
    notes: str | None
    owner_id: int | None
    custom: dict[str, str]
    problems: list[LineError]


@dataclass(frozen=True, slots=True)
class _Columns:
    """Where each field is in a row: known fields may come from several columns."""

    known: dict[str, list[int]]
    custom: list[tuple[int, str]]

    @classmethod
    def of(cls, header: Sequence[str], line: int) -> _Columns:
        known: dict[str, list[int]] = {}
        custom: list[tuple[int, str]] = []
        for i, cell in enumerate(header):
            title = cell.strip()
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
        return cls(known, custom)

    def cells(self, row: Sequence[str], key: str) -> list[str]:
        return [row[i].strip() for i in self.known.get(key, ()) if i < len(row) and row[i].strip()]

    def first(self, row: Sequence[str], key: str) -> str | None:
        found = self.cells(row, key)
        return found[0] if found else None


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

    def batch(self, size: int) -> tuple[list[_Row | LineError], int]:
        """The next `size` rows, checked, and how many bytes of the file are read after them."""
        assert self._columns is not None, "open() first"
        records = itertools.islice(self._records, size)
        return [self._check(line, cells, self._columns) for line, cells in records], self.position

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
            if any(cell.strip() for cell in cells):
                yield start, cells

    def _check(self, line: int, cells: list[str], columns: _Columns) -> _Row | LineError:
        """Read one row's cells into a `_Row`, or the `LineError` that keeps it out."""
        problems: list[str] = []
        phones: list[Phone] = []
        raw_phones: list[str] = []
        for text in _split(columns.cells(cells, "phone")):
            try:
                phone = parse_phone(text, self.region)
            except InvalidPhone as exc:
                if text[:_MAX_RAW_PHONE] not in raw_phones:
                    raw_phones.append(text[:_MAX_RAW_PHONE])
                problems.append(f"phone {text!r}: {_phone_reason(exc, text)}")
                continue
            if all(p.e164 != phone.e164 for p in phones):
                phones.append(phone)
        emails: list[tuple[str, str]] = []
        for text in _split(columns.cells(cells, "email")):
            try:
                address = normalize_email(text)
            except ValueError as exc:
                problems.append(f"email {text!r}: {str(exc).removeprefix(f'{text!r} is ')}")
                continue
            if all(a != address for a, _ in emails):
                emails.append((address, text))

        name = columns.first(cells, "name")
        if name is None and not phones and not emails:
            return LineError(line, "; ".join(["no name, phone or email", *problems]))
        owner_id = None
        if (owner := columns.first(cells, "owner")) is not None:
            try:
                owner_id = self.owners.find(owner, self.region)
            except ValueError as exc:
                return LineError(line, str(exc))
        try:
            name = clean_name(name) if name is not None else _name_of(phones, emails)
            company = columns.first(cells, "company")
            company = clean_name(company, field="company") if company is not None else None
        except InvalidInput as exc:
            return LineError(line, "; ".join(f"{k}: {v}" for k, v in exc.fields.items()))

        tags: list[str] = []
        for tag in _split(columns.cells(cells, "tags")):
            tag = " ".join(tag.split())
            if tag not in tags:
                tags.append(tag)
        custom: dict[str, str] = {}
        for i, key in columns.custom:
            if i < len(cells) and cells[i].strip():
                custom.setdefault(key, cells[i].strip())
        folded = fold(name)
        company_folded = fold(company) if company is not None else None
        return _Row(
            line=line,
            name=name,
            folded=folded,
            kind="company" if company_folded == folded else "person",
            phones=phones,
            raw_phones=raw_phones,
            emails=emails,
            tags=tags,
            company=company,
            company_folded=company_folded,
            notes=columns.first(cells, "notes"),
            owner_id=owner_id,
            custom=custom,
            problems=[LineError(line, _kept(p)) for p in problems],
        )


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


def _split(cells: Iterable[str]) -> list[str]:
    return [part for cell in cells for part in split_list(cell)]


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _name_of(phones: list[Phone], emails: list[tuple[str, str]]) -> str:
    """A name for a row that has none: its first number as people read it, else its address."""
    return phones[0].display if phones else emails[0][1][:MAX_NAME]


def _phone_reason(exc: InvalidPhone, text: str) -> str:
    message = str(exc)
    for prefix in (f"{text}: ", f"{text!r}: "):
        if message.startswith(prefix):
            return message.removeprefix(prefix)
    return message


def _kept(problem: str) -> str:
    """What happened to a bad value of a row that is imported anyway."""
    return f"{problem}; kept as text" if problem.startswith("phone ") else f"{problem}; dropped"


# -- writing a batch -----------------------------------------------------------------------


@dataclass(slots=True, eq=False)  # one client is one object: compared by identity
class _Target:
    """A client a batch writes to: one already stored (`id`) or one it creates (`line`)."""

    id: int | None
    line: int
    kind: str
    name: str
    folded: str
    company: int | _Target | None
    owner_id: int | None
    tags: list[str]
    custom: dict[str, Any]
    notes: str | None
    e164s: set[str]
    raw_phones: set[str]
    addresses: set[str]
    next_phone: int = 0
    next_email: int = 0
    new_phones: list[dict[str, Any]] = field(default_factory=list)
    new_emails: list[dict[str, Any]] = field(default_factory=list)
    changed: bool = False

    def describe(self) -> str:
        return f"client {self.id}" if self.id is not None else f"the new client of line {self.line}"


@dataclass(slots=True)
class _Outcome:
    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)
    companies: dict[str, int] = field(default_factory=dict)


async def _write_batch(store: Store, rows: list[_Row], companies: dict[str, int], clock: Clock) -> _Outcome:
    """Write one batch in one transaction; redo it if a concurrent writer took one of its numbers."""
    for attempt in range(1, _ATTEMPTS + 1):
        try:
            async with store.session() as s:
                return await _Batch(s, rows, companies, clock, sqlite=store.is_sqlite).write()
        except IntegrityError:
            if attempt == _ATTEMPTS:
                raise
            companies.clear()  # a cached company may be the row that went away
    raise AssertionError("unreachable")


class _Batch:
    """The decisions for one batch of rows, taken against the database inside its transaction."""

    def __init__(
        self, s: AsyncSession, rows: list[_Row], companies: dict[str, int], clock: Clock, *, sqlite: bool
    ) -> None:
        self.s = s
        self.sqlite = sqlite
        self.rows = rows
        self.now = clock.now()
        self.outcome = _Outcome()
        self.stored: dict[int, _Target] = {}
        self.new: list[_Target] = []
        self.by_phone: dict[str, int | _Target] = {}
        self.by_email: dict[str, int | _Target] = {}
        self.companies: dict[str, int | _Target] = dict(companies)

    async def write(self) -> _Outcome:
        await self._look_up()
        for row in self.rows:
            self._take(row)
        await self._insert()
        await self._update()
        return self.outcome

    async def _look_up(self) -> None:
        """Who owns the batch's numbers, addresses and company names, and those clients' state."""
        e164s = {p.e164 for r in self.rows for p in r.phones}
        addresses = {a for r in self.rows for a, _ in r.emails}
        names = {r.company_folded for r in self.rows if r.company_folded} - self.companies.keys()
        for chunk in _chunks(e164s):
            stmt = select(ClientPhone.e164, ClientPhone.client_id).where(ClientPhone.e164.in_(chunk))
            for e164, client_id in await self.s.execute(stmt):
                if e164 is not None:  # never, given the IN; tells the type checker
                    self.by_phone[e164] = client_id
        for chunk in _chunks(addresses):
            stmt = select(ClientEmail.address, ClientEmail.client_id).where(ClientEmail.address.in_(chunk))
            for address, client_id in await self.s.execute(stmt):
                self.by_email[address] = client_id
        for chunk in _chunks(names):
            stmt = (
                select(Client.name_folded, Client.id)
                .where(Client.kind == "company", Client.name_folded.in_(chunk))
                .order_by(Client.id)
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
        columns = (
            Client.id,
            Client.kind,
            Client.name,
            Client.name_folded,
            Client.company_id,
            Client.owner_id,
            Client.tags,
            Client.custom,
            Client.notes,
        )
        for chunk in _chunks(ids):
            for c in await self.s.execute(select(*columns).where(Client.id.in_(chunk))):
                self.stored[c.id] = _Target(
                    id=c.id,
                    line=0,
                    kind=c.kind,
                    name=c.name,
                    folded=c.name_folded,
                    company=c.company_id,
                    owner_id=c.owner_id,
                    tags=list(c.tags or []),
                    custom=dict(c.custom or {}),
                    notes=c.notes,
                    e164s=set(),
                    raw_phones=set(),
                    addresses=set(),
                )
            stmt = select(ClientPhone.client_id, ClientPhone.e164, ClientPhone.raw, ClientPhone.position)
            for client_id, e164, raw, position in await self.s.execute(
                stmt.where(ClientPhone.client_id.in_(chunk))
            ):
                target = self.stored[client_id]
                if e164 is None:
                    target.raw_phones.add(raw)
                else:
                    target.e164s.add(e164)
                target.next_phone = max(target.next_phone, position + 1)
            stmt2 = select(ClientEmail.client_id, ClientEmail.address, ClientEmail.position)
            for client_id, address, position in await self.s.execute(
                stmt2.where(ClientEmail.client_id.in_(chunk))
            ):
                target = self.stored[client_id]
                target.addresses.add(address)
                target.next_email = max(target.next_email, position + 1)
        # On PostgreSQL a client may be deleted between the look-ups and the load; its numbers
        # went with it, so they are free again.
        for index in (self.by_phone, self.by_email):
            for key in [k for k, v in index.items() if v not in self.stored]:
                del index[key]

    def _target(self, ref: int | _Target) -> _Target:
        return self.stored[ref] if isinstance(ref, int) else ref

    def _take(self, row: _Row) -> None:
        """Match one row and fold it into its client, or make a new one, or refuse it."""
        found: list[_Target] = []
        refs = [self.by_phone.get(p.e164) for p in row.phones] + [self.by_email.get(a) for a, _ in row.emails]
        for ref in refs:
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
        self.outcome.errors.extend(row.problems)
        if found:
            target = found[0]
            if self._merge(target, row):
                self.outcome.updated += 1
            else:
                self.outcome.skipped += 1
        else:
            target = self._new(row.name, row.folded, row.kind, row.line)
            self._merge(target, row)
            self.outcome.created += 1
        for phone in row.phones:
            self.by_phone[phone.e164] = target
        for address, _ in row.emails:
            self.by_email[address] = target

    def _new(self, name: str, folded: str, kind: str, line: int) -> _Target:
        target = _Target(
            id=None,
            line=line,
            kind=kind,
            name=name,
            folded=folded,
            company=None,
            owner_id=None,
            tags=[],
            custom={},
            notes=None,
            e164s=set(),
            raw_phones=set(),
            addresses=set(),
        )
        self.new.append(target)
        if kind == "company":
            self.companies.setdefault(folded, target)
        return target

    def _merge(self, target: _Target, row: _Row) -> bool:
        """Add what the row knows and the client does not; never overwrite. True if it changed."""
        changed = False
        for phone in row.phones:
            if phone.e164 not in target.e164s:
                target.e164s.add(phone.e164)
                target.new_phones.append(
                    {"e164": phone.e164, "raw": phone.raw[:_MAX_RAW_PHONE], "position": target.next_phone}
                )
                target.next_phone += 1
                changed = True
        for raw in row.raw_phones:
            if raw not in target.raw_phones:
                target.raw_phones.add(raw)
                target.new_phones.append({"e164": None, "raw": raw, "position": target.next_phone})
                target.next_phone += 1
                changed = True
        for address, raw in row.emails:
            if address not in target.addresses:
                target.addresses.add(address)
                target.new_emails.append({"address": address, "raw": raw, "position": target.next_email})
                target.next_email += 1
                changed = True
        for tag in row.tags:
            if tag not in target.tags:
                target.tags.append(tag)
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
            row.company
            and row.company_folded
            and target.company is None
            and row.kind == target.kind == "person"
        ):
            target.company = self._company(row.company, row.company_folded, row.line)
            changed = True
        target.changed |= changed
        return changed

    def _company(self, name: str, folded: str, line: int) -> int | _Target:
        found = self.companies.get(folded)
        return found if found is not None else self._new(name, folded, "company", line)

    async def _insert(self) -> None:
        """New companies first (people point at them), then people, then all new numbers and addresses."""
        companies = [t for t in self.new if t.kind == "company"]
        people = [t for t in self.new if t.kind != "company"]
        for group in (companies, people):
            if not group:
                continue
            ids = await self._insert_clients([self._values(t) | {"created_at": self.now} for t in group])
            for target, client_id in zip(group, ids, strict=True):
                target.id = client_id
        for target in companies:
            self.outcome.companies[target.folded] = _id(target)
        phones = [p | {"client_id": _id(t)} for t in [*self.new, *self.stored.values()] for p in t.new_phones]
        emails = [e | {"client_id": _id(t)} for t in [*self.new, *self.stored.values()] for e in t.new_emails]
        if phones:
            await self.s.execute(insert(_PHONES), phones)
        if emails:
            await self.s.execute(insert(_EMAILS), emails)

    async def _insert_clients(self, values: list[dict[str, Any]]) -> list[int]:
        """Insert many clients at once; their new ids, in the order of `values`."""
        if not self.sqlite:
            stmt = insert(_CLIENTS).returning(_CLIENTS.c.id, sort_by_parameter_order=True)
            return list((await self.s.execute(stmt, values)).scalars())
        # On SQLite, SQLAlchemy keeps RETURNING in parameter order only by inserting row by row
        # (the table has no sentinel column): ten times slower. Instead: under the write lock
        # (BEGIN IMMEDIATE) each new rowid is one more than the largest, so the new ids in
        # ascending order are the rows in the order given.
        ids = sorted((await self.s.execute(insert(_CLIENTS).returning(_CLIENTS.c.id), values)).scalars())
        if ids and ids[-1] - ids[0] != len(ids) - 1:
            raise RuntimeError(f"SQLite gave {len(ids)} new clients ids that are not consecutive")
        return ids

    async def _update(self) -> None:
        """Stored clients the batch added to; their name and kind stay as they are."""
        changed = [
            {k: v for k, v in self._values(t).items() if k not in _KEPT} | {"id": t.id}
            for t in self.stored.values()
            if t.changed
        ]
        if changed:
            await self.s.execute(update(Client), changed)

    def _values(self, target: _Target) -> dict[str, Any]:
        company = target.company
        return {
            "kind": target.kind,
            "name": target.name,
            "name_folded": target.folded,
            "company_id": company if isinstance(company, int) or company is None else _id(company),
            "owner_id": target.owner_id,
            "tags": target.tags,
            "custom": target.custom,
            "notes": target.notes,
            "updated_at": self.now,
        }


def _id(target: _Target) -> int:
    assert target.id is not None, "inserted before use"
    return target.id


def _and(items: Iterable[str]) -> str:
    words = list(items)
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"


def _chunks(values: Iterable[Any]) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]
