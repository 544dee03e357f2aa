"""Matching the rows of an import to clients: the rules, in memory, with no database in sight.

A row is matched to a client by any of its phones (E.164) or e-mail addresses, in the database or
earlier in the file; a company's own row also by its name. A row that matches one client adds to
it what the client lacks and never overwrites; a row that matches none proposes a new client (and
the company it names, found or made); a row that matches several is refused: merging clients is
a person's decision. So an import never doubles a client, and a second run of the same file
changes nothing.

`crm.files.batches` looks up whose each number, address and company name is, fills a `Matcher`
with that, lets it take the batch's rows in order, and writes what it decided.

(The API's clients, `crm.services.clients`, follow the same rules one client at a time, where a
number another client has is a conflict to report, not a row to refuse. A batch decides for
thousands of rows in a few queries; the service's find-or-create is a query per row.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from crm.files.import_errors import LineError

NO_RAW_PHONES: frozenset[str] = frozenset()  # one for all: `frozenset()` makes a new one each time


@dataclass(slots=True, eq=False)  # one client is one object: compared by identity
class Target:
    """A client a batch writes to: one stored (`id`), or the one a row of the file proposes.

    Each row is read into the client it would create. A batch keeps that client when the row
    matches no other, and otherwise folds the row into the client it matches (`Matcher._merge`):
    the proposal is dropped. (One object per row, not a row and then a client: a batch holds
    thousands, and each costs the garbage collector's full collections a visit.)

    Which numbers and addresses a client has is not kept here: the matcher's `by_phone` and
    `by_email` know every one of its rows' numbers and addresses, and whose each is.
    """

    id: int | None
    line: int  # of the row that proposes it (or names it, a company); 0 if stored
    kind: str
    name: str
    folded: str  # crm.domain.text.fold(name): of a proposal, worked out in the reading thread
    company: int | Target | None = None
    owner_id: int | None = None
    tags: tuple[str, ...] = ()
    custom: dict[str, Any] = field(default_factory=dict)
    notes: str | None = None
    raw_phones: frozenset[str] = NO_RAW_PHONES  # texts kept for numbers that are none
    new_phones: tuple[tuple[str | None, str, int], ...] = ()  # (E.164 or None, as written, position)
    new_emails: tuple[tuple[str, str, int], ...] = ()  # (address, as written, position)
    next_phone: int = 0
    next_email: int = 0
    # A proposal's row: the company it names (a company's own row names itself, `kind`), and
    # what to report about it although it is imported.
    company_name: str | None = None
    company_folded: str | None = None
    problems: tuple[str, ...] = ()
    # A stored client's: whether the batch changed it, and what it was (`Batch.state`).
    changed: bool = False
    loaded: tuple[Any, ...] = ()

    def describe(self) -> str:
        return f"client {self.id}" if self.id is not None else f"the new client of line {self.line}"


@dataclass(slots=True)
class Outcome:
    """What one batch did, and the companies it found or made (folded name → id)."""

    created: int = 0
    updated: int = 0
    skipped: int = 0
    errors: list[LineError] = field(default_factory=list)
    companies: dict[str, int] = field(default_factory=dict)


class Matcher:
    """A batch's clients, and whose each of its numbers, addresses and company names is.

    Filled by the batch's look-ups (`stored`; `by_phone`, `by_email` and `companies` map to a
    stored client's id), then grown by `take`: a number, an address or a company name a row
    brings maps to the `Target` it went to, kept in `new` if the row proposed it.
    """

    def __init__(self, companies: dict[str, int]) -> None:
        self.outcome = Outcome()
        self.stored: dict[int, Target] = {}
        self.new: list[Target] = []
        self.by_phone: dict[str, int | Target] = {}
        self.by_email: dict[str, int | Target] = {}
        self.companies: dict[str, int | Target] = dict(companies)

    def take(self, row: Target) -> None:
        """Match one row and fold it into its client, or keep the client it proposes, or refuse it."""
        by_phone, by_email = self.by_phone, self.by_email
        phone_refs = [None if e164 is None else by_phone.get(e164) for e164, _, _ in row.new_phones]
        email_refs = [by_email.get(address) for address, _, _ in row.new_emails]
        found: list[Target] = []
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

    def _target(self, ref: int | Target) -> Target:
        return self.stored[ref] if isinstance(ref, int) else ref

    def _keep(self, client: Target) -> Target:
        """A new client: one a row proposes (with its company, found or made), or a company."""
        self.new.append(client)
        if client.kind == "company":
            self.companies.setdefault(client.folded, client)
        elif client.company_name and client.company_folded:
            client.company = self._company(client.company_name, client.company_folded, client.line)
        return client

    def _merge(
        self,
        target: Target,
        row: Target,
        phone_refs: list[int | Target | None],
        email_refs: list[int | Target | None],
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

    def _company(self, name: str, folded: str, line: int) -> int | Target:
        found = self.companies.get(folded)
        return found if found is not None else self._keep(Target(None, line, "company", name, folded))


def _and(items: Iterable[str]) -> str:
    words = list(items)
    return " and ".join(words) if len(words) < 3 else f"{', '.join(words[:-1])} and {words[-1]}"
