"""CSV import and export: people bring spreadsheets in every spelling and encoding; nobody is doubled."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from crm.domain.clock import FrozenClock
from crm.domain.models import Agent, Client, ClientEmail, ClientPhone
from crm.files.batches import Batch
from crm.files.csv_export import export_clients
from crm.files.csv_format import COLUMNS, escape_cell, unescape_cell
from crm.files.csv_import import CsvFormatError, ImportReport, LineError, import_clients
from crm.service import Crm
from crm.services.clients import ClientDraft
from crm.storage.store import Store
from tests.databases import PostgresTemplates, SqliteTemplates


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    """A CSV file as a spreadsheet program saves it: bytes in `encoding`, lines as given."""
    path.write_bytes(text.encode(encoding))
    return path


async def run(store: Store, path: Path, clock: FrozenClock, region: str = "US", **kw: Any) -> ImportReport:
    return await import_clients(store, path, region=region, clock=clock, **kw)


@dataclass(frozen=True)
class Seen:
    """A client as a user sees it, by names rather than ids, so two databases can be compared."""

    name: str
    kind: str
    phones: tuple[str, ...]  # E.164, or the text kept for a number that is none
    emails: tuple[str, ...]
    company: str | None
    owner: str | None
    tags: tuple[str, ...]
    notes: str | None
    custom: tuple[tuple[str, Any], ...]


async def clients(store: Store) -> list[Seen]:
    async with store.reading() as s:
        rows = (await s.execute(select(Client).order_by(Client.id))).scalars().all()
        names = {c.id: c.name for c in rows}
        agents = dict((await s.execute(select(Agent.id, Agent.name))).all())
        phones: dict[int, list[str]] = {}
        for client_id, e164, raw in await s.execute(
            select(ClientPhone.client_id, ClientPhone.e164, ClientPhone.raw).order_by(ClientPhone.position)
        ):
            phones.setdefault(client_id, []).append(e164 or raw)
        emails: dict[int, list[str]] = {}
        for client_id, address in await s.execute(
            select(ClientEmail.client_id, ClientEmail.address).order_by(ClientEmail.position)
        ):
            emails.setdefault(client_id, []).append(address)
    return [
        Seen(
            name=c.name,
            kind=c.kind,
            phones=tuple(phones.get(c.id, [])),
            emails=tuple(emails.get(c.id, [])),
            company=names.get(c.company_id) if c.company_id else None,
            owner=agents.get(c.owner_id) if c.owner_id else None,
            tags=tuple(c.tags),
            notes=c.notes,
            custom=tuple(sorted(c.custom.items())),
        )
        for c in rows
    ]


async def one(store: Store, name: str) -> Seen:
    (found,) = [c for c in await clients(store) if c.name == name]
    return found


async def count(store: Store, table: type[Any]) -> int:
    async with store.reading() as s:
        return int((await s.execute(select(func.count()).select_from(table))).scalar_one())


# -- importing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("region", "spellings"),
    [
        (
            "US",
            {
                "(415) 555-0100": "+14155550100",
                "415.555.0101": "+14155550101",
                "+1 212 555 0102": "+12125550102",
            },
        ),
        (
            "GB",
            {
                "020 7946 0018": "+442079460018",
                "07700 900123": "+447700900123",
                "+44 7700 900124": "+447700900124",
            },
        ),
        (
            "DE",
            {
                "030 1234567": "+49301234567",
                "0171 2345678": "+491712345678",
                "+49 (0)89 1234567": "+49891234567",
            },
        ),
        (
            "RU",
            {
                "8 (916) 123-45-67": "+79161234567",
                "+7 916 765-43-21": "+79167654321",
                "8 495 123 45 67": "+74951234567",
            },
        ),
        (
            "RO",
            {
                "0721 234 567": "+40721234567",
                "021 123 4567": "+40211234567",
                "+40 744 123 456": "+40744123456",
            },
        ),
    ],
)
async def test_a_plain_import_creates_clients_with_their_numbers_normalised(
    store: Store, clock: FrozenClock, tmp_path: Path, region: str, spellings: dict[str, str]
) -> None:
    lines = ["name,phone,email,tags"]
    lines += [f'Client {i},"{raw}",c{i}@example.com,"vip; fair 2026"' for i, raw in enumerate(spellings)]
    path = write(tmp_path / "clients.csv", "\n".join(lines) + "\n")

    report = await run(store, path, clock, region=region)

    assert report.as_json() == {"created": 3, "updated": 0, "skipped": 0, "errors": []}
    seen = await clients(store)
    assert [c.phones for c in seen] == [(e164,) for e164 in spellings.values()]
    assert [c.emails for c in seen] == [(f"c{i}@example.com",) for i in range(3)]
    assert all(c.tags == ("vip", "fair 2026") and c.kind == "person" for c in seen)
    async with store.reading() as s:
        raws = (await s.execute(select(ClientPhone.raw).order_by(ClientPhone.id))).scalars().all()
        stamps = (await s.execute(select(Client.created_at, Client.updated_at, Client.name_folded))).all()
    assert list(raws) == list(spellings)  # the spelling people wrote is kept for display
    assert {(c, u) for c, u, _ in stamps} == {(clock.now(), clock.now())}
    assert [f for _, _, f in stamps] == ["client 0", "client 1", "client 2"]


async def test_importing_the_same_file_again_changes_nothing(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email,company,tags,notes\n"
        "Ada Lovelace,(415) 555-0100,ada@example.com,Analytical Engines,vip,Prefers mornings\n"
        "Grace Hopper,+1 202 555 0199; 202-555-0198,grace@navy.mil,,navy; cobol,\n"
        "Charles Babbage,,charles@example.com,Analytical Engines,,\n",
    )
    first = await run(store, path, clock)
    before = await clients(store)
    imported_at = clock.now()
    clock.advance(days=1)

    again = await run(store, path, clock)

    assert (first.created, first.updated, first.skipped) == (3, 0, 0)
    assert again.as_json() == {"created": 0, "updated": 0, "skipped": 3, "errors": []}
    assert await clients(store) == before
    assert len(before) == 4  # the three people and their company
    async with store.reading() as s:
        updated = (await s.execute(select(func.max(Client.updated_at)))).scalar_one()
    assert updated == imported_at  # nobody was touched


@pytest.mark.parametrize("batch_size", [1, 2000])
async def test_one_person_spelled_several_ways_in_one_file_becomes_one_client(
    store: Store, clock: FrozenClock, tmp_path: Path, batch_size: int
) -> None:
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email\n"
        "Ada Lovelace,(415) 555-0100,\n"
        "Ada L.,+1 415 555 0100,ADA@Example.com\n"  # same number: adds the address
        "ADA,415.555.0100,ada@example.com\n"  # nothing new
        ",,ada@example.COM; ada@work.example\n"  # by address: adds the second one
        "Lovelace,4155550177,ada@work.example\n",  # by the second address: adds a number
    )

    report = await run(store, path, clock, batch_size=batch_size)

    assert (report.created, report.updated, report.skipped, report.errors) == (1, 3, 1, [])
    (ada,) = await clients(store)
    assert ada.name == "Ada Lovelace"
    assert ada.phones == ("+14155550100", "+14155550177")
    assert ada.emails == ("ada@example.com", "ada@work.example")


async def test_a_row_with_a_known_address_adds_its_new_number_to_that_client(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path
) -> None:
    async with store.session() as s:
        grace = await crm.clients.create(
            s, ClientDraft(name="Grace", emails=["grace@navy.mil"], tags=["navy"], notes="Admiral")
        )
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email,tags,notes,Rank\n"
        "Grace Hopper,+1 202 555 0199,GRACE@navy.mil,navy; cobol,Sailor,Rear admiral\n",
    )

    report = await run(store, path, clock)

    assert report.as_json() == {"created": 0, "updated": 1, "skipped": 0, "errors": []}
    found = await one(store, "Grace")  # the name on record stays
    assert found.phones == ("+12025550199",)
    assert found.emails == ("grace@navy.mil",)
    assert found.tags == ("navy", "cobol")
    assert found.notes == "Admiral"  # set only where there was none
    assert found.custom == (("Rank", "Rear admiral"),)
    async with store.reading() as s:
        assert (await crm.clients.id_by_phone(s, "202-555-0199")) == grace


async def test_a_byte_order_mark_is_not_part_of_the_first_column(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    path = write(tmp_path / "excel.csv", "name,phone\r\nZoë Ångström,(415) 555-0100\r\n", "utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    report = await run(store, path, clock)

    assert (report.created, report.errors) == (1, [])
    assert (await one(store, "Zoë Ångström")).phones == ("+14155550100",)


async def test_a_russian_excel_file_in_cp1251_with_semicolons(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "клиенты.csv",
        "name;phone;email;company;Город\r\n"
        "Иван Петров;8 (916) 123-45-67;ivan@example.ru;ООО «Ромашка»;Москва\r\n"
        "Мария Сидорова;+7 916 765-43-21, 8 495 123 45 67;;ООО «Ромашка»;Санкт-Петербург\r\n"
        "Ёлкин Пётр Ильич;89031234567;;;Тверь\r\n",
        "cp1251",
    )

    report = await run(store, path, clock, region="RU")

    assert (report.created, report.errors) == (3, [])
    ivan = await one(store, "Иван Петров")
    maria = await one(store, "Мария Сидорова")
    assert ivan.phones == ("+79161234567",) and ivan.company == "ООО «Ромашка»"
    assert maria.phones == ("+79167654321", "+74951234567") and maria.company == ivan.company
    assert (await one(store, "Ёлкин Пётр Ильич")).custom == (("Город", "Тверь"),)
    assert (await one(store, "ООО «Ромашка»")).kind == "company"


async def test_a_german_file_in_cp1252(store: Store, clock: FrozenClock, tmp_path: Path) -> None:
    path = write(
        tmp_path / "kunden.csv",
        "Name;Phone;E-Mail;Company\r\nJürgen Müller;030 1234567;j.mueller@example.de;Bäckerei Groß GmbH\r\n",
        "cp1252",
    )

    report = await run(store, path, clock, region="DE")

    assert (report.created, report.errors) == (1, [])
    jurgen = await one(store, "Jürgen Müller")
    assert (jurgen.phones, jurgen.emails, jurgen.company) == (
        ("+49301234567",),
        ("j.mueller@example.de",),
        "Bäckerei Groß GmbH",
    )


async def test_a_utf16_file_with_tabs(store: Store, clock: FrozenClock, tmp_path: Path) -> None:
    path = write(tmp_path / "clients.txt", "Name\tPhones\tTag\r\n李小龙\t+852 2123 4567\tactor\r\n", "utf-16")

    report = await run(store, path, clock)

    assert (report.created, report.errors) == (1, [])
    lee = await one(store, "李小龙")
    assert (lee.phones, lee.tags) == (("+85221234567",), ("actor",))


async def test_a_non_utf8_byte_far_down_the_file_is_still_read_right(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    padding = (" " * 999 + "\n") * 1100  # over a MiB of blank lines before the only non-ASCII byte
    path = write(tmp_path / "late.csv", f"name,phone\n{padding}Renée,(415) 555-0100\n", "cp1252")

    report = await run(store, path, clock)

    assert (report.created, report.errors) == (1, [])
    assert (await one(store, "Renée")).phones == ("+14155550100",)


async def test_other_columns_become_custom_fields(store: Store, clock: FrozenClock, tmp_path: Path) -> None:
    path = write(
        tmp_path / "clients.csv",
        " NAME , Phone ,  Lead source  ,Birthday,,E-mail\n"
        "Ada,(415) 555-0100,  fair  ,1815-12-10,ignored,\n"
        "Grace,(415) 555-0101,,,,grace@navy.mil,extra cell\n",
    )

    report = await run(store, path, clock)

    assert report.as_json() == {"created": 2, "updated": 0, "skipped": 0, "errors": []}
    assert (await one(store, "Ada")).custom == (("Birthday", "1815-12-10"), ("Lead source", "fair"))
    grace = await one(store, "Grace")
    assert (grace.custom, grace.emails) == ((), ("grace@navy.mil",))


async def test_a_number_that_is_none_is_kept_as_text_and_reported_on_its_line(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email,notes\n"  # line 1
        "\n"  # 2: blank, ignored
        'Ada,(415) 555-0100,,"two\nlines"\n'  # 3-4
        "Bob,call reception; 12,bob@example,\n"  # 5
        "Eve,anonymous,eve@example.com,\n",  # 6
    )

    report = await run(store, path, clock)

    assert (report.created, report.updated, report.skipped) == (3, 0, 0)
    assert report.errors == [
        LineError(5, "phone 'call reception': not a phone number; kept as text"),
        LineError(5, "phone '12': too short for US; kept as text"),
        LineError(5, "email 'bob@example': not an e-mail address; dropped"),
        LineError(6, "phone 'anonymous': no number (caller withheld it); kept as text"),
    ]
    bob = await one(store, "Bob")
    assert (bob.phones, bob.emails) == (("call reception", "12"), ())
    assert (await one(store, "Ada")).notes == "two\nlines"
    async with store.reading() as s:
        kept = (await s.execute(select(ClientPhone.e164).where(ClientPhone.raw == "12"))).scalar_one()
    assert kept is None  # never matched

    again = await run(store, path, clock)  # Ada and Eve are matched; Bob has nothing to match by
    assert (again.created, again.skipped) == (1, 2)


async def test_a_row_with_nothing_to_go_by_is_reported_and_skipped(
    store: Store, clock: FrozenClock, tmp_path: Path
) -> None:
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email,company\n"
        ",,,Acme\n"
        ",,,\n"  # empty cells only: a blank line as spreadsheets save it
        ",not a number,,\n"
        ",(415) 555-0100,,\n"
        ",,Grace@Navy.mil,\n"
        f"{'x' * 301},(415) 555-0101,,\n",
    )

    report = await run(store, path, clock)

    assert report.as_json() == {
        "created": 2,
        "updated": 0,
        "skipped": 3,
        "errors": [
            {"line": 2, "reason": "no name, phone or email"},
            {"line": 4, "reason": "no name, phone or email; phone 'not a number': not a phone number"},
            {"line": 7, "reason": "name: longer than 300 characters"},
        ],
    }
    # Named by the number, else the address, as written.
    assert [c.name for c in await clients(store)] == ["+1 415-555-0100", "Grace@Navy.mil"]


async def test_owners_are_agents_found_by_name_or_phone(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path
) -> None:
    async with store.session() as s:
        await crm.agents.add(s, "Alice", phone="+14155550001")
        await crm.agents.add(s, "Bob", phone="+14155550002")
        await crm.agents.add(s, "Bob", phone="+14155550003")
    path = write(
        tmp_path / "clients.csv",
        "name,phone,owner\n"
        "Ada,(415) 555-0100,  alice \n"
        "Grace,(415) 555-0101,(415) 555-0003\n"
        "Linus,(415) 555-0102,Zed\n"
        "Ken,(415) 555-0103,bob\n"
        "Dennis,(415) 555-0104,\n",
    )

    report = await run(store, path, clock)

    assert (report.created, report.skipped) == (3, 2)
    assert report.errors == [
        LineError(4, "owner 'Zed': no active agent has that name or phone"),
        LineError(5, "owner 'bob': 2 active agents have that name; give their phone"),
    ]
    owners = {c.name: c.owner for c in await clients(store)}
    assert owners == {"Ada": "Alice", "Grace": "Bob", "Dennis": None}


async def test_a_row_matching_two_clients_is_not_merged(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path
) -> None:
    async with store.session() as s:
        ada = await crm.clients.create(s, ClientDraft(name="Ada", phones=["(415) 555-0100"]))
        grace = await crm.clients.create(s, ClientDraft(name="Grace", emails=["grace@navy.mil"]))
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email\n"
        "Both,(415) 555-0100,grace@navy.mil\n"
        "New,(415) 555-0177,\n"
        "Mixed,(415) 555-0177,grace@navy.mil\n",
    )

    report = await run(store, path, clock)

    assert (report.created, report.updated, report.skipped) == (1, 0, 2)
    assert report.errors == [
        LineError(2, f"matches clients {ada} and {grace}; merge them first"),
        LineError(4, f"matches the new client of line 3 and client {grace}; merge them first"),
    ]
    assert [(c.name, c.phones, c.emails) for c in await clients(store)] == [
        ("Ada", ("+14155550100",), ()),
        ("Grace", (), ("grace@navy.mil",)),
        ("New", ("+14155550177",), ()),
    ]


async def test_companies_are_found_by_name_in_any_case(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path
) -> None:
    async with store.session() as s:
        await crm.clients.create(s, ClientDraft(name="Müller GmbH", kind="company"))
    path = write(
        tmp_path / "clients.csv",
        "name,phone,company\n"
        "Jürgen,030 1234567,MULLER GMBH\n"
        "Anna,030 1234568,Neue Firma AG\n"
        "Neue Firma AG,030 1234500,neue firma ag\n"  # the company's own row
        "Karl,030 1234569,Neue  Firma AG\n",
    )

    report = await run(store, path, clock, region="DE", batch_size=2)

    assert (report.created, report.updated, report.errors) == (3, 1, [])
    seen = {c.name: c for c in await clients(store)}
    assert set(seen) == {"Müller GmbH", "Jürgen", "Anna", "Neue Firma AG", "Karl"}
    assert seen["Jürgen"].company == "Müller GmbH"
    assert seen["Anna"].company == seen["Karl"].company == "Neue Firma AG"
    assert (seen["Neue Firma AG"].kind, seen["Neue Firma AG"].phones) == ("company", ("+49301234500",))


async def test_progress_is_reported_in_bytes_read(store: Store, clock: FrozenClock, tmp_path: Path) -> None:
    rows = "".join(f"Client {i},+1 415 555 {i:04d}\n" for i in range(50))
    path = write(tmp_path / "clients.csv", "name,phone\n" + rows)
    seen: list[int] = []

    report = await run(store, path, clock, progress=seen.append, batch_size=20)

    assert report.created == 50
    assert len(seen) == 3
    assert seen == sorted(seen) and seen[-1] == path.stat().st_size


async def test_a_batch_redone_after_another_writer_took_a_number_starts_from_its_rows_afresh(
    store: Store, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL another writer may take one of a batch's numbers between its look-ups and its
    # inserts: the batch fails on the unique index and is redone. Here the first attempt fails
    # at its very end, after it has matched every row, made a company and folded a row into
    # another's client: the redo must not see any of that.
    path = write(
        tmp_path / "clients.csv",
        "name,phone,email,company,tags\n"
        "Ada Lovelace,(415) 555-0100,ada@example.com,Analytical Engines,vip\n"
        "Ada L.,+1 415 555 0100,ada@work.example,,math\n"
        "Charles Babbage,(415) 555-0101,,analytical engines,\n",
    )
    attempts: list[int] = []
    update = Batch._update

    async def fail_once(batch: Any) -> None:
        await update(batch)
        attempts.append(len(attempts) + 1)
        if len(attempts) == 1:
            raise IntegrityError("INSERT INTO client_phones ...", {}, Exception("duplicate key"))

    monkeypatch.setattr(Batch, "_update", fail_once)

    report = await run(store, path, clock)

    assert attempts == [1, 2]
    assert report.as_json() == {"created": 2, "updated": 1, "skipped": 0, "errors": []}
    ada, babbage = await one(store, "Ada Lovelace"), await one(store, "Charles Babbage")
    assert (ada.phones, ada.emails, ada.tags) == (
        ("+14155550100",),
        ("ada@example.com", "ada@work.example"),
        ("vip", "math"),
    )
    assert ada.company == babbage.company == "Analytical Engines"
    assert [c.name for c in await clients(store)] == ["Analytical Engines", "Ada Lovelace", "Charles Babbage"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no header row"),
        ("\n\n", "no header row"),
        ("Ada Lovelace,(415) 555-0100,ada@example.com\n", "no name, phone or email column"),
        ("company;tags\nAcme;b2b\n", "no name, phone or email column"),
    ],
)
async def test_a_file_without_a_usable_header_is_refused(
    store: Store, clock: FrozenClock, tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "clients.csv", text)

    with pytest.raises(CsvFormatError, match=message):
        await run(store, path, clock)

    assert await count(store, Client) == 0


# -- exporting -------------------------------------------------------------------------------


async def test_an_export_lists_every_client_in_the_import_columns(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path
) -> None:
    async with store.session() as s:
        alice = await crm.agents.add(s, "Alice", phone="+14155550001")
        await crm.clients.create(
            s,
            ClientDraft(
                name="Ada Lovelace",
                phones=["(415) 555-0100", "+44 7700 900123"],
                emails=["Ada@Example.com"],
                company="Analytical Engines",
                tags=["vip", "math"],
                owner_id=alice.id,
                notes="line one\nline two",
                custom={"source": "fair", "score": 7},
            ),
        )
    path = tmp_path / "out.csv"

    written = await export_clients(store, path)

    assert written == 2
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert raw.decode("utf-8") == (
        "name,phone,email,company,tags,notes,owner,score,source\r\n"
        "Analytical Engines,,,Analytical Engines,,,,,\r\n"  # a company names itself
        "Ada Lovelace,+1 415-555-0100; +44 7700 900123,Ada@Example.com,Analytical Engines,"
        'vip; math,"line one\nline two",Alice,7,fair\r\n'
    )
    assert COLUMNS == ("name", "phone", "email", "company", "tags", "notes", "owner")


@pytest.fixture
def other_db_url(templates: SqliteTemplates | PostgresTemplates, tmp_path: Path) -> Iterator[str]:
    """A second fresh database, to import an export into (made outside the test's event loop)."""
    where = tmp_path / "b"
    where.mkdir()
    url = templates.fresh(where)
    yield url
    templates.drop(url)


async def test_an_export_imports_into_a_fresh_database_as_the_same_clients(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path, other_db_url: str
) -> None:
    async with store.session() as s:
        await crm.agents.add(s, "Alice", phone="+14155550001")
    source = write(
        tmp_path / "in.csv",
        "name,phone,email,company,tags,notes,owner,Source,Birthday\n"
        'Ada Lovelace,"(415) 555-0100, +44 7700 900123",ada@example.com; Ada@Work.example,'
        'Analytical Engines,vip; math,"Prefers\nmornings",alice,fair,1815-12-10\n'
        "Analytical Engines,+44 20 7946 0000,,Analytical Engines,b2b,,,,\n"
        "Charles Babbage,not reachable,,analytical engines,,,,referral,\n"
        "Грейс Хоппер,+7 916 123 45 67,,,,,+1 415 555 0001,,\n",
    )
    first = await run(store, source, clock)
    assert (first.created, first.updated) == (3, 1)  # the company's own row fills in its company
    exported = tmp_path / "out.csv"
    assert await export_clients(store, exported) == 4

    other = Store(other_db_url)
    try:
        async with other.session() as s:
            await crm.agents.add(s, "Alice", phone="+14155550001")
        report = await run(other, exported, clock, region="GB")  # the file names countries itself
        assert report.as_json() == {
            "created": 4,
            "updated": 0,
            "skipped": 0,
            "errors": [{"line": 5, "reason": "phone 'not reachable': not a phone number; kept as text"}],
        }
        assert await clients(other) == await clients(store)
    finally:
        await other.close()


# -- cells a spreadsheet would run (CSV injection) ---------------------------------------------


def cells_of(path: Path) -> list[list[str]]:
    """The file's cells as a spreadsheet program reads them."""
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.reader(f))


