"""Fixtures that build the world: a migrated store, the domain services, a clock tests can move."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crm.domain.clock import FrozenClock
from crm.service import Crm
from crm.storage.store import Store
from tests.databases import PostgresTemplates, SqliteTemplates, backend


def pytest_report_header() -> str:
    return f"database backend: {backend()}"


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SqliteTemplates | PostgresTemplates]:
    if backend() == "postgresql":
        pg = PostgresTemplates()
        yield pg
        pg.close()
    else:
        yield SqliteTemplates(tmp_path_factory.mktemp("template"))


@pytest.fixture
def db_url(templates: SqliteTemplates | PostgresTemplates, tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh, migrated database of this test's own."""
    url = templates.fresh(tmp_path)
    yield url
    templates.drop(url)


@pytest.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    st = Store(db_url)
    yield st
    await st.close()


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 2, 15, 30, tzinfo=UTC))


@pytest.fixture
def crm(clock: FrozenClock) -> Crm:
    return Crm(region="US", clock=clock)
