"""Phone numbers: one canonical form (E.164) for matching, the original spelling for display.

Any spelling of the same number (`(415) 555-0100`, `+1 415-555-0100`, `001 415 5550100` dialled
from abroad) normalises to the same E.164 string, so matching is an indexed equality.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat
from phonenumbers import timezone as phone_timezone

from crm.domain.errors import InvalidPhone

# Callers who hide their number arrive with one of these instead of digits. Some providers spell
# the words on a keypad: +266696687 is ANONYMOUS, +7378742833 RESTRICTED, +86282452253 UNAVAILABLE,
# +2562533 BLOCKED.
ANONYMOUS = frozenset(
    {
        "",
        "anonymous",
        "restricted",
        "private",
        "unknown",
        "unavailable",
        "blocked",
        "+266696687",
        "+7378742833",
        "+86282452253",
        "+2562533",
    }
)

# Where a number's prefix spans several time zones (mobiles in RU, US toll-free), the zone most
# of its subscribers live in; used only when it is among phonenumbers' candidates.
_MAIN_ZONE = {
    "AU": "Australia/Sydney",
    "BR": "America/Sao_Paulo",
    "CA": "America/Toronto",
    "ID": "Asia/Jakarta",
    "KZ": "Asia/Almaty",
    "MX": "America/Mexico_City",
    "RU": "Europe/Moscow",
    "US": "America/New_York",
}

# The longest spelling kept as written (`client_phones.raw`, `calls.from_number`, a lead's phone).
# Longer ones are refused wherever a number comes in, so that every door gives the same answer.
MAX_SPELLING = 64

_PARSE_ERRORS = {
    NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    NumberParseException.NOT_A_NUMBER: "not a phone number",
    NumberParseException.TOO_SHORT_AFTER_IDD: "too short",
    NumberParseException.TOO_SHORT_NSN: "too short",
    NumberParseException.TOO_LONG: "too long",
}

_POSSIBILITY_ERRORS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "too short",
    phonenumbers.ValidationResult.TOO_LONG: "too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "wrong length",
}


@dataclass(frozen=True, slots=True)
class Phone:
    """A number read from some spelling: `e164` for matching, `raw` as the person wrote it."""

    e164: str
    raw: str
    # As phonenumbers read it, kept so that `display` need not parse the number again (a new
    # caller's first ring is named after its number).
    parsed: phonenumbers.PhoneNumber | None = field(default=None, compare=False, repr=False)

    @property
    def region(self) -> str | None:
        """ISO country of the number (worked out only when asked: it is the costly part)."""
        return _region(self.parsed) if self.parsed is not None else region_of(self.e164)

    @property
    def display(self) -> str:
        """The number in the international format people read: `+1 415-555-0100`."""
        if self.parsed is None:
            return format_international(self.e164)
        return phonenumbers.format_number(self.parsed, PhoneNumberFormat.INTERNATIONAL)


def is_anonymous(raw: str | None) -> bool:
    return raw is None or raw.strip().lower() in ANONYMOUS


def parse_phone(raw: str, default_region: str) -> Phone:
    """Read `raw` as written in `default_region` (or with its own `+country`), or raise.

    Numbers must be *possible* (right length for their country); we do not insist on *valid*
    ranges, since test and drama numbers (`+44 1632 960…`) and fresh ranges are real to users.
    Runs of white space count as one space; a spelling longer than `MAX_SPELLING` is refused.
    """
    text = " ".join(raw.split())
    if len(text) > MAX_SPELLING:
        raise InvalidPhone(f"longer than {MAX_SPELLING} characters")
    e164_or_reason, parsed = _read(text, default_region)
    if parsed is None:
        raise InvalidPhone(e164_or_reason)
    return Phone(e164=e164_or_reason, raw=text, parsed=parsed)


@lru_cache(maxsize=16_384)
def _read(text: str, default_region: str) -> tuple[str, phonenumbers.PhoneNumber | None]:
    """(E.164, the number read) or (why not, None). Cached: the same callers and spellings come
    back, and parsing is the costly part of every webhook that names a number (~20 µs)."""
    if is_anonymous(text):
        return f"{text!r}: no number (caller withheld it)", None
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as exc:
        return f"{text}: {_PARSE_ERRORS.get(exc.error_type, 'not a phone number')}", None
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible not in (
        phonenumbers.ValidationResult.IS_POSSIBLE,
        phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
    ):
        where = phonenumbers.region_code_for_country_code(number.country_code or 0)
        reason = _POSSIBILITY_ERRORS.get(possible, "not a possible number")
        return f"{text}: {reason} for {where if where != 'ZZ' else 'any country'}", None
    if possible == phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY:
        return f"{text}: a local number; add the area code", None
    return phonenumbers.format_number(number, PhoneNumberFormat.E164), number


def normalize(raw: str, default_region: str) -> str:
    """The E.164 form of `raw`, or `InvalidPhone`."""
    return parse_phone(raw, default_region).e164


def try_normalize(raw: str | None, default_region: str) -> str | None:
    """The E.164 form of `raw`, or None when it cannot be read (for look-ups, never for storing)."""
    if raw is None:
        return None
    try:
        return normalize(raw, default_region)
    except InvalidPhone:
        return None


@lru_cache(maxsize=4096)
def _parsed(e164: str) -> phonenumbers.PhoneNumber:
    return phonenumbers.parse(e164, None)


def _region(number: phonenumbers.PhoneNumber) -> str | None:
    region = phonenumbers.region_code_for_number(number)
    if region in (None, "ZZ", "001"):
        region = phonenumbers.region_code_for_country_code(number.country_code or 0)
    return None if region in (None, "ZZ", "001") else region


def region_of(e164: str) -> str | None:
    """ISO country of a canonical number (`GB` for `+44…`), or None for non-geographic ones."""
    return _region(_parsed(e164))


def format_international(e164: str) -> str:
    return phonenumbers.format_number(_parsed(e164), PhoneNumberFormat.INTERNATIONAL)


@lru_cache(maxsize=4096)
def time_zone_of(e164: str) -> str | None:
    """The IANA zone a number most likely rings in, or None when phonenumbers cannot tell."""
    number = _parsed(e164)
    zones = [z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown"]
    if not zones:
        return None
    if len(zones) == 1:
        return zones[0]
    main = _MAIN_ZONE.get(_region(number) or "")
    return main if main in zones else zones[0]


def local_time(e164: str, now: datetime) -> datetime | None:
    """`now` as the clock on the wall where the number rings."""
    zone = time_zone_of(e164)
    if zone is None:
        return None
    try:
        return now.astimezone(ZoneInfo(zone))
    except ZoneInfoNotFoundError:
        return None
