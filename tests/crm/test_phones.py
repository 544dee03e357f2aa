"""Any spelling of the same number reads as one canonical number; bad ones say what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crm.domain.errors import InvalidPhone
from crm.domain.phones import is_anonymous, local_time, normalize, parse_phone, region_of

SAME_NUMBER = {
    "US": (
        "+14155550100",
        [
            "(415) 555-0100",
            "415.555.0100",
            "+1 415 555 0100",
            "1-415-555-0100",
            "+1 (415) 555-0100",
            "415 555 0100 ",
        ],
    ),
    "GB": ("+447700900123", ["07700 900123", "+44 7700 900123", "0044 7700 900 123", "(07700) 900-123"]),
    "DE": ("+4930123456789", ["030 123456789", "+49 30 123456789", "0049 (0)30 123456789", "030/123456789"]),
    "RU": ("+79161234567", ["8 (916) 123-45-67", "+7 916 123-45-67", "89161234567", "7 916 1234567"]),
    "RO": ("+40721234567", ["0721 234 567", "+40 721 234 567", "0040721234567", "0721-234-567"]),
}


@pytest.mark.parametrize("region", sorted(SAME_NUMBER))
def test_every_spelling_of_a_number_reads_the_same(region: str) -> None:
    expected, spellings = SAME_NUMBER[region]
    assert {normalize(s, region) for s in spellings} == {expected}


def test_an_international_spelling_wins_over_the_default_region() -> None:
    assert normalize("+44 7700 900123", "US") == "+447700900123"
    assert normalize("+7 916 123-45-67", "DE") == "+79161234567"


def test_the_spelling_as_given_is_kept_for_display() -> None:
    phone = parse_phone("  8 (916) 123-45-67 ", "RU")
    assert phone.raw == "8 (916) 123-45-67"
    assert phone.display == "+7 916 123-45-67"
    assert phone.region == "RU"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("12", "too short"),
        ("not a number", "not a phone number"),
        ("+1 415 555 0100 555 0100 99", "too long"),
        ("", "withheld"),
        ("anonymous", "withheld"),
        ("+266696687", "withheld"),
    ],
)
def test_unreadable_numbers_say_why(raw: str, reason: str) -> None:
    with pytest.raises(InvalidPhone, match=reason):
        normalize(raw, "US")


def test_withheld_numbers_are_recognised() -> None:
    assert is_anonymous("Anonymous")
    assert is_anonymous("+266696687")
    assert not is_anonymous("+14155550100")


def test_local_time_follows_the_number() -> None:
    noon_utc = datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
    assert local_time("+14155550100", noon_utc).hour == 4  # type: ignore[union-attr]  # Pacific, winter
    assert local_time("+4930123456789", noon_utc).hour == 13  # type: ignore[union-attr]
    assert local_time("+79161234567", noon_utc).hour == 15  # type: ignore[union-attr]  # Moscow
    assert region_of("+40721234567") == "RO"