async def a_client_with_formulas(crm: Crm, store: Store) -> None:
    """What a stranger can type into a web form or a Telegram name, and an API script can add."""
    async with store.session() as s:
        await crm.clients.create(
            s,
            ClientDraft(
                name='=HYPERLINK("http://evil","x")',
                phones=["+1 (415) 555-0100"],
                tags=["=cmd|' /C calc'!A0", "vip"],
                notes="\tx",
                custom={"=Origin": "=1+1", "Mobile": "+1 (415) 555-0199", "Fax": "\rcall"},
            ),
        )
        await crm.clients.create(s, ClientDraft(name="@SUM(1)", emails=["sum@example.com"]))
        await crm.clients.create(s, ClientDraft(name="-2+3", emails=["minus@example.com"]))
        # A `'` of the client's own stays theirs, before a formula's first character too.
        await crm.clients.create(s, ClientDraft(name="'Tis Herself", custom={"Fax": "'=quoted"}))


async def test_cells_a_spreadsheet_would_run_are_exported_as_text(
    store: Store, crm: Crm, tmp_path: Path
) -> None:
    await a_client_with_formulas(crm, store)
    path = tmp_path / "out.csv"

    await export_clients(store, path)

    header, evil, at, minus, own = cells_of(path)
    assert header == [*COLUMNS, "'=Origin", "Fax", "Mobile"]
    row = dict(zip(header, evil, strict=True))
    assert row["name"] == '\'=HYPERLINK("http://evil","x")'
    assert row["tags"] == "'=cmd|' /C calc'!A0; vip"
    assert row["notes"] == "'\tx"
    assert row["'=Origin"] == "'=1+1"
    assert row["Fax"] == "'\rcall"
    assert row["phone"] == "+1 415-555-0100"  # a phone number is left as it is
    assert row["Mobile"] == "+1 (415) 555-0199"
    assert (at[0], minus[0]) == ("'@SUM(1)", "'-2+3")
    assert (own[0], own[header.index("Fax")]) == ("'Tis Herself", "''=quoted")


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("+1 (415) 555-0100", "+1 (415) 555-0100"),
        ("+1 415-555-0100; +44 7700 900123", "+1 415-555-0100; +44 7700 900123"),
        ("+1 415 CALL NOW", "'+1 415 CALL NOW"),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-", "'-"),
        ("plain = text", "plain = text"),
        ("'", "'"),
        ("", ""),
    ],
)
def test_only_a_phone_number_may_begin_with_a_plus_unescaped(cell: str, written: str) -> None:
    assert escape_cell(cell) == written
    assert unescape_cell(written) == cell


async def test_an_export_with_formulas_imports_back_to_the_same_clients(
    store: Store, crm: Crm, clock: FrozenClock, tmp_path: Path, other_db_url: str
) -> None:
    await a_client_with_formulas(crm, store)
    exported = tmp_path / "out.csv"
    await export_clients(store, exported)

    other = Store(other_db_url)
    try:
        report = await run(other, exported, clock)
        assert (report.created, report.errors) == (4, [])
        assert await clients(other) == await clients(store)
    finally:
        await other.close()
    (evil,) = [c for c in await clients(store) if c.name.startswith("=")]
    assert evil.tags == ("=cmd|' /C calc'!A0", "vip") and evil.notes == "\tx"
    assert dict(evil.custom)["=Origin"] == "=1+1"
