"""Reading the rows of a CSV file: the delimiter, the header, and each row checked and read into
the client it proposes (`crm.files.matching.Target`) or the `LineError` that keeps it out.

The header names the columns (`crm.files.csv_format`): known ones may repeat or come under an
alias, any other is a custom field. A cell may hold several phones, e-mails or tags. A cell the
export wrote with a leading `'` (so that a spreadsheet shows `=...` as text, not as a formula) is
read without it (`unescape_cell`, only for cells that begin with `'`).

Files run to millions of rows, so per row there is only the row's own work: cells that repeat (a
number's spelling, a company, an owner) are read once, and a row is read straight into the client
it would create. The file is read in a worker thread (`Reader`'s methods block on the disk).
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, TypeVar

from crm.domain.errors import InvalidInput, InvalidPhone
from crm.domain.phones import format_international, parse_phone
from crm.domain.text import MAX_NAME, clean_name, fold, normalize_email, split_list
from crm.files.csv_format import ALIASES, COLUMNS, DELIMITERS, unescape_cell
from crm.files.encodings import encoding_of
from crm.files.import_errors import CsvFormatError, LineError
from crm.files.matching import NO_RAW_PHONES, Target
from crm.files.owners import Owners

# A non-blank row of the file as read: the physical line it starts on, and its cells. Plain
# tuples of numbers and text, which the garbage collector soon stops following (lists, or named
# tuples, it would follow and count for as long as a batch lives).
Record = tuple[int, tuple[str, ...]]

_MAX_RAW_PHONE = 64  # client_phones.raw
_CACHED = 1 << 16  # distinct cells a reader remembers the reading of
_K = TypeVar("_K")
_V = TypeVar("_V")


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
            if key in COLUMNS:
                known.setdefault(key, []).append(i)
            elif title:
                custom.append((i, title))
        if not {"name", "phone", "email"} & known.keys():
            found = ", ".join(repr(c.strip()) for c in header if c.strip()) or "nothing"
            raise CsvFormatError(
                f"line {line}: no name, phone or email column; the first line must name the columns "
                f"({', '.join(COLUMNS)}), found {found}"
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


class Reader:
    """The file as batches of checked rows. It blocks on the disk: run its methods in a thread."""

    def __init__(self, path: Path, region: str, owners: Owners) -> None:
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
        encoding = encoding_of(self.path)
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

    def read(self, size: int) -> tuple[list[Record], int]:
        """The next `size` rows, and how many bytes of the file are read after them."""
        rows = [(line, tuple(cells)) for line, cells in itertools.islice(self._records, size)]
        return rows, self.position

    def check(self, rows: list[Record]) -> list[Target | LineError]:
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

    def _check(self, line: int, cells: Sequence[str], columns: _Columns) -> Target | LineError:
        problems: list[str] = []
        # (E.164, as written, position), as `Target.new_phones`; the texts kept for numbers that
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
        return Target(
            id=None,
            line=line,
            kind="company" if company_folded == folded else "person",
            name=name,
            folded=folded,
            owner_id=owner_id,
            tags=tuple(tags),
            custom=dict(custom),
            notes=columns.first(cells, "notes"),
            raw_phones=frozenset(raw_phones) if raw_phones else NO_RAW_PHONES,
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


def _fields(exc: InvalidInput) -> str:
    return "; ".join(f"{k}: {v}" for k, v in exc.fields.items())


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    """Keep `value` for `key`, forgetting everything once a cache is full (memory stays bounded)."""
    if len(cache) >= _CACHED:
        cache.clear()
    cache[key] = value


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
